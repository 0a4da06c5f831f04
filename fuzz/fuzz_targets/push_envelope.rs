//! The Pub/Sub message `worker` receives in async mode: bytes → `domain::EventMessage::decode`
//! (JSON, every rule of a request, the fingerprint check).

#![no_main]

mod common;

use domain::{EventMessage, Fingerprint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = EventMessage::decode(data, common::now(), &common::RULES);
    let Ok(message) = serde_json::from_slice::<EventMessage>(data) else {
        assert!(decoded.is_err(), "decoded data that is not an event message");
        return;
    };
    let claimed = message.payload_hash.clone();
    match decoded {
        Ok(event) => {
            common::check_new_event(&event);
            assert!(
                event.fingerprint().to_hex() == claimed || event.legacy_fingerprint().to_hex() == claimed,
                "accepted a message whose fingerprint is not its own"
            );
            assert_eq!(event.occurred_at(), domain::time::truncate_to_micros(message.occurred_at));
            // The event, published again by `events`, comes through the worker intact.
            common::check_through_pubsub(&event);
        }
        Err(refused) => {
            assert!(!refused.reason.is_empty());
            // Refused for its fingerprint only if that fingerprint really is not its own: with
            // the fingerprint of its contents, the same message is accepted.
            if refused.field == "payload_hash" {
                let at = domain::time::truncate_to_micros(message.occurred_at);
                let own = Fingerprint::of(&message.event_name, at, message.properties.as_ref());
                let legacy = Fingerprint::legacy(&message.event_name, at, message.properties.as_ref());
                assert!(own.to_hex() != claimed && legacy.to_hex() != claimed, "refused its own fingerprint");
                let mut honest = message;
                honest.payload_hash = own.to_hex();
                assert!(honest.into_new_event().is_ok(), "refused a message with its own fingerprint");
            }
        }
    }
});
