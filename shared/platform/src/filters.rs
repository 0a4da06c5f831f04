//! Small filters every function's routes are built from.

use std::convert::Infallible;

use warp::Filter;
use warp::http::HeaderValue;

/// The value of header `name`, or `None` when the request has none. Raw, so each caller
/// applies its own rule to the bytes (warp's typed header filters reject a non-UTF-8 value
/// before the caller can answer it). A header given twice never gets here
/// (`crate::ambiguity`).
pub fn header(name: &'static str) -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value(name).map(Some).or(warp::any().map(|| None)).unify()
}

/// Hands each request a clone of `value` (a handler's dependencies), so a route is
/// `filters.and(with(deps)).then(handler)` with `handler` a plain `async fn` returning
/// `Result<Response, ApiError>`, which warp answers as a reply or a problem.
pub fn with<T: Clone + Send>(value: T) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || value.clone())
}
