//! The events both Lambda functions accept, decoded as they decode them.
//!
//! The bytes are one event document (JSON), and, when they are UTF-8, also one raw object key.
//!
//! - sync-on-arrival takes an [`S3Event`]; each record's key is decoded with
//!   [`decode_event_key`] and kept only when [`Layout::landing_relative`] says it is a CSV file
//!   of the landing folder (`sync::event::handle_s3_event`).
//! - poll-batch-status takes any JSON (`serde_json::Value`): the EventBridge scheduled-event
//!   envelope, EventBridge Scheduler's bare `{}`, or a test event; its content is unused. The
//!   envelope types are decoded too, to show they refuse bad input without panicking.
//!
//! Invariants, besides "no panic":
//! - a key that S3 encoded (spaces as `+`, the rest percent-escaped) decodes back to itself, and
//!   a key without `%` or `+` decodes to itself;
//! - a landing key's archive, rejected and failed keys, and the reports beside them, are never
//!   themselves landing CSV files (archiving a file must not trigger processing it again);
//! - a batch handle survives being written into a `pending/` or `checked/` key;
//! - a decoded S3 event serialises and reads back the same.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::Value;
use sync::keys::{self, Layout, decode_event_key};

/// What S3 leaves unescaped in an event's object key (besides spaces, written `+`).
const S3_KEY_UNESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/')
    .remove(b' ');

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    s3_event(data);
    scheduled_event(data);
    if let Ok(text) = std::str::from_utf8(data) {
        event_key(text);
        handle(text);
    }
}

fn s3_event(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<S3Event>(data) else {
        return;
    };
    for record in &event.records {
        let _ = record.s3.bucket.name.as_deref();
        if let Some(raw) = record.s3.object.key.as_deref() {
            event_key(raw);
        }
        let _ = record
            .event_name
            .as_deref()
            .is_some_and(|name| name.starts_with("ObjectCreated"));
    }
    let text = serde_json::to_string(&event).expect("a decoded S3 event serialises");
    let again: S3Event = serde_json::from_str(&text).expect("a serialised S3 event reads back");
    assert_eq!(again, event, "an S3 event survives a round trip");
}

fn scheduled_event(data: &[u8]) {
    // What poll-batch-status's runtime decodes; anything that is JSON is accepted.
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let _ = serde_json::from_value::<EventBridgeEvent>(value.clone());
    let _ = serde_json::from_value::<CloudWatchEvent>(value);
}

/// A raw key as it comes in an event record.
fn event_key(raw: &str) {
    let layout = Layout::default();
    match decode_event_key(raw) {
        Ok(key) => {
            assert!(key.len() <= raw.len(), "decoding never lengthens a key");
            if !raw.contains(['%', '+']) {
                assert_eq!(key, raw, "a key without escapes is itself");
            }
            if let Some(relative) = layout.landing_relative(&key) {
                check_landing(&layout, &key, relative);
            }
        }
        Err(error) => assert!(error.to_string().contains("percent-encoded UTF-8")),
    }
    // The same text as a key S3 would have written into an event.
    let encoded = utf8_percent_encode(raw, S3_KEY_UNESCAPED)
        .to_string()
        .replace(' ', "+");
    assert_eq!(
        decode_event_key(&encoded).as_deref(),
        Ok(raw),
        "S3's encoding of {raw:?} ({encoded:?}) decodes back"
    );
}

fn check_landing(layout: &Layout, key: &str, relative: &str) {
    assert!(key.ends_with(relative));
    assert_eq!(layout.landing_key(relative), key);
    let extension = relative.get(relative.len().saturating_sub(4)..);
    assert!(extension.is_some_and(|e| e.eq_ignore_ascii_case(".csv")));
    for moved in [
        layout.archive_key(relative),
        layout.rejected_key(relative),
        layout.failed_key(relative),
    ] {
        assert!(
            layout.landing_relative(&moved).is_none(),
            "{moved:?} would be processed again"
        );
        let report = keys::report_beside(&moved);
        assert!(layout.landing_relative(&report).is_none());
    }
}

/// A batch handle, which is opaque text chosen by Meta.
fn handle(handle: &str) {
    let pending = keys::pending_key(handle);
    let encoded = pending
        .strip_prefix(keys::PENDING_PREFIX)
        .and_then(|rest| rest.strip_suffix(".json"))
        .expect("pending/<handle>.json");
    assert!(!encoded.contains('/'), "one key segment: {pending:?}");
    assert_eq!(
        percent_decode_str(encoded).decode_utf8().as_deref(),
        Ok(handle),
        "the handle reads back from {pending:?}"
    );
    let at = time_of_day();
    let checked = keys::checked_key(at, handle);
    let name = checked
        .rsplit_once('/')
        .map(|(_, name)| name)
        .expect("checked/YYYY/MM/DD/<handle>.json");
    assert_eq!(
        checked.matches('/').count(),
        4,
        "checked key {checked:?} has one segment per level"
    );
    assert_eq!(name.strip_suffix(".json"), Some(encoded));
}

fn time_of_day() -> time::OffsetDateTime {
    time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
}
