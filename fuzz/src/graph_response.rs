//! One Graph API answer, hostile or truncated, through the client's parsing (`graph::response`).
//!
//! The bytes are an HTTP answer written like one:
//!
//! ```text
//! 400 items_batch
//! retry-after: 30
//!
//! {"error": {"message": "...", "code": 4}}
//! ```
//!
//! The first line holds the status (missing or not a number: 200) and the call it answers
//! (`items_batch`, `check_batch_request_status` or `catalog`; anything else: all three). Header
//! lines follow until an empty line; the rest is the body. Everywhere, `@TOKEN@` and
//! `@APP_SECRET@` stand for the access token and the app secret, so inputs can make the server
//! echo them back.
//!
//! Invariants, besides "no panic":
//! - only a 2xx answer can succeed;
//! - no error's `Display` or `Debug` contains the token or the app secret, and error texts stay
//!   short whatever the body;
//! - an error is retryable exactly when it is throttled or transient;
//! - usage figures read from headers are finite, and the wait they announce is at most a week.

use std::time::Duration;

use graph::{ErrorClass, GraphError, response, usage_from_headers};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// The access token the answers may echo.
pub const TOKEN: &str = "EAAGfuzzAccessToken0123456789abcdefXYZ";
/// The app secret the answers may echo.
pub const APP_SECRET: &str = "fuzzAppSecret9876543210fedcba";
/// Longest error text accepted: server messages are cut to 1000 characters, excerpts to 200.
const MAX_ERROR_CHARS: usize = 1500;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    ItemsBatch,
    BatchStatus,
    Catalog,
}

/// Runs the target on one input.
pub fn run(data: &[u8]) {
    let data = with_secrets(data);
    let (head, body) = split_head(&data);
    let mut lines = head.split(|&b| b == b'\n');
    let (status, calls) = status_line(lines.next().unwrap_or_default());
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line[..colon].trim_ascii()),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    check_usage(&headers);
    let secrets = [TOKEN, APP_SECRET];
    let value = match response::parse_answer(status, &headers, body, &secrets) {
        Ok(value) => {
            assert!((200..300).contains(&status), "HTTP {status} succeeded");
            value
        }
        Err(error) => {
            check_error(&error);
            return;
        }
    };
    for call in calls {
        let result = match call {
            Call::ItemsBatch => {
                response::items_batch_answer(status, value.clone(), &secrets).map(|_| ())
            }
            Call::BatchStatus => {
                response::batch_status_answer(status, value.clone(), "fuzz-handle", &secrets).map(
                    |s| {
                        assert!(!s.handle.is_empty(), "a status always names its handle");
                        let _ = s.is_terminal();
                    },
                )
            }
            Call::Catalog => response::catalog_answer(status, value.clone(), &secrets).map(|_| ()),
        };
        if let Err(error) = result {
            assert_eq!(error.class(), ErrorClass::InvalidResponse);
            check_error(&error);
        }
    }
}

/// The input with the placeholders replaced by the secrets.
fn with_secrets(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(b"@TOKEN@") {
            out.extend_from_slice(TOKEN.as_bytes());
            rest = after;
        } else if let Some(after) = rest.strip_prefix(b"@APP_SECRET@") {
            out.extend_from_slice(APP_SECRET.as_bytes());
            rest = after;
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Status line and headers, and the body after the first empty line.
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => match data.iter().position(|&b| b == b'\n') {
            Some(at) => (&data[..at], &data[at + 1..]),
            None => (data, &[]),
        },
    }
}

fn status_line(line: &[u8]) -> (u16, Vec<Call>) {
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or_default();
    let (status, call) = match first.parse::<u16>() {
        Ok(status) => (status, words.next().unwrap_or_default()),
        Err(_) => (200, first),
    };
    let calls = match call {
        "items_batch" => vec![Call::ItemsBatch],
        "check_batch_request_status" => vec![Call::BatchStatus],
        "catalog" => vec![Call::Catalog],
        _ => vec![Call::ItemsBatch, Call::BatchStatus, Call::Catalog],
    };
    (status, calls)
}

fn check_error(error: &GraphError) {
    let shown = error.to_string();
    for text in [&shown, &format!("{error:?}")] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
        assert!(!text.contains(APP_SECRET), "the app secret leaked: {text}");
    }
    assert!(
        shown.chars().count() <= MAX_ERROR_CHARS,
        "an error of {} characters",
        shown.chars().count()
    );
    assert_eq!(
        error.is_retryable(),
        matches!(error.class(), ErrorClass::Throttled | ErrorClass::Transient)
    );
    assert!(!error.what_to_do().is_empty());
}

fn check_usage(headers: &HeaderMap) {
    let usage = usage_from_headers(headers);
    for percent in [
        usage.app_max_percent,
        usage.business_max_percent,
        usage.max_percent(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(percent.is_finite() && percent >= 0.0, "usage {percent}");
    }
    if let Some(wait) = usage.regain_access {
        assert!(wait <= Duration::from_secs(7 * 24 * 3600), "wait {wait:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_secrets() {
        assert_eq!(
            with_secrets(b"a@TOKEN@b@APP_SECRET@"),
            format!("a{TOKEN}b{APP_SECRET}").into_bytes()
        );
        let (head, body) = split_head(b"404 catalog\nx: y\n\n{}");
        assert_eq!((head, body), (&b"404 catalog\nx: y"[..], &b"{}"[..]));
        assert_eq!(split_head(b"200\n{}"), (&b"200"[..], &b"{}"[..]));
        assert!(status_line(b"hello").1.len() == 3);
        assert_eq!(status_line(b"503 items_batch").0, 503);
    }
}
