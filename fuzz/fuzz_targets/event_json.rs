//! `POST /events` body: bytes → `domain::json::Document` → `domain::EventBody::parse`, then the
//! contract's invariants on the result (see common/mod.rs), including the trip through Pub/Sub
//! in async mode.

#![no_main]

mod common;

use domain::EventBody;
use domain::json::Document;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The body filter (platform::json_body) turns bytes that are not JSON into a 400 before
    // the handler runs, and the handler refuses any member given twice; serde_json's own
    // recursion limit bounds nesting.
    let Ok(document) = Document::parse(data) else { return };
    if !document.duplicates.is_empty() {
        // Refused (400) before the rules run: which of the repeated values was kept never
        // matters.
        return;
    }
    let body = document.value;
    let now = common::now();
    match EventBody::parse(body.clone(), now, &common::RULES) {
        Ok(input) => common::check_accepted(&body, &input, now),
        Err(errors) => common::check_rejected(&body, &errors),
    }
});
