//! The request-body filter for JSON endpoints: checks the media type, enforces the size limit
//! while reading (a declared `Content-Length` over the limit is refused before any byte is
//! read; a chunked body is cut off as soon as it passes the limit), and parses JSON syntax.
//! Field-level validation is the handler's; this only guarantees a JSON document, with any
//! member name given twice recorded for the handler to refuse (`domain::json`).

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use domain::json::Document;
use futures_util::{Stream, StreamExt};
use warp::http::HeaderValue;
use warp::{Filter, Rejection};

use crate::ApiError;

/// Extracts the body as a JSON document of at most `limit` bytes, read within `timeout`: a client
/// that sends its body too slowly, or never finishes it, gets a 408 instead of holding a
/// connection and a task for ever.
pub fn json_body(limit: usize, timeout: Duration) -> impl Filter<Extract = (Document,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(crate::filters::header("content-type"))
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, content_type: Option<HeaderValue>, body| async move {
            tokio::time::timeout(timeout, read_json(declared, content_type, body, limit))
                .await
                .unwrap_or(Err(ApiError::RequestTimeout))
                .map_err(warp::reject::custom)
        })
}

async fn read_json<S, B>(
    declared: Option<u64>,
    content_type: Option<HeaderValue>,
    body: S,
    limit: usize,
) -> Result<Document, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if content_type.is_some_and(|value| !is_json_media_type(&value)) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut buffer = BytesMut::with_capacity(declared.map_or(8 * 1024, |len| len as usize));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("body", "the request body could not be read"))?;
        if buffer.len() + chunk.remaining() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buffer.put(chunk);
    }
    if buffer.is_empty() {
        return Err(ApiError::invalid("body", "a JSON body is required"));
    }
    Document::parse(&buffer).map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))
}

/// `application/json`, or any `application/*+json`, with any parameters.
fn is_json_media_type(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else { return false };
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<bytes::Bytes, warp::Error>> {
        futures_util::stream::iter(
            parts.iter().map(|p| Ok(bytes::Bytes::from_static(p.as_bytes()))).collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn parses_json_split_across_chunks() {
        let value = read_json(None, None, chunks(&["{\"a\":", "1}"]), 64).await.expect("valid JSON");
        assert_eq!(value.value, serde_json::json!({"a": 1}));
    }

    #[tokio::test]
    async fn refuses_declared_and_streamed_oversize() {
        let declared = read_json(Some(65), None, chunks(&[]), 64).await;
        assert!(matches!(declared, Err(ApiError::PayloadTooLarge { limit: 64 })));
        let long = Box::leak("x".repeat(40).into_boxed_str());
        let streamed = read_json(None, None, chunks(&[long, long]), 64).await;
        assert!(matches!(streamed, Err(ApiError::PayloadTooLarge { limit: 64 })));
    }

    #[tokio::test]
    async fn refuses_other_media_types_and_bad_syntax() {
        let xml = read_json(None, Some(HeaderValue::from_static("text/xml")), chunks(&["{}"]), 64).await;
        assert!(matches!(xml, Err(ApiError::UnsupportedMediaType)));
        let charset = HeaderValue::from_static("application/json; charset=utf-8");
        assert!(read_json(None, Some(charset), chunks(&["{}"]), 64).await.is_ok());
        for bad in ["", "{", "\u{0}", "[1,]"] {
            let err = read_json(None, None, chunks(&[bad]), 64).await;
            assert!(matches!(err, Err(ApiError::Validation(ref e)) if e[0].field == "body"), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn refuses_deep_nesting_as_a_client_error() {
        let deep = Box::leak(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_boxed_str());
        let err = read_json(None, None, chunks(&[deep]), 1 << 20).await;
        assert!(matches!(err, Err(ApiError::Validation(_))));
    }
}
