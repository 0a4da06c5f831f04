//! Problem bodies for the requests hyper refuses itself, before any of our code sees them: a
//! request line it cannot parse (400), conflicting `Content-Length` headers (400), a URI too
//! long (414), too many or too large headers (431). hyper answers those with an empty body and
//! offers no hook to change it, so the connection's writer recognises that automatic answer,
//! always the last thing written on a connection that is about to close, and writes the same
//! status with an RFC 9457 body instead, like every other error of the service.
//!
//! The answer is recognised by its shape: it ends the buffer, its status is one of those
//! above, and it declares `content-length: 0`. None of our own responses has that shape: every
//! error we send has a problem body, and what precedes an automatic answer in the buffer (an
//! earlier pipelined response) is JSON, which never holds a raw line break.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ApiError;

/// A connection whose automatic error answers get problem bodies.
#[derive(Debug)]
pub struct ProblemIo<S> {
    inner: S,
    /// A rewritten answer still being written, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> ProblemIo<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, pending: None }
    }
}

impl<S: AsyncWrite + Unpin> ProblemIo<S> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        match with_problem_body(buf) {
            Some(rewritten) => {
                // Taken whole: the rest is written by the next write, flush or shutdown.
                self.pending = Some((rewritten, 0));
                let _ = self.poll_pending(cx)?;
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `buf` with the automatic answer that ends it replaced by one with a problem body, or `None`
/// when it does not end with one.
fn with_problem_body(buf: &[u8]) -> Option<Vec<u8>> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let start = buf.windows(7).rposition(|w| w == b"HTTP/1.")?;
    let head = std::str::from_utf8(&buf[start..]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let version = status_line.get(..8)?;
    let error = match status_line.get(9..12)? {
        "400" => ApiError::MalformedRequest,
        "414" => ApiError::UriTooLong,
        "431" => ApiError::HeadersTooLarge,
        _ => return None,
    };
    let mut declared_empty = false;
    let mut date = None;
    for line in lines.take_while(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => declared_empty = value.trim() == "0",
            "date" => date = Some(value.trim()),
            _ => {}
        }
    }
    if !declared_empty {
        return None;
    }
    let body = error.problem_json();
    let status = error.status();
    let mut rewritten = buf[..start].to_vec();
    rewritten.extend_from_slice(
        format!(
            "{version} {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            body.len()
        )
        .as_bytes(),
    );
    if let Some(date) = date {
        rewritten.extend_from_slice(format!("date: {date}\r\n").as_bytes());
    }
    rewritten.extend_from_slice(b"\r\n");
    rewritten.extend_from_slice(&body);
    Some(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(buf: &str) -> Option<String> {
        with_problem_body(buf.as_bytes()).map(|b| String::from_utf8(b).expect("utf-8"))
    }

    #[test]
    fn automatic_answers_get_a_problem_body() {
        let out = rewritten("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: D\r\n\r\n")
            .expect("rewritten");
        let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains("date: D"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(problem["status"], 431);
    }

    #[test]
    fn an_earlier_pipelined_answer_is_kept() {
        let earlier = "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}";
        let out =
            rewritten(&format!("{earlier}HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")).expect("rewritten");
        assert!(out.starts_with(earlier));
        assert!(out[earlier.len()..].starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json"));
    }

    #[test]
    fn our_own_answers_are_left_alone() {
        // Our errors have bodies; a 204 or a 200 is never touched; nor is half a head.
        assert!(rewritten("HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\n\r\n").is_none());
        assert!(rewritten("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewritten("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewritten("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
        assert!(rewritten("{\"event_name\":\"HTTP/1.1 400 x\"}").is_none());
    }
}
