//! The bench's HTTP/1.1 client: hyper's connection API on 127.0.0.1, nothing hand-parsed. The
//! load generator drives `connect` and `send` itself (one keep-alive connection per virtual
//! client); `Blocking` is for the requests made from plain threads one at a time (health polls,
//! the emulator's admin API, the async probes), a fresh connection each, as a poller's are.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A blocking request that has no answer by then fails.
const BLOCKING_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection to 127.0.0.1:`port` (no Nagle delay) and drives it on a task of its own.
pub async fn connect(port: u16) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends `request` once the connection is ready: the status and the whole body.
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Requests from a plain thread, on a single-threaded tokio runtime the client owns. Not
/// shared between threads: each thread that needs one makes its own.
#[derive(Debug)]
pub struct Blocking {
    runtime: tokio::runtime::Runtime,
}

impl Blocking {
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("tokio runtime")?;
        Ok(Self { runtime })
    }

    /// `GET path` on 127.0.0.1:`port`: the status code and body.
    pub fn get(&self, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
        self.request(port, Method::GET, path, &[], "")
    }

    /// One request on a new connection to 127.0.0.1:`port` (closed after the answer); a
    /// non-empty `body` goes as JSON. The status code and body.
    pub fn request(
        &self,
        port: u16,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, format!("127.0.0.1:{port}"))
            .header(header::CONNECTION, "close");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder.body(Full::new(Bytes::copy_from_slice(body.as_bytes()))).context("building a request")?;
        let (status, body) = self.runtime.block_on(async {
            let exchange = async { send(&mut connect(port).await?, request).await };
            tokio::time::timeout(BLOCKING_TIMEOUT, exchange).await.context("no answer within 5 s")?
        })?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-shot server on a free port that answers `response` and then holds the connection
    /// open, as the Pub/Sub emulator does; returns the port and the request head it read.
    fn serve_once(response: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            while reader.read_line(&mut head).expect("read") > 2 {}
            (&stream).write_all(response.as_bytes()).expect("write");
            std::thread::sleep(Duration::from_millis(300));
            head
        });
        (port, server)
    }

    #[test]
    fn reads_the_answer_by_its_length_on_a_connection_left_open() {
        let (port, server) = serve_once("HTTP/1.1 409 Conflict\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
        let client = Blocking::new().expect("client");
        let started = std::time::Instant::now();
        let answer = client.request(port, Method::PUT, "/v1/topic", &[("X-API-Key", "k")], "{}").expect("answer");
        assert_eq!(answer, (409, r#"{"a":1}"#.to_owned()));
        assert!(started.elapsed() < Duration::from_millis(250), "did not wait for the server to close");
        let head = server.join().expect("server").to_ascii_lowercase();
        assert!(head.starts_with("put /v1/topic http/1.1\r\n"), "{head}");
        for line in [&format!("host: 127.0.0.1:{port}"), "x-api-key: k", "content-type: application/json"] {
            assert!(head.contains(line), "{line} missing from {head}");
        }
        assert!(head.contains("content-length: 2"), "{head}");
    }

    #[test]
    fn nothing_listening_is_an_error() {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        assert!(Blocking::new().expect("client").get(port, "/health").is_err());
    }
}
