//! Requests whose meaning depends on how a header is read are refused before any route runs:
//! an ambiguous request is an error, never a guess.
//!
//! - HTTP/1.1 requires exactly one `Host` (RFC 9112 section 3.2): none or several is a 400.
//! - `X-API-Key` given more than once would make the tenant depend on which one a reader picks:
//!   401, as for any key that names no tenant. (A comma-separated list, which is what a proxy
//!   makes of two headers, names no tenant either: keys cannot contain commas.)
//! - `Idempotency-Key` is a single Item (the IETF Idempotency-Key draft) and `Content-Type` a
//!   single media type: more than one is a 400 naming the header.

use hyper::Version;
use warp::http::{HeaderMap, header};

use crate::ApiError;

/// The headers a request may carry at most once, and the error for carrying one twice, in the
/// order they are checked.
const SINGLE: [(&str, Refusal); 3] = [
    ("x-api-key", Refusal::Unauthorized),
    ("idempotency-key", Refusal::Invalid("Idempotency-Key")),
    ("content-type", Refusal::Invalid("Content-Type")),
];

#[derive(Clone, Copy)]
enum Refusal {
    Unauthorized,
    Invalid(&'static str),
}

/// Why a request is ambiguous, if it is.
pub fn check(version: Version, headers: &HeaderMap) -> Option<ApiError> {
    let count = |name| headers.get_all(name).iter().count();
    if version == Version::HTTP_11 && count(header::HOST.as_str()) != 1 {
        return Some(ApiError::invalid("Host", "an HTTP/1.1 request must carry exactly one Host header"));
    }
    SINGLE.iter().find(|(name, _)| count(name) > 1).map(|(_, refusal)| match refusal {
        Refusal::Unauthorized => ApiError::Unauthorized,
        Refusal::Invalid(name) => ApiError::invalid(*name, "must be given once"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn one_of_each_is_fine() {
        let one = headers(&[("host", "h"), ("x-api-key", "k"), ("idempotency-key", "i"), ("content-type", "c")]);
        assert!(check(Version::HTTP_11, &one).is_none());
        assert!(check(Version::HTTP_10, &HeaderMap::new()).is_none());
    }

    #[test]
    fn host_is_required_once_in_http_1_1() {
        assert!(matches!(check(Version::HTTP_11, &HeaderMap::new()), Some(ApiError::Validation(_))));
        let twice = headers(&[("host", "a"), ("host", "b")]);
        assert!(matches!(check(Version::HTTP_11, &twice), Some(ApiError::Validation(e)) if e[0].field == "Host"));
    }

    #[test]
    fn repeated_singletons_are_refused_auth_first() {
        let keys = headers(&[("host", "h"), ("x-api-key", "a"), ("x-api-key", "b"), ("idempotency-key", "1")]);
        assert!(matches!(check(Version::HTTP_11, &keys), Some(ApiError::Unauthorized)));
        let ids = headers(&[("host", "h"), ("idempotency-key", "1"), ("idempotency-key", "1")]);
        assert!(
            matches!(check(Version::HTTP_11, &ids), Some(ApiError::Validation(e)) if e[0].field == "Idempotency-Key")
        );
    }
}
