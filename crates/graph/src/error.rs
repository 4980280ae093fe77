//! Typed Graph API errors and the classification rules of Meta's error envelope.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

/// How a failure should be handled; see [`GraphError::class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Rate limited: wait, then retry.
    Throttled,
    /// The access token is invalid or expired: a person must replace it.
    TokenInvalid,
    /// The token may not touch this object: a person must grant access.
    Permission,
    /// A temporary server or network failure: retry with backoff.
    Transient,
    /// The request itself is wrong: fix it, do not retry.
    InvalidRequest,
    /// The body is too large: split it and send the halves.
    PayloadTooLarge,
    /// The server answered something that is not the Graph API's shape.
    InvalidResponse,
    /// Meta no longer serves the configured API version: a person must choose a current one.
    VersionUnavailable,
}

impl ErrorClass {
    /// A stable snake_case name for logs, metrics and alert attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::TokenInvalid => "token_invalid",
            Self::Permission => "permission",
            Self::Transient => "transient",
            Self::InvalidRequest => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidResponse => "invalid_response",
            Self::VersionUnavailable => "version_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed Graph API call, already classified; messages never contain the access token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Rate limited; `retry_after` is the server's hint from usage headers or `Retry-After`.
    #[error("Graph API throttled the call{}: {message}{}", code_suffix(*.code), wait_suffix(*.retry_after))]
    Throttled {
        /// Graph error code (4, 17, 32, 613, 80000-80009, 80014), if the body had one.
        code: Option<i64>,
        /// Meta's message, scrubbed and truncated.
        message: String,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The access token was rejected (code 190 or 102).
    #[error("Graph API rejected the access token (code {code}{}): {message}", subcode_suffix(*.subcode))]
    TokenInvalid {
        /// Graph error code.
        code: i64,
        /// Graph error subcode, e.g. 463 for an expired token.
        subcode: Option<i64>,
        /// Meta's message, scrubbed and truncated.
        message: String,
    },
    /// The token lacks permission on the object (code 10 or 200-299).
    #[error("Graph API denied permission (code {code}): {message}")]
    Permission {
        /// Graph error code.
        code: i64,
        /// Meta's message, scrubbed and truncated.
        message: String,
    },
    /// A temporary failure: 5xx, codes 1/2, `is_transient`, timeouts, connection errors.
    #[error("temporary Graph API failure{}{}: {message}", status_suffix(*.status), code_suffix(*.code))]
    Transient {
        /// HTTP status, absent when no response arrived.
        status: Option<u16>,
        /// Graph error code, if the body had one.
        code: Option<i64>,
        /// What went wrong, scrubbed and truncated.
        message: String,
    },
    /// The request was rejected as invalid (code 100, other 4xx), or refused before sending.
    #[error("Graph API request rejected{}{}: {message}", status_suffix(*.status), code_suffix(*.code))]
    InvalidRequest {
        /// HTTP status, absent when the client refused the request itself.
        status: Option<u16>,
        /// Graph error code, if the body had one.
        code: Option<i64>,
        /// What is wrong, scrubbed and truncated.
        message: String,
    },
    /// The request body is too large (code 1 "reduce the amount of data", or HTTP 413).
    #[error("Graph API request too large{}: {message}", status_suffix(*.status))]
    PayloadTooLarge {
        /// HTTP status.
        status: Option<u16>,
        /// Meta's message, scrubbed and truncated.
        message: String,
    },
    /// The answer was not the Graph API's shape (not JSON, or JSON of the wrong form).
    #[error("unexpected Graph API response (HTTP {status}): {detail}")]
    InvalidResponse {
        /// HTTP status of the answer.
        status: u16,
        /// A short, sanitized excerpt or description of what was wrong.
        detail: String,
    },
    /// The API version in the URL is no longer served (code 2635).
    #[error("Graph API version no longer available (code {code}): {message}")]
    VersionUnavailable {
        /// Graph error code.
        code: i64,
        /// Meta's message, scrubbed and truncated.
        message: String,
    },
    /// The client's settings are unusable; the message names the variable to fix.
    #[error("invalid Graph API settings: {message}")]
    InvalidSettings {
        /// Which setting is wrong and how to fix it.
        message: String,
    },
}

fn code_suffix(code: Option<i64>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

fn subcode_suffix(subcode: Option<i64>) -> String {
    subcode
        .map(|c| format!(", subcode {c}"))
        .unwrap_or_default()
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

fn wait_suffix(wait: Option<Duration>) -> String {
    wait.map(|w| format!("; the server asked to wait {}s", w.as_secs()))
        .unwrap_or_default()
}

impl GraphError {
    /// The handling class; settings errors count as invalid requests (fix, do not retry).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Throttled { .. } => ErrorClass::Throttled,
            Self::TokenInvalid { .. } => ErrorClass::TokenInvalid,
            Self::Permission { .. } => ErrorClass::Permission,
            Self::Transient { .. } => ErrorClass::Transient,
            Self::InvalidRequest { .. } | Self::InvalidSettings { .. } => {
                ErrorClass::InvalidRequest
            }
            Self::PayloadTooLarge { .. } => ErrorClass::PayloadTooLarge,
            Self::InvalidResponse { .. } => ErrorClass::InvalidResponse,
            Self::VersionUnavailable { .. } => ErrorClass::VersionUnavailable,
        }
    }

    /// True for throttling and transient failures, the only ones a retry can fix.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Transient { .. })
    }

    /// One sentence telling a person what to do about this error.
    pub fn what_to_do(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => {
                "Meta is rate-limiting calls for this catalog: wait the time it asked for (or a few minutes) before sending again, and prefer fewer, larger batches."
            }
            Self::TokenInvalid { .. } => {
                "The access token is invalid or expired: generate a new system-user token with the catalog_management permission and update the stored secret."
            }
            Self::Permission { .. } => {
                "The token may not manage this catalog: check CATALOG_ID and give the system user the catalog_management permission on the catalog in Business Manager."
            }
            Self::Transient { .. } => {
                "Meta or the network failed temporarily: send again later, and check Meta's platform status if it keeps happening."
            }
            Self::InvalidRequest { .. } => {
                "Meta rejected the request as invalid: check the catalog id and the data named in the message, fix them and send again."
            }
            Self::PayloadTooLarge { .. } => {
                "The request is too large for Meta: send fewer products per batch (lower BATCH_SIZE) or shorten the largest fields."
            }
            Self::InvalidResponse { .. } => {
                "The answer did not come from the Graph API as expected: check that GRAPH_API_BASE_URL points at the Graph API and not at a proxy or web page, then try again."
            }
            Self::VersionUnavailable { .. } => {
                "Meta no longer serves the Graph API version this deployment calls: set GRAPH_API_VERSION to a version Meta currently serves for the Marketing API (see its version table; the built-in default is v27.0), then send again."
            }
            Self::InvalidSettings { .. } => {
                "Fix the setting named in the message (GRAPH_API_BASE_URL or GRAPH_API_VERSION) and start again."
            }
        }
    }

    /// The server's wait hint, when this is a throttling error that carries one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Longest server message kept in an error; Graph messages are short, anything longer is noise.
const MAX_MESSAGE_CHARS: usize = 1000;
/// Longest excerpt of a body that is not the Graph API's shape.
pub(crate) const MAX_EXCERPT_CHARS: usize = 200;

/// Removes secrets and control characters from server-provided text, then truncates it.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// A scrubber that hides each non-empty secret.
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            secrets: secrets
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Scrubs before truncating so a cut can never leave part of a secret behind.
    pub(crate) fn clean(&self, text: &str, max_chars: usize) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        let mut out = String::with_capacity(text.len().min(max_chars + 3));
        let mut last_space = false;
        let mut count = 0;
        for c in text.chars() {
            let c = if c.is_control() { ' ' } else { c };
            if c == ' ' && last_space {
                continue;
            }
            last_space = c == ' ';
            if count == max_chars {
                out.push_str("...");
                break;
            }
            out.push(c);
            count += 1;
        }
        out.trim().to_owned()
    }

    /// A message, at the length kept in errors.
    pub(crate) fn message(&self, text: &str) -> String {
        self.clean(text, MAX_MESSAGE_CHARS)
    }
}

/// The fields of Meta's `{"error": {...}}` envelope that drive classification.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Envelope {
    pub(crate) message: String,
    pub(crate) kind: Option<String>,
    pub(crate) code: Option<i64>,
    pub(crate) subcode: Option<i64>,
    pub(crate) is_transient: bool,
    pub(crate) user_message: Option<String>,
    pub(crate) fbtrace_id: Option<String>,
}

impl Envelope {
    /// Reads the envelope from a JSON body; `None` when the body carries no `error` object.
    pub(crate) fn from_json(body: &Value) -> Option<Self> {
        let err = body.get("error")?;
        let obj = match err {
            Value::Object(obj) => obj,
            // Some proxies answer {"error": "text"}; keep the text rather than lose it.
            Value::String(s) => {
                return Some(Self {
                    message: s.clone(),
                    ..Self::default()
                });
            }
            _ => return None,
        };
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            message: text("message").unwrap_or_default(),
            kind: text("type"),
            code: obj.get("code").and_then(lenient_i64),
            subcode: obj.get("error_subcode").and_then(lenient_i64),
            is_transient: match obj.get("is_transient") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            },
            user_message: text("error_user_msg").filter(|s| !s.is_empty()),
            fbtrace_id: text("fbtrace_id").filter(|s| !s.is_empty()),
        })
    }

    /// Meta asks to "reduce the amount of data" when a body is too large.
    fn asks_to_reduce_data(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.contains("reduce the amount of data")
    }

    /// The message plus the details support needs (type, user message, trace id).
    fn describe(&self, scrub: &Scrubber) -> String {
        let mut text = if self.message.is_empty() {
            "no message".to_owned()
        } else {
            self.message.clone()
        };
        if let Some(user) = &self.user_message
            && user != &self.message
        {
            let _ = write!(text, " ({user})");
        }
        let mut extra = Vec::new();
        if let Some(kind) = &self.kind {
            extra.push(format!("type {kind}"));
        }
        if let Some(trace) = &self.fbtrace_id {
            extra.push(format!("fbtrace_id {trace}"));
        }
        if !extra.is_empty() {
            let _ = write!(text, " [{}]", extra.join(", "));
        }
        scrub.message(&text)
    }
}

/// Accepts a code as a JSON number or a numeric string.
pub(crate) fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// How a Graph error code is handled; the codes themselves are in [`ERROR_CODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeHandling {
    /// A rate limit or a temporary block: wait (the server's hint, else backoff), then retry.
    Wait,
    /// The token is invalid or expired: stop and tell a person.
    Token,
    /// The token may not touch the object: stop and tell a person.
    Permission,
    /// The API version is gone: stop and tell a person to set `GRAPH_API_VERSION`.
    Version,
    /// A temporary server failure: retry with backoff.
    Retry,
}

/// One row of Meta's error codes: the codes, how they are handled, and where the rule is from.
#[derive(Debug, Clone, Copy)]
pub struct CodeRule {
    /// First code of the range.
    pub first: i64,
    /// Last code of the range (equal to `first` for a single code).
    pub last: i64,
    /// What the client does about it.
    pub handling: CodeHandling,
    /// What Meta means by it.
    pub meaning: &'static str,
    /// Where the rule comes from, so it can be checked again.
    pub source: &'static str,
}

const fn rule(
    first: i64,
    last: i64,
    handling: CodeHandling,
    meaning: &'static str,
    source: &'static str,
) -> CodeRule {
    CodeRule {
        first,
        last,
        handling,
        meaning,
        source,
    }
}

const ERROR_HANDLING: &str = "Graph API, Handling Errors (error codes table)";
const RATE_LIMITING: &str = "Graph API, Rate Limiting (error codes of each limit type)";
const CATALOG_BATCH: &str = "Catalog Batch API, rate limits for items_batch";

/// Every error code the client classifies by number, most specific first. A code that is not
/// here is judged by `is_transient` and the HTTP status; code 1 asking to "reduce the amount
/// of data" is a too-large body before this table is consulted. `docs/meta-graph-api.md` lists
/// the same rows (a test keeps them in step).
#[rustfmt::skip]
pub const ERROR_CODES: &[CodeRule] = &[
    rule(1, 1, CodeHandling::Retry, "unknown error, possibly temporary", ERROR_HANDLING),
    rule(2, 2, CodeHandling::Retry, "temporary service issue", ERROR_HANDLING),
    rule(4, 4, CodeHandling::Wait, "application request limit reached", RATE_LIMITING),
    rule(17, 17, CodeHandling::Wait, "user request limit reached", RATE_LIMITING),
    rule(32, 32, CodeHandling::Wait, "page request limit reached", RATE_LIMITING),
    rule(341, 341, CodeHandling::Wait, "application limit reached", ERROR_HANDLING),
    rule(368, 368, CodeHandling::Wait, "temporarily blocked for policy violations", ERROR_HANDLING),
    rule(613, 613, CodeHandling::Wait, "custom rate limit reached", RATE_LIMITING),
    rule(80000, 80009, CodeHandling::Wait, "business use case rate limits; 80009 is catalog management", RATE_LIMITING),
    rule(80014, 80014, CodeHandling::Wait, "catalog batch rate limit", CATALOG_BATCH),
    rule(102, 102, CodeHandling::Token, "API session: the login status or token expired or is invalid", ERROR_HANDLING),
    rule(190, 190, CodeHandling::Token, "access token invalid or expired (subcodes 458-467, 492 say why)", ERROR_HANDLING),
    rule(10, 10, CodeHandling::Permission, "permission denied", ERROR_HANDLING),
    rule(200, 299, CodeHandling::Permission, "a permission is missing (e.g. catalog_management)", ERROR_HANDLING),
    rule(2635, 2635, CodeHandling::Version, "the API version called is deprecated and no longer available", "Graph API, Versioning; Marketing API, version history"),
];

/// The rule for a code, if the client classifies it by number.
pub fn code_rule(code: i64) -> Option<&'static CodeRule> {
    ERROR_CODES
        .iter()
        .find(|r| (r.first..=r.last).contains(&code))
}

/// Classifies an error answer. `envelope` is Meta's error object when the body had one;
/// otherwise `fallback` describes the body. Codes follow [`ERROR_CODES`]; then `is_transient`,
/// then the HTTP status.
pub(crate) fn classify(
    status: u16,
    envelope: Option<&Envelope>,
    fallback: &str,
    retry_after: Option<Duration>,
    scrub: &Scrubber,
) -> GraphError {
    let status_opt = Some(status);
    let Some(env) = envelope else {
        let message = scrub.message(fallback);
        return match status {
            413 => GraphError::PayloadTooLarge {
                status: status_opt,
                message,
            },
            429 => GraphError::Throttled {
                code: None,
                message,
                retry_after,
            },
            500..=599 => GraphError::Transient {
                status: status_opt,
                code: None,
                message,
            },
            // Without Graph's envelope a 4xx or 2xx most likely came from something that is not
            // the Graph API (a wrong base URL, a proxy page), which is what InvalidResponse says.
            _ => GraphError::InvalidResponse {
                status,
                detail: message,
            },
        };
    };
    let message = env.describe(scrub);
    let code = env.code;
    if code == Some(1) && env.asks_to_reduce_data() {
        return GraphError::PayloadTooLarge {
            status: status_opt,
            message,
        };
    }
    if let Some(rule) = code.and_then(code_rule) {
        let c = code.unwrap_or_default();
        return match rule.handling {
            CodeHandling::Wait => GraphError::Throttled {
                code,
                message,
                retry_after,
            },
            CodeHandling::Token => GraphError::TokenInvalid {
                code: c,
                subcode: env.subcode,
                message,
            },
            CodeHandling::Permission => GraphError::Permission { code: c, message },
            CodeHandling::Version => GraphError::VersionUnavailable { code: c, message },
            CodeHandling::Retry => GraphError::Transient {
                status: status_opt,
                code,
                message,
            },
        };
    }
    if env.is_transient {
        return GraphError::Transient {
            status: status_opt,
            code,
            message,
        };
    }
    match status {
        413 => GraphError::PayloadTooLarge {
            status: status_opt,
            message,
        },
        429 => GraphError::Throttled {
            code,
            message,
            retry_after,
        },
        500..=599 => GraphError::Transient {
            status: status_opt,
            code,
            message,
        },
        // Code 100 and any other error envelope, even one sent with HTTP 200, means the request
        // was refused for a reason that resending will not change.
        _ => GraphError::InvalidRequest {
            status: status_opt,
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(status: u16, body: Value) -> GraphError {
        let env = Envelope::from_json(&body);
        classify(status, env.as_ref(), "fallback", None, &Scrubber::default())
    }

    fn err(code: i64) -> Value {
        json!({"error": {"message": "m", "type": "OAuthException", "code": code}})
    }

    fn expected_class(handling: CodeHandling) -> ErrorClass {
        match handling {
            CodeHandling::Wait => ErrorClass::Throttled,
            CodeHandling::Token => ErrorClass::TokenInvalid,
            CodeHandling::Permission => ErrorClass::Permission,
            CodeHandling::Version => ErrorClass::VersionUnavailable,
            CodeHandling::Retry => ErrorClass::Transient,
        }
    }

    #[test]
    fn every_code_in_the_table_is_classified_as_the_table_says() {
        for rule in ERROR_CODES {
            for code in [rule.first, (rule.first + rule.last) / 2, rule.last] {
                for status in [200, 400, 403, 500] {
                    assert_eq!(
                        run(status, err(code)).class(),
                        expected_class(rule.handling),
                        "code {code} with HTTP {status}"
                    );
                }
            }
            assert!(!rule.source.is_empty() && !rule.meaning.is_empty());
        }
        assert!(code_rule(3).is_none() && code_rule(80010).is_none());
    }

    #[test]
    fn every_classified_code_is_documented_with_its_source() {
        let doc = include_str!("../../../docs/meta-graph-api.md");
        for rule in ERROR_CODES {
            let label = if rule.first == rule.last {
                format!("`{}`", rule.first)
            } else {
                format!("`{}`-`{}`", rule.first, rule.last)
            };
            let line = doc
                .lines()
                .find(|l| l.starts_with('|') && l.contains(&label))
                .unwrap_or_else(|| panic!("docs/meta-graph-api.md has no table row for {label}"));
            assert!(
                line.contains(rule.source),
                "the row for {label} must name its source `{}`: {line}",
                rule.source
            );
        }
    }

    #[test]
    fn temporary_blocks_and_app_limits_are_waits() {
        for code in [341, 368] {
            let e = run(400, err(code));
            assert!(e.is_retryable(), "{code}");
            assert_eq!(e.class(), ErrorClass::Throttled);
        }
    }

    #[test]
    fn a_retired_version_is_its_own_class_and_names_the_variable() {
        let body = json!({"error": {"message": "(#2635) You are calling a deprecated version of the Ads API. Please update to the latest version.", "type": "OAuthException", "code": 2635}});
        let e = run(400, body);
        assert_eq!(e.class(), ErrorClass::VersionUnavailable);
        assert!(!e.is_retryable());
        assert!(e.what_to_do().contains("GRAPH_API_VERSION"));
        assert!(
            e.what_to_do()
                .contains(crate::settings::DEFAULT_API_VERSION),
            "the advice names the built-in default"
        );
        assert_eq!(e.class().as_str(), "version_unavailable");
    }

    #[test]
    fn throttle_codes() {
        for code in [4, 17, 32, 613, 80000, 80004, 80009, 80014] {
            assert_eq!(run(400, err(code)).class(), ErrorClass::Throttled, "{code}");
        }
        assert_eq!(run(429, json!({})).class(), ErrorClass::Throttled);
        assert_eq!(run(429, err(100)).class(), ErrorClass::Throttled);
        assert_ne!(run(400, err(80010)).class(), ErrorClass::Throttled);
        assert_ne!(run(400, err(80013)).class(), ErrorClass::Throttled);
    }

    #[test]
    fn token_codes_any_subcode() {
        for sub in [458, 459, 460, 463, 464, 467, 492, 1] {
            let body = json!({"error": {"message": "m", "code": 190, "error_subcode": sub}});
            match run(400, body) {
                GraphError::TokenInvalid { code, subcode, .. } => {
                    assert_eq!((code, subcode), (190, Some(sub)));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(run(400, err(102)).class(), ErrorClass::TokenInvalid);
        // Token errors win over a transient flag or a 5xx status.
        let body = json!({"error": {"code": 190, "is_transient": true}});
        assert_eq!(run(500, body).class(), ErrorClass::TokenInvalid);
    }

    #[test]
    fn permission_codes() {
        for code in [10, 200, 250, 299] {
            assert_eq!(
                run(403, err(code)).class(),
                ErrorClass::Permission,
                "{code}"
            );
        }
        assert_eq!(run(400, err(300)).class(), ErrorClass::InvalidRequest);
    }

    #[test]
    fn transient_rules() {
        assert_eq!(run(500, err(1)).class(), ErrorClass::Transient);
        assert_eq!(run(400, err(2)).class(), ErrorClass::Transient);
        let flagged = json!({"error": {"code": 100, "is_transient": true}});
        assert_eq!(run(400, flagged).class(), ErrorClass::Transient);
        assert_eq!(run(503, err(12345)).class(), ErrorClass::Transient);
        assert_eq!(run(502, json!({"oops": 1})).class(), ErrorClass::Transient);
    }

    #[test]
    fn payload_too_large_rules() {
        let body = json!({"error": {"code": 1, "message": "Please reduce the amount of data you're asking for, then retry your request", "is_transient": true}});
        assert_eq!(run(500, body).class(), ErrorClass::PayloadTooLarge);
        assert_eq!(run(413, json!({})).class(), ErrorClass::PayloadTooLarge);
        assert_eq!(run(413, err(100)).class(), ErrorClass::PayloadTooLarge);
    }

    #[test]
    fn invalid_request_rules() {
        assert_eq!(run(400, err(100)).class(), ErrorClass::InvalidRequest);
        assert_eq!(run(404, json!({})).class(), ErrorClass::InvalidResponse);
        // An error envelope with HTTP 200 is still an error.
        assert_eq!(run(200, err(100)).class(), ErrorClass::InvalidRequest);
        assert_eq!(run(200, err(190)).class(), ErrorClass::TokenInvalid);
        let code_as_text = json!({"error": {"code": "80014", "message": "slow down"}});
        assert_eq!(run(200, code_as_text).class(), ErrorClass::Throttled);
        let plain = json!({"error": "something broke"});
        assert!(run(400, plain).to_string().contains("something broke"));
    }

    #[test]
    fn retryable_and_advice() {
        let all = [
            GraphError::Throttled {
                code: Some(4),
                message: String::new(),
                retry_after: None,
            },
            GraphError::TokenInvalid {
                code: 190,
                subcode: None,
                message: String::new(),
            },
            GraphError::Permission {
                code: 200,
                message: String::new(),
            },
            GraphError::Transient {
                status: None,
                code: None,
                message: String::new(),
            },
            GraphError::InvalidRequest {
                status: None,
                code: None,
                message: String::new(),
            },
            GraphError::PayloadTooLarge {
                status: None,
                message: String::new(),
            },
            GraphError::InvalidResponse {
                status: 200,
                detail: String::new(),
            },
            GraphError::InvalidSettings {
                message: String::new(),
            },
            GraphError::VersionUnavailable {
                code: 2635,
                message: String::new(),
            },
        ];
        let retryable: Vec<bool> = all.iter().map(GraphError::is_retryable).collect();
        assert_eq!(
            retryable,
            [true, false, false, true, false, false, false, false, false]
        );
        for e in &all {
            let advice = e.what_to_do();
            assert!(advice.ends_with('.') && advice.len() > 20, "{advice}");
        }
        assert_eq!(all[7].class(), ErrorClass::InvalidRequest);
        let names: Vec<String> = all.iter().map(|e| e.class().to_string()).collect();
        assert_eq!(names[0], "throttled");
        assert_eq!(names[1], "token_invalid");
        assert_eq!(names[5], "payload_too_large");
    }

    #[test]
    fn message_details_and_scrubbing() {
        let body = json!({"error": {"message": "Invalid token SECRET123 given\n\tplease", "type": "OAuthException",
            "code": 190, "error_subcode": 463, "error_user_msg": "Log in again", "fbtrace_id": "AbC"}});
        let env = Envelope::from_json(&body);
        let e = classify(400, env.as_ref(), "", None, &Scrubber::new(["SECRET123"]));
        let text = e.to_string();
        assert!(!text.contains("SECRET123"), "{text}");
        assert!(text.contains("Invalid token *** given please"), "{text}");
        assert!(text.contains("Log in again"), "{text}");
        assert!(text.contains("fbtrace_id AbC"), "{text}");
        assert!(text.contains("subcode 463"), "{text}");
    }

    #[test]
    fn scrubber_truncates_after_scrubbing() {
        let s = Scrubber::new(["abcdef"]);
        assert_eq!(s.clean("xxabcdefyy", 4), "xx**...");
        assert_eq!(s.clean("é\u{0}é", 10), "é é");
        assert_eq!(Scrubber::default().clean("", 10), "");
    }
}
