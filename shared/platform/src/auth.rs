//! Authentication: `X-API-Key` names exactly one tenant, or the request ends in a 401 before
//! its body is read. The tenant is recorded on the request's span so the request log line
//! carries it; the key itself is never recorded anywhere.

use warp::http::HeaderValue;
use warp::{Filter, Rejection};

use crate::{ApiError, TenantId, TenantKeys};

/// Extracts the calling tenant, or rejects with 401.
pub fn authenticate(keys: TenantKeys) -> impl Filter<Extract = (TenantId,), Error = Rejection> + Clone {
    warp::header::value("x-api-key").map(Some).or(warp::any().map(|| None)).unify().and_then(
        move |presented: Option<HeaderValue>| {
            let tenant = presented.and_then(|key| keys.tenant_for(key.as_bytes()));
            async move {
                let tenant = tenant.ok_or_else(|| warp::reject::custom(ApiError::Unauthorized))?;
                tracing::Span::current().record("tenant_id", tenant.as_str());
                Ok::<_, Rejection>(tenant)
            }
        },
    )
}
