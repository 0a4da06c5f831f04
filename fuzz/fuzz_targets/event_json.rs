//! `POST /events` body: bytes → JSON → `events::parse_event`, then the contract's invariants
//! on the result (see common/mod.rs), including the trip through Pub/Sub in async mode.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // The body filter (platform::json_body) turns bytes that are not JSON into a 400 before
    // the handler runs; serde_json's own recursion limit bounds nesting.
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let now = common::now();
    match events::parse_event(body.clone(), now, common::SKEW) {
        Ok(input) => common::check_accepted(&body, &input, now),
        Err(errors) => common::check_rejected(&body, &errors),
    }
});
