//! Authentication: `X-API-Key` names exactly one tenant, or the request ends in a 401 before
//! its body is read; then the tenant's rate limit, if one is set (429). The tenant is recorded
//! on the request's span so the request log line carries it; the key itself is never recorded
//! anywhere.

use warp::http::HeaderValue;
use warp::{Filter, Rejection};

use crate::{ApiError, AppState, TenantId};

/// Extracts the calling tenant, or rejects with 401 (or 429 over its rate limit).
pub fn authenticate(state: &AppState) -> impl Filter<Extract = (TenantId,), Error = Rejection> + Clone + use<> {
    let keys = state.keys.clone();
    let limiter = state.rate_limiter.clone();
    crate::filters::header("x-api-key").and_then(move |presented: Option<HeaderValue>| {
        let tenant = presented.and_then(|key| keys.tenant_for(key.as_bytes()));
        let limiter = limiter.clone();
        async move {
            let tenant = tenant.ok_or_else(|| warp::reject::custom(ApiError::Unauthorized))?;
            tracing::Span::current().record("tenant_id", tenant.as_str());
            if let Some(limited) = limiter.as_deref().and_then(|l| l.check(&tenant).err()) {
                let retry_after_secs = limited.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                return Err(warp::reject::custom(ApiError::RateLimited { limit: limited.limit, retry_after_secs }));
            }
            Ok::<_, Rejection>(tenant)
        }
    })
}
