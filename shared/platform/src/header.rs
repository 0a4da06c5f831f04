//! Reading request headers as raw values, so each caller applies its own rule to the bytes
//! (warp's typed header filters reject a non-UTF-8 value before the caller can answer it).

use warp::Filter;
use warp::http::HeaderValue;

/// The value of header `name`, or `None` when the request has none.
pub fn optional(
    name: &'static str,
) -> impl Filter<Extract = (Option<HeaderValue>,), Error = std::convert::Infallible> + Clone {
    warp::header::value(name).map(Some).or(warp::any().map(|| None)).unify()
}
