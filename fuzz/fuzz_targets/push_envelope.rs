//! The Pub/Sub message `worker` receives in async mode: JSON → `data::EventMessage` → the
//! worker's field checks → `into_new_event` (the fingerprint check).

#![no_main]

mod common;

use data::{EventMessage, NewEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<EventMessage>(data) else { return };
    if common::worker_checks(&message).is_err() {
        return;
    }
    // Whatever its claimed fingerprint, the event this message describes, published by
    // `events`, must come through the worker intact.
    let as_published = NewEvent::new(
        message.tenant_id.clone(),
        message.event_id.clone(),
        message.event_name.clone(),
        message.occurred_at,
        message.properties.clone(),
    );
    common::check_new_event(&as_published);
    common::check_through_pubsub(&as_published);

    let claimed = message.payload_hash.clone();
    match message.clone().into_new_event() {
        Ok(event) => {
            let hex: String = event.payload_hash.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, claimed, "accepted a message whose fingerprint is not its own");
            assert_eq!(event.payload_hash, as_published.payload_hash);
            assert_eq!(event.occurred_at, data::truncate_to_micros(message.occurred_at));
            common::check_new_event(&event);
        }
        Err(m) => {
            assert!(!m.is_empty());
            let hex: String = as_published.payload_hash.iter().map(|b| format!("{b:02x}")).collect();
            assert_ne!(hex, claimed, "refused a message whose fingerprint is its own");
        }
    }
});
