//! `POST /events/batch` body: bytes → JSON → the envelope rules → `domain::EventBody::parse` per item.
//!

#![no_main]

mod common;

use domain::FieldError;
use libfuzzer_sys::fuzz_target;
use platform::ApiError;
use serde_json::Value;

type Item = Result<Value, Vec<FieldError>>;

/// The envelope rules as the service applies them, with the field errors they give.
fn envelope(body: domain::json::Document) -> Result<Vec<Item>, Vec<FieldError>> {
    events::batch_items(body).map_err(|error| match error {
        ApiError::Validation(errors) if !errors.is_empty() => errors,
        other => panic!("an envelope error that is not a list of field errors: {other:?}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(document) = domain::json::Document::parse(data) else { return };
    let body = document.value.clone();
    let items = match envelope(document) {
        Ok(items) => items,
        Err(errors) => {
            for error in errors {
                assert!(!error.message.is_empty());
                assert!(!error.field.is_empty(), "an envelope error without a field name: {error:?}");
                // An unknown member is named as written; a member given twice by its path, whose
                // first step is a member of the envelope (names may hold dots themselves).
                let path_from = |key: &String| {
                    error
                        .field
                        .strip_prefix(key.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
                };
                let named = error.field == "body"
                    || error.field == "events"
                    || body.as_object().is_some_and(|o| {
                        o.contains_key(&error.field)
                            || (error.message.contains("more than once") && o.keys().any(path_from))
                    });
                assert!(named, "envelope error names a field the body does not have: {error:?}");
            }
            return;
        }
    };
    assert!((1..=events::MAX_BATCH_EVENTS).contains(&items.len()));
    let now = common::now();
    let mut accepted = Vec::new();
    let mut results = 0;
    for item in &items {
        // An item giving a member twice is rejected naming it, and nothing else is judged.
        let item = match item {
            Ok(item) => item,
            Err(duplicates) => {
                assert!(duplicates.iter().all(|e| !e.field.is_empty() && e.message.contains("more than once")));
                results += 1;
                continue;
            }
        };
        // A bad item rejects only itself: each is judged on its own, with one clock.
        match domain::EventBody::parse(item.clone(), now, &common::RULES) {
            Ok(input) => {
                common::check_accepted(item, &input, now);
                accepted.push(input);
            }
            Err(errors) => common::check_rejected(item, &errors),
        }
        results += 1;
    }
    assert_eq!(results, items.len(), "one result per item, in order");
    // Two equal items fingerprint alike (a duplicate, not a reused key), whatever their
    // position in the batch.
    let tenant = domain::TenantId::parse("acme").expect("valid");
    let id = domain::EventId::parse(b"same").expect("valid");
    for (i, a) in accepted.iter().enumerate() {
        for b in &accepted[i + 1..] {
            if a == b {
                let fp = |e: &domain::EventBody| {
                    *domain::NewEvent::from_body(tenant.clone(), id.clone(), e.clone()).fingerprint()
                };
                assert_eq!(fp(a), fp(b));
            }
        }
    }
});
