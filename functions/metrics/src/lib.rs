//! `GET /metrics`: how many of the caller's events of one name fall in `[from, to)`, and
//! optionally per minute, hour or day. Counts come from the `(tenant_id, event_name,
//! occurred_at)` index and never cross tenants: the tenant comes from the key, not the query.

use chrono::{DateTime, Utc};
use data::Interval;
use platform::fields::{ceil_to_micros, check_event_name, format_timestamp, parse_timestamp};
use platform::{ApiError, AppState, FieldError, TenantId, authenticate};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Most buckets one response may hold.
pub const MAX_BUCKETS: i64 = 10_000;

/// The routes of this function.
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let state = state.clone();
    warp::path!("metrics")
        .and(platform::method::get())
        .and(authenticate(&state))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(move |tenant, query: String| {
            let state = state.clone();
            async move { count(&state, tenant, &query).await.unwrap_or_else(|e| e.to_response()) }
        })
}

/// A valid metrics query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsQuery {
    pub event_name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Option<Interval>,
}

const PARAMETERS: [&str; 4] = ["event_name", "from", "to", "interval"];

/// Validates a raw query string, reporting every broken parameter.
pub fn parse_query(raw: &str) -> Result<MetricsQuery, Vec<FieldError>> {
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
    let event_name = value_of("event_name");
    let from = value_of("from");
    let to = value_of("to");
    let interval = value_of("interval");
    for (key, _) in &pairs {
        let unknown = FieldError::unknown(key, "query");
        if !PARAMETERS.contains(&key.as_str()) && !errors.iter().any(|e| e.field == unknown.field) {
            errors.push(unknown);
        }
    }

    let mut check = |name: &str, value: Option<&str>, parse: &dyn Fn(&str) -> Result<(), String>| match value {
        None => errors.push(FieldError::new(name, "is required")),
        Some(v) => {
            if let Err(m) = parse(v) {
                errors.push(FieldError::new(name, m));
            }
        }
    };
    check("event_name", event_name, &check_event_name);
    check("from", from, &|v| parse_timestamp(v).map(drop));
    check("to", to, &|v| parse_timestamp(v).map(drop));
    let interval = match interval {
        None => None,
        Some(v) => {
            let parsed = Interval::parse(v);
            if parsed.is_none() {
                errors.push(FieldError::new("interval", "must be one of minute, hour, day"));
            }
            parsed
        }
    };
    let (from, to) = match (from.map(parse_timestamp), to.map(parse_timestamp)) {
        (Some(Ok(from)), Some(Ok(to))) => (ceil_to_micros(from), ceil_to_micros(to)),
        _ => return Err(errors),
    };
    if from >= to {
        errors.push(FieldError::new("to", "must be later than from"));
    } else if let Some(interval) = interval
        && interval.bucket_count(from, to) > MAX_BUCKETS
    {
        errors.push(FieldError::new(
            "interval",
            format!("gives more than {MAX_BUCKETS} buckets for this window; use a wider interval or a shorter window"),
        ));
    }
    match event_name {
        Some(name) if errors.is_empty() => Ok(MetricsQuery { event_name: name.to_owned(), from, to, interval }),
        _ => Err(errors),
    }
}

async fn count(state: &AppState, tenant: TenantId, raw_query: &str) -> Result<Response, ApiError> {
    let q = parse_query(raw_query).map_err(ApiError::Validation)?;
    let tenant = tenant.as_str();
    let mut body = serde_json::json!({
        "event_name": q.event_name,
        "from": format_timestamp(q.from),
        "to": format_timestamp(q.to),
    });
    match q.interval {
        None => {
            body["count"] = data::count_in_window(&state.pool, tenant, &q.event_name, q.from, q.to).await?.into();
        }
        Some(interval) => {
            let buckets = data::count_buckets(&state.pool, tenant, &q.event_name, q.from, q.to, interval).await?;
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

    fn fields_of(raw: &str) -> Vec<String> {
        parse_query(raw).expect_err(raw).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn parses_a_full_query() {
        let q = parse_query(
            "event_name=sign%20up&from=2026-11-26T00:00:00%2B01:00&to=2026-11-26T01:00:00Z&interval=minute",
        )
        .expect("valid");
        assert_eq!(q.event_name, "sign up");
        assert_eq!(format_timestamp(q.from), "2026-11-25T23:00:00Z");
        assert_eq!(q.interval, Some(Interval::Minute));
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

    #[test]
    fn window_must_be_forward() {
        assert_eq!(fields_of("event_name=a&from=2026-11-26T00:00:00Z&to=2026-11-26T00:00:00Z"), ["to"]);
        assert_eq!(fields_of("event_name=a&from=2026-11-26T00:00:01Z&to=2026-11-26T00:00:00Z"), ["to"]);
    }

    #[test]
    fn bucket_count_is_bounded() {
        // 10,000 minutes exactly is allowed; one more microsecond needs another bucket.
        assert!(parse_query("event_name=a&from=2026-01-01T00:00:00Z&to=2026-01-07T22:40:00Z&interval=minute").is_ok());
        assert_eq!(
            fields_of("event_name=a&from=2026-01-01T00:00:00Z&to=2026-01-07T22:40:00.000001Z&interval=minute"),
            ["interval"]
        );
    }
}
