//! The one error type and the one place that renders errors. Every failure a client can see,
//! ours or one of warp's own rejections, leaves as an RFC 9457 `application/problem+json` body.
//! Unexpected failures are logged here, once, and never described to the client.

use std::convert::Infallible;

use std::error::Error as StdError;

pub use domain::FieldError;
use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// Every error a request can end in.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("a valid X-API-Key header is required")]
    Unauthorized,
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed on this resource; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// A request hyper could not parse as HTTP/1.1 (request line, a header, conflicting lengths).
    #[error("the request is not well-formed HTTP/1.1")]
    MalformedRequest,
    #[error("the request target is too long")]
    UriTooLong,
    #[error("the request has too many headers or too large a header")]
    HeadersTooLarge,
    #[error("event {event_id:?} was already stored with a different payload")]
    KeyReused { event_id: String },
    /// The tenant is over its rate limit.
    #[error("too many requests for this tenant; retry after {} s", retry_after_secs)]
    RateLimited { limit: u32, retry_after_secs: u64 },
    /// The database (or another dependency) cannot serve now; the cause is logged, not shown.
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// A bug or a broken invariant; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl warp::reject::Reject for ApiError {}

/// A dependency's failure (the database, Pub/Sub) is a 503 when retrying may help, else a 500.
impl<E: domain::Retryable + StdError + Send + Sync + 'static> From<E> for ApiError {
    fn from(err: E) -> Self {
        if err.is_retryable() { Self::Unavailable(Box::new(err)) } else { Self::Internal(Box::new(err)) }
    }
}

/// An error and every cause under it, `: `-separated, for the one log line that records it.
#[derive(Debug)]
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

impl ApiError {
    /// A validation error on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MalformedRequest => StatusCode::BAD_REQUEST,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::KeyReused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short name of the kind of problem, for the request's log line (`problem`), so refusals
    /// can be counted by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RequestTimeout => "request_timeout",
            Self::MalformedRequest => "malformed_request",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::KeyReused { .. } => "key_reused",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn problem_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => "/problems/validation",
            Self::KeyReused { .. } => "/problems/idempotency-key-reused",
            _ => "about:blank",
        }
    }

    /// The RFC 9457 body.
    pub fn problem_json(&self) -> Vec<u8> {
        let status = self.status();
        let problem = Problem {
            r#type: self.problem_type(),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match self {
                Self::Validation(errors) => Some(errors),
                _ => None,
            },
        };
        // Serialising strings and numbers cannot fail.
        serde_json::to_vec(&problem).unwrap_or_default()
    }

    /// Renders the problem+json response, logging what the client is not told.
    pub fn to_response(&self) -> Response {
        match self {
            Self::Unavailable(cause) => tracing::warn!(error = %Chain(cause.as_ref()), "dependency unavailable"),
            Self::Internal(cause) => tracing::error!(error = %Chain(cause.as_ref()), "internal error"),
            _ => {}
        }
        tracing::Span::current().record("problem", self.kind());
        let status = self.status();
        let mut response = Response::new(self.problem_json().into());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match self {
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"ApiKey header="X-API-Key""#));
            }
            // The rest of the body may still be on its way: do not read it.
            Self::RequestTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::RateLimited { limit, retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                headers.insert("ratelimit-limit", HeaderValue::from(*limit));
                headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
                headers.insert("ratelimit-reset", HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a Vec<FieldError>>,
}

/// Turns any rejection, ours or warp's, into the same problem+json response.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(rejection_to_error(&rejection).map_or_else(|e| e.to_response(), |e| e.to_response()))
}

fn rejection_to_error(rejection: &Rejection) -> Result<&ApiError, ApiError> {
    use warp::reject;
    if let Some(err) = rejection.find::<ApiError>() {
        return Ok(err);
    }
    Err(if rejection.is_not_found() {
        ApiError::NotFound
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        // Our routes guard methods with `crate::method`; this is only a fallback.
        ApiError::MethodNotAllowed { allow: "GET, HEAD, POST" }
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        ApiError::UnsupportedMediaType
    } else if let Some(e) = rejection.find::<reject::InvalidQuery>() {
        ApiError::invalid("query", e.to_string())
    } else if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        ApiError::invalid(e.name(), "invalid header value")
    } else if let Some(e) = rejection.find::<reject::MissingHeader>() {
        ApiError::invalid(e.name(), "required header is missing")
    } else if let Some(e) = rejection.find::<reject::LengthRequired>() {
        ApiError::invalid("Content-Length", e.to_string())
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}").into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("problem body is JSON")
    }

    #[tokio::test]
    async fn validation_lists_fields() {
        let response = ApiError::Validation(vec![FieldError::new("timestamp", "must be RFC 3339")]).to_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = body_of(response).await;
        assert_eq!(body["type"], "/problems/validation");
        assert_eq!(body["status"], 400);
        assert_eq!(body["errors"][0]["field"], "timestamp");
    }

    #[tokio::test]
    async fn unavailable_says_when_to_retry_and_hides_the_reason() {
        let response = ApiError::Unavailable("connection refused to 10.0.0.3".into()).to_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = body_of(response).await;
        assert!(!body.to_string().contains("10.0.0.3"));
    }

    #[tokio::test]
    async fn internal_errors_are_not_described() {
        let body = body_of(ApiError::Internal("SELECT secret FROM x".into()).to_response()).await;
        assert_eq!(body["status"], 500);
        assert!(!body.to_string().contains("SELECT"));
    }
}
