//! Method guards. A route that matches the path but not the method answers 405 with an
//! `Allow` header (RFC 9110 requires it), and every GET route also answers HEAD.

use warp::http::Method;
use warp::{Filter, Rejection};

use crate::ApiError;

/// Accepts GET and HEAD.
pub fn get() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    only(&[Method::GET, Method::HEAD], "GET, HEAD")
}

/// Accepts POST.
pub fn post() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    only(&[Method::POST], "POST")
}

fn only(allowed: &'static [Method], allow: &'static str) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and_then(move |method: Method| async move {
            if allowed.contains(&method) {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::MethodNotAllowed { allow }))
            }
        })
        .untuple_one()
}
