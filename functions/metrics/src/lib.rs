//! `GET /metrics`: how many of the caller's events of one name fall in `[from, to)`, and
//! optionally per minute, hour or day. The tenant comes from the key, never from the query,
//! so counts never cross tenants. The question's rules are `domain::MetricsQuery`'s; this
//! crate reads them from the query string, where a parameter given twice or one the contract
//! does not have is refused.

use chrono::{DateTime, Utc};
use data::Pool;
use domain::metrics::PARAMETERS;
use domain::time::format_timestamp;
use domain::{FieldError, IngestRules, MetricsQuery, TenantId};
use platform::{ApiError, AppState, Clock, authenticate, with};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// The routes of this function.
pub fn routes(
    state: &AppState,
    pool: Pool,
) -> impl Filter<Extract = (Result<Response, ApiError>,), Error = Rejection> + Clone + use<> {
    warp::path!("metrics")
        .and(platform::method::get())
        .and(authenticate(state))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with((pool, state.config.ingest_rules(), state.clock)))
        .then(count)
}

/// Reads a raw query string into a metrics question at the clock `now`, reporting every broken
/// parameter.
pub fn parse_query(raw: &str, now: DateTime<Utc>, rules: &IngestRules) -> Result<MetricsQuery, Vec<FieldError>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| vec![FieldError::new("query", "is not a valid URL-encoded query string")])?;
    let mut errors = Vec::new();
    let mut value_of = |name: &str| {
        let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            errors.push(FieldError::new(name, "must be given once"));
        }
        first
    };
    let [event_name, from, to, interval] = PARAMETERS.map(&mut value_of);
    for (key, _) in &pairs {
        let unknown = FieldError::unknown(key, "query");
        if !PARAMETERS.contains(&key.as_str()) && !errors.iter().any(|e| e.field == unknown.field) {
            errors.push(unknown);
        }
    }
    match MetricsQuery::parse(event_name, from, to, interval, now, rules) {
        Ok(query) if errors.is_empty() => Ok(query),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

async fn count(
    tenant: TenantId,
    raw_query: String,
    (pool, rules, clock): (Pool, IngestRules, Clock),
) -> Result<Response, ApiError> {
    let q = parse_query(&raw_query, clock.now(), &rules).map_err(ApiError::Validation)?;
    let mut body = serde_json::json!({
        "event_name": q.event_name.as_str(),
        "from": format_timestamp(q.from),
        "to": format_timestamp(q.to),
    });
    match q.interval {
        None => {
            body["count"] = data::count_in_window(&pool, &tenant, &q.event_name, q.from, q.to).await?.into();
        }
        Some(interval) => {
            let buckets = data::count_buckets(&pool, &tenant, &q.event_name, q.from, q.to, interval).await?;
            body["count"] = buckets.iter().map(|b| b.count).sum::<i64>().into();
            body["buckets"] = buckets
                .iter()
                .map(|b| serde_json::json!({"start": format_timestamp(b.start), "count": b.count}))
                .collect();
        }
    }
    Ok(warp::reply::json(&body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: IngestRules =
        IngestRules { max_future_skew: std::time::Duration::from_secs(3600), retention_days: None };

    fn parse(raw: &str) -> Result<MetricsQuery, Vec<FieldError>> {
        parse_query(raw, Utc::now(), &RULES)
    }

    fn fields_of(raw: &str) -> Vec<String> {
        parse(raw).expect_err(raw).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn parses_a_full_query() {
        let q = parse("event_name=sign%20up&from=2026-11-26T00:00:00%2B01:00&to=2026-11-26T01:00:00Z&interval=minute")
            .expect("valid");
        assert_eq!(q.event_name.as_str(), "sign up");
        assert_eq!(format_timestamp(q.from), "2026-11-25T23:00:00Z");
        assert_eq!(q.interval, Some(domain::Interval::Minute));
    }

    #[test]
    fn reports_every_broken_parameter() {
        assert_eq!(fields_of(""), ["event_name", "from", "to"]);
        assert_eq!(fields_of("event_name=a&from=x&to=2026-11-26T00:00:00Z&interval=week"), ["from", "interval"]);
        assert_eq!(
            fields_of("event_name=a&event_name=b&from=2026-11-26T00:00:00Z&to=2026-11-26T01:00:00Z&x=1"),
            ["event_name", "x"]
        );
    }
}
