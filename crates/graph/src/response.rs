//! Turning one HTTP answer (status, headers, body) into a typed result or a [`GraphError`].
//!
//! Pure functions, no I/O: the client calls them after reading a body, and tests and fuzzers
//! call them directly with hostile or truncated bodies. `secrets` are the values (access token,
//! app secret) that must never appear in an error, even when the server echoes them back.

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::{Envelope, GraphError, MAX_EXCERPT_CHARS, Scrubber, classify};
use crate::types::{BatchStatus, CatalogInfo, ItemsBatchResponse};
use crate::usage::throttle_wait;

/// The JSON body of a successful answer, or the classified error.
///
/// A 2xx answer whose body is JSON without Graph's `{"error": ...}` envelope succeeds; anything
/// else (an error envelope even with HTTP 200, a body that is not JSON, any non-2xx status) is
/// an error classified by [`crate::ERROR_CODES`] and the rules of `docs/meta-graph-api.md`.
pub fn parse_answer(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<Value, GraphError> {
    answer(
        status,
        headers,
        body,
        &Scrubber::new(secrets.iter().copied()),
    )
}

/// The `items_batch` answer from a successful body.
pub fn items_batch_answer(
    status: u16,
    value: Value,
    secrets: &[&str],
) -> Result<ItemsBatchResponse, GraphError> {
    items_batch(status, value, &Scrubber::new(secrets.iter().copied()))
}

/// The status of `handle` from a successful `check_batch_request_status` body: its `data[0]`.
pub fn batch_status_answer(
    status: u16,
    value: Value,
    handle: &str,
    secrets: &[&str],
) -> Result<BatchStatus, GraphError> {
    batch_status(
        status,
        value,
        handle,
        &Scrubber::new(secrets.iter().copied()),
    )
}

/// The catalog preflight answer from a successful body.
pub fn catalog_answer(
    status: u16,
    value: Value,
    secrets: &[&str],
) -> Result<CatalogInfo, GraphError> {
    catalog(status, value, &Scrubber::new(secrets.iter().copied()))
}

pub(crate) fn answer(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    scrub: &Scrubber,
) -> Result<Value, GraphError> {
    let success = (200..300).contains(&status);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let envelope = parsed.as_ref().and_then(Envelope::from_json);
    if success && envelope.is_none() {
        return match parsed {
            Some(value) => Ok(value),
            None => Err(GraphError::InvalidResponse {
                status,
                detail: format!("the body is not JSON: {}", excerpt(body, scrub)),
            }),
        };
    }
    let shown = http_status(status);
    let fallback = match &parsed {
        Some(_) => format!(
            "HTTP {shown} without a Graph error object: {}",
            excerpt(body, scrub)
        ),
        None => format!(
            "HTTP {shown} with a body that is not JSON: {}",
            excerpt(body, scrub)
        ),
    };
    Err(classify(
        status,
        envelope.as_ref(),
        &fallback,
        throttle_wait(headers),
        scrub,
    ))
}

pub(crate) fn items_batch(
    status: u16,
    value: Value,
    scrub: &Scrubber,
) -> Result<ItemsBatchResponse, GraphError> {
    serde_json::from_value(value).map_err(|e| GraphError::InvalidResponse {
        status,
        // serde's message quotes the value that did not fit, which may be an echoed secret.
        detail: scrub.message(&format!(
            "items_batch answer is not the documented shape: {e}"
        )),
    })
}

pub(crate) fn batch_status(
    status: u16,
    value: Value,
    handle: &str,
    scrub: &Scrubber,
) -> Result<BatchStatus, GraphError> {
    let first = match value.get("data") {
        Some(Value::Array(items)) => items.first().cloned(),
        _ => None,
    };
    let Some(first) = first else {
        return Err(GraphError::InvalidResponse {
            status,
            detail: "check_batch_request_status answer has no data[0] status object".into(),
        });
    };
    let mut parsed = BatchStatus::from_value(first).map_err(|e| GraphError::InvalidResponse {
        status,
        detail: scrub.message(&format!("batch status is not the documented shape: {e}")),
    })?;
    if parsed.handle.is_empty() {
        handle.clone_into(&mut parsed.handle);
    }
    Ok(parsed)
}

pub(crate) fn catalog(
    status: u16,
    value: Value,
    scrub: &Scrubber,
) -> Result<CatalogInfo, GraphError> {
    serde_json::from_value(value).map_err(|e| GraphError::InvalidResponse {
        status,
        detail: scrub.message(&format!("catalog answer is not the documented shape: {e}")),
    })
}

/// The status as reqwest prints it (`404 Not Found`), or the bare number when it is not one.
fn http_status(status: u16) -> String {
    reqwest::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

pub(crate) fn excerpt(body: &[u8], scrub: &Scrubber) -> String {
    if body.is_empty() {
        return "(empty body)".to_owned();
    }
    // Enough bytes for the excerpt even if every char is 4 bytes, plus room for a token that
    // straddles the cut so it is still recognised and scrubbed.
    let head = &body[..body.len().min(MAX_EXCERPT_CHARS * 4 + 4096)];
    let text = String::from_utf8_lossy(head);
    format!("`{}`", scrub.clean(&text, MAX_EXCERPT_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const TOKEN: &str = "EAAGtokenEchoedBack123";

    fn assert_clean(error: &GraphError) {
        for text in [format!("{error}"), format!("{error:?}")] {
            assert!(!text.contains(TOKEN), "token leaked: {text}");
        }
    }

    #[test]
    fn successes_and_classified_errors() {
        let none = HeaderMap::new();
        let ok = parse_answer(200, &none, br#"{"handles":["h"]}"#, &[TOKEN]).unwrap();
        let sent = items_batch_answer(200, ok, &[TOKEN]).unwrap();
        assert_eq!(sent.handles, ["h"]);

        let err = parse_answer(200, &none, b"<html>", &[TOKEN]).unwrap_err();
        assert!(err.to_string().contains("not JSON: `<html>`"), "{err}");

        let body = br#"{"error":{"message":"slow down","code":4}}"#;
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        let err = parse_answer(400, &headers, body, &[]).unwrap_err();
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));

        let err = parse_answer(404, &none, b"{}", &[]).unwrap_err();
        assert!(
            err.to_string().contains("HTTP 404 Not Found without"),
            "{err}"
        );
        let err = parse_answer(0, &none, b"", &[]).unwrap_err();
        assert!(err.to_string().contains("HTTP 0 with a body"), "{err}");
    }

    /// Catalog rate limits (80014 batch calls, 80009 catalog management) say how long to wait in
    /// `X-Business-Use-Case-Usage`'s `estimated_time_to_regain_access` (minutes), which wins
    /// over `Retry-After`.
    #[test]
    fn catalog_rate_limits_wait_the_time_meta_announces() {
        for code in [80014, 80009] {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-business-use-case-usage",
                HeaderValue::from_static(
                    r#"{"123": [{"type": "catalog_batch", "call_count": 100, "estimated_time_to_regain_access": 3}]}"#,
                ),
            );
            headers.insert("retry-after", HeaderValue::from_static("5"));
            let body = format!(r#"{{"error":{{"message":"limit","code":{code}}}}}"#);
            let err = parse_answer(400, &headers, body.as_bytes(), &[]).unwrap_err();
            assert!(err.is_retryable(), "{code}");
            assert_eq!(
                err.retry_after(),
                Some(std::time::Duration::from_secs(180)),
                "{code}"
            );
        }
    }

    #[test]
    fn batch_status_needs_data_and_keeps_the_handle() {
        let v = serde_json::json!({"data": [{"status": "finished"}]});
        let s = batch_status_answer(200, v, "H1", &[]).unwrap();
        assert_eq!((s.handle.as_str(), s.is_terminal()), ("H1", true));
        let err = batch_status_answer(200, serde_json::json!({"data": []}), "H", &[]).unwrap_err();
        assert!(err.to_string().contains("no data[0]"), "{err}");
    }

    /// serde's messages quote the value that did not fit, so a server echoing the token into a
    /// mistyped field put it into the error. Found by the fuzz target `graph_response` (its
    /// input is kept as `fuzz/corpus/graph_response/crash-app-secret-in-shape-error`).
    #[test]
    fn shape_errors_never_quote_a_secret() {
        let echoed = serde_json::Value::String(TOKEN.to_owned());
        assert_clean(
            &items_batch_answer(200, serde_json::json!({"handles": echoed}), &[TOKEN]).unwrap_err(),
        );
        assert_clean(&catalog_answer(200, echoed.clone(), &[TOKEN]).unwrap_err());
        let status = serde_json::json!({"data": [{"ids_of_invalid_requests": TOKEN}]});
        assert_clean(&batch_status_answer(200, status, "h", &[TOKEN]).unwrap_err());
        let status = serde_json::json!({"data": [{"errors": TOKEN}]});
        assert_clean(&batch_status_answer(200, status, "h", &[TOKEN]).unwrap_err());
    }
}
