//! The HTTP client: one attempt per call, plus the retrying and splitting wrappers.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;
use url::Url;

use crate::calls::{CallCounters, CallCounts};
use crate::error::{GraphError, Scrubber};
use crate::response;
use crate::retry::{RetryPolicy, retry};
use crate::secret::{AccessToken, AppSecret};
use crate::settings::GraphSettings;
use crate::types::{BatchStatus, CatalogInfo, ItemsBatchResponse};
use crate::usage::{Usage, usage_from_headers};

/// Largest response body read; Graph answers here are small, so anything bigger is not Graph.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The fields asked of `check_batch_request_status`. Meta's own samples name them: without
/// `fields` the default set may lack the counts, and a missing count must not read as "none".
pub const BATCH_STATUS_FIELDS: &str =
    "handle,status,errors,warnings,errors_total_count,warnings_total_count,ids_of_invalid_requests";
/// Usage percentage from which every answer is logged as a warning, so operators see it coming.
const USAGE_WARN_PERCENT: f64 = 80.0;

/// One `items_batch` call that Meta accepted, as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentChunk {
    /// The exact JSON array text sent as `requests`.
    pub requests_json: String,
    /// How many requests the array holds.
    pub item_count: usize,
    /// Meta's answer.
    pub response: ItemsBatchResponse,
}

/// A batch that failed part-way: the calls Meta accepted before the failure, and the failure.
///
/// When a batch Meta finds too large is split, one half can be accepted before the other
/// fails; its handle must still be recorded and polled, or Meta's verdict on it is never read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct PartialSend {
    /// Calls Meta accepted before the failure, in array order (often none).
    pub accepted: Vec<SentChunk>,
    /// What stopped the batch.
    pub error: GraphError,
}

/// An async Graph API client; cloning is cheap and shares one connection pool.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    version: String,
    token: RwLock<AccessToken>,
    app_secret: Option<AppSecret>,
    last_usage: Mutex<Option<Usage>>,
    calls: CallCounters,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.inner.base.as_str())
            .field("api_version", &self.inner.version)
            .field("token", &"***")
            .field("app_secret", &self.inner.app_secret.is_some())
            .finish()
    }
}

/// What an endpoint call needs besides the request itself.
#[derive(Clone, Copy)]
enum Endpoint {
    ItemsBatch,
    BatchStatus,
    Catalog,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Self::ItemsBatch => "items_batch",
            Self::BatchStatus => "check_batch_request_status",
            Self::Catalog => "catalog",
        }
    }
}

impl GraphClient {
    /// Validates `settings` and builds the client and its connection pool.
    pub fn new(settings: GraphSettings, token: AccessToken) -> Result<Self, GraphError> {
        settings.validate()?;
        check_token(&token)?;
        let base = settings.parsed_base_url()?;
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            // The Graph API does not redirect; following one could carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("catalog-sync-graph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::InvalidSettings {
                message: format!("could not build the HTTP client: {}", error_chain(&e)),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                version: settings.api_version,
                token: RwLock::new(token),
                app_secret: settings.app_secret,
                last_usage: Mutex::new(None),
                calls: CallCounters::default(),
            }),
        })
    }

    /// Swaps the access token for every clone of this client, e.g. after a secret rotation.
    pub fn replace_token(&self, token: AccessToken) {
        let mut slot = self
            .inner
            .token
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = token;
    }

    /// The usage headers of the most recent answer that carried any, to slow down before throttling.
    pub fn last_usage(&self) -> Option<Usage> {
        *self
            .inner
            .last_usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every attempt this client (and its clones) made so far, and how many failed or were
    /// throttled: read it before and after a piece of work and take [`CallCounts::since`].
    pub fn call_counts(&self) -> CallCounts {
        self.inner.calls.read()
    }

    /// Counts one attempt's outcome and hands it back.
    fn counted<T>(&self, result: Result<T, GraphError>) -> Result<T, GraphError> {
        self.inner.calls.record(&result);
        result
    }

    /// One attempt, no retry. POST `{base}/{version}/{catalog_id}/items_batch`, form-encoded:
    /// `item_type=PRODUCT_ITEM`, `allow_upsert=true`, `requests` = the JSON array text as given,
    /// plus `appsecret_proof` when configured.
    pub async fn items_batch(
        &self,
        catalog_id: &str,
        requests_json: &str,
    ) -> Result<ItemsBatchResponse, GraphError> {
        let result = self.items_batch_uncounted(catalog_id, requests_json).await;
        self.counted(result)
    }

    async fn items_batch_uncounted(
        &self,
        catalog_id: &str,
        requests_json: &str,
    ) -> Result<ItemsBatchResponse, GraphError> {
        let url = self.url(catalog_id, Some("items_batch"))?;
        let token = self.token();
        let proof = self.proof(&token);
        let mut form: Vec<(&str, &str)> = vec![
            ("item_type", "PRODUCT_ITEM"),
            ("allow_upsert", "true"),
            ("requests", requests_json),
        ];
        if let Some(proof) = &proof {
            form.push(("appsecret_proof", proof));
        }
        let request = self.inner.http.request(Method::POST, url).form(&form);
        tracing::debug!(
            catalog_id,
            body_bytes = requests_json.len(),
            "sending items_batch"
        );
        let (status, value) = self.execute(request, &token, Endpoint::ItemsBatch).await?;
        response::items_batch(status, value, &self.scrubber(&token))
    }

    /// One attempt. GET `.../{catalog_id}/check_batch_request_status?handle=H&fields=...&load_ids_of_invalid_requests=true`.
    pub async fn check_batch_request_status(
        &self,
        catalog_id: &str,
        handle: &str,
    ) -> Result<BatchStatus, GraphError> {
        // Not a call: nothing is asked of Meta, so nothing is counted.
        if handle.trim().is_empty() {
            return Err(GraphError::InvalidRequest {
                status: None,
                code: None,
                message: "the batch handle is empty; pass the handle items_batch returned".into(),
            });
        }
        let result = self.batch_status_uncounted(catalog_id, handle).await;
        self.counted(result)
    }

    async fn batch_status_uncounted(
        &self,
        catalog_id: &str,
        handle: &str,
    ) -> Result<BatchStatus, GraphError> {
        let url = self.url(catalog_id, Some("check_batch_request_status"))?;
        let token = self.token();
        let proof = self.proof(&token);
        let mut query: Vec<(&str, &str)> = vec![
            ("handle", handle),
            ("fields", BATCH_STATUS_FIELDS),
            ("load_ids_of_invalid_requests", "true"),
        ];
        if let Some(proof) = &proof {
            query.push(("appsecret_proof", proof));
        }
        let request = self.inner.http.request(Method::GET, url).query(&query);
        tracing::debug!(catalog_id, handle, "checking batch status");
        let (http_status, value) = self.execute(request, &token, Endpoint::BatchStatus).await?;
        let status = response::batch_status(http_status, value, handle, &self.scrubber(&token))?;
        tracing::debug!(
            handle,
            status = %status.status,
            errors = status.errors_total_count,
            warnings = status.warnings_total_count,
            "batch status"
        );
        Ok(status)
    }

    /// One attempt. GET `.../{catalog_id}?fields=id,name,product_count`: a preflight proving
    /// that the token works and can see the catalog.
    pub async fn catalog(&self, catalog_id: &str) -> Result<CatalogInfo, GraphError> {
        let result = self.catalog_uncounted(catalog_id).await;
        self.counted(result)
    }

    async fn catalog_uncounted(&self, catalog_id: &str) -> Result<CatalogInfo, GraphError> {
        let url = self.url(catalog_id, None)?;
        let token = self.token();
        let proof = self.proof(&token);
        let mut query: Vec<(&str, &str)> = vec![("fields", "id,name,product_count")];
        if let Some(proof) = &proof {
            query.push(("appsecret_proof", proof));
        }
        let request = self.inner.http.request(Method::GET, url).query(&query);
        let (status, value) = self.execute(request, &token, Endpoint::Catalog).await?;
        response::catalog(status, value, &self.scrubber(&token))
    }

    /// `items_batch` with the retry policy and payload-too-large handling: an over-large array
    /// is split in two halves by element and both are sent (recursively); a single request
    /// that is too large is an `InvalidRequest` error. Returns one [`SentChunk`] per accepted
    /// call, in array order. On error, earlier chunks may already have been accepted; sending
    /// the whole batch again is safe because upserts are idempotent. [`Self::send_batch_keeping`]
    /// also returns those accepted chunks.
    pub async fn send_batch(
        &self,
        catalog_id: &str,
        requests_json: &str,
        retry_policy: &RetryPolicy,
        deadline: Option<Instant>,
    ) -> Result<Vec<SentChunk>, GraphError> {
        self.send_batch_keeping(catalog_id, requests_json, retry_policy, deadline)
            .await
            .map_err(|partial| partial.error)
    }

    /// [`Self::send_batch`], but a failure keeps the chunks Meta accepted before it, so their
    /// handles can be recorded.
    pub async fn send_batch_keeping(
        &self,
        catalog_id: &str,
        requests_json: &str,
        retry_policy: &RetryPolicy,
        deadline: Option<Instant>,
    ) -> Result<Vec<SentChunk>, PartialSend> {
        let items = parse_requests(requests_json).map_err(|error| PartialSend {
            accepted: Vec::new(),
            error,
        })?;
        // Chunks still to send, last one on top, so popping keeps the array order.
        let mut stack = vec![Chunk {
            text: requests_json.to_owned(),
            items,
        }];
        let mut sent = Vec::new();
        while let Some(chunk) = stack.pop() {
            let result = retry(retry_policy, deadline, |_attempt| {
                self.items_batch(catalog_id, &chunk.text)
            })
            .await;
            match result {
                Ok(response) => {
                    if response.handles.is_empty() {
                        tracing::warn!(
                            catalog_id,
                            items = chunk.items.len(),
                            "items_batch returned no handle: Meta took nothing from this chunk"
                        );
                    }
                    sent.push(SentChunk {
                        item_count: chunk.items.len(),
                        requests_json: chunk.text,
                        response,
                    });
                }
                Err(GraphError::PayloadTooLarge { status, message }) => {
                    if chunk.items.len() <= 1 {
                        return Err(PartialSend {
                            accepted: sent,
                            error: single_request_too_large(&chunk, status, &message),
                        });
                    }
                    let (first, second) = chunk.split();
                    tracing::info!(
                        catalog_id,
                        items = first.items.len() + second.items.len(),
                        "items_batch body too large; sending it as two halves"
                    );
                    stack.push(second);
                    stack.push(first);
                }
                Err(error) => {
                    return Err(PartialSend {
                        accepted: sent,
                        error,
                    });
                }
            }
        }
        Ok(sent)
    }

    /// `check_batch_request_status` with the retry policy.
    pub async fn check_with_retry(
        &self,
        catalog_id: &str,
        handle: &str,
        retry_policy: &RetryPolicy,
        deadline: Option<Instant>,
    ) -> Result<BatchStatus, GraphError> {
        retry(retry_policy, deadline, |_attempt| {
            self.check_batch_request_status(catalog_id, handle)
        })
        .await
    }

    fn token(&self) -> AccessToken {
        self.inner
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn proof(&self, token: &AccessToken) -> Option<String> {
        self.inner.app_secret.as_ref().map(|s| s.proof(token))
    }

    fn scrubber(&self, token: &AccessToken) -> Scrubber {
        let secret = self.inner.app_secret.as_ref().map(AppSecret::expose_secret);
        Scrubber::new([token.expose_secret()].into_iter().chain(secret))
    }

    /// `{base}/{version}/{catalog_id}[/{edge}]`, with the catalog id encoded as one path segment.
    fn url(&self, catalog_id: &str, edge: Option<&str>) -> Result<Url, GraphError> {
        if catalog_id.trim().is_empty() || catalog_id.chars().any(char::is_control) {
            return Err(GraphError::InvalidRequest {
                status: None,
                code: None,
                message: "the catalog id is empty or contains control characters; set CATALOG_ID to the numeric id of the Meta catalog".into(),
            });
        }
        let mut url = self.inner.base.clone();
        {
            let Ok(mut segments) = url.path_segments_mut() else {
                return Err(GraphError::InvalidSettings {
                    message: "GRAPH_API_BASE_URL cannot carry a path; set it to an http(s) origin such as https://graph.facebook.com".into(),
                });
            };
            segments.pop_if_empty();
            segments.push(&self.inner.version);
            segments.push(catalog_id);
            if let Some(edge) = edge {
                segments.push(edge);
            }
        }
        Ok(url)
    }

    /// Sends one request and returns the JSON body of a success, or the classified error.
    async fn execute(
        &self,
        request: RequestBuilder,
        token: &AccessToken,
        endpoint: Endpoint,
    ) -> Result<(u16, Value), GraphError> {
        let scrub = self.scrubber(token);
        let started = Instant::now();
        let response = request
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| transport_error(&e, &scrub, endpoint))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.note_usage(usage_from_headers(&headers), endpoint);
        let body = read_body(response, &scrub, endpoint).await?;
        tracing::debug!(
            endpoint = endpoint.name(),
            status = status.as_u16(),
            body_bytes = body.len(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "Graph API answered"
        );
        match response::answer(status.as_u16(), &headers, &body, &scrub) {
            Ok(value) => Ok((status.as_u16(), value)),
            Err(error) => {
                tracing::debug!(
                    endpoint = endpoint.name(),
                    status = status.as_u16(),
                    class = ?error.class(),
                    error = %error,
                    "Graph API call failed"
                );
                Err(error)
            }
        }
    }

    fn note_usage(&self, usage: Usage, endpoint: Endpoint) {
        if usage.is_empty() {
            return;
        }
        if let Some(percent) = usage.max_percent()
            && percent >= USAGE_WARN_PERCENT
        {
            tracing::warn!(
                endpoint = endpoint.name(),
                percent,
                "Graph API usage is close to the throttling limit; slow down"
            );
        }
        *self
            .inner
            .last_usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(usage);
    }
}

/// A part of a batch: its exact text and its elements.
struct Chunk {
    text: String,
    items: Vec<Box<RawValue>>,
}

impl Chunk {
    fn from_items(items: Vec<Box<RawValue>>) -> Self {
        let mut text =
            String::with_capacity(items.iter().map(|i| i.get().len() + 1).sum::<usize>() + 2);
        text.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(item.get());
        }
        text.push(']');
        Self { text, items }
    }

    /// Halves by element count; the first half gets the smaller share when odd.
    fn split(mut self) -> (Self, Self) {
        let second = self.items.split_off(self.items.len() / 2);
        (Self::from_items(self.items), Self::from_items(second))
    }
}

/// A token must fit in an HTTP header; a trailing newline from a secret file is the usual culprit.
fn check_token(token: &AccessToken) -> Result<(), GraphError> {
    let value = token.expose_secret();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(GraphError::InvalidSettings {
            message: "the access token is empty or contains spaces, line breaks or non-ASCII characters; check META_ACCESS_TOKEN or the secret named by ACCESS_TOKEN_SECRET_ARN (a trailing newline is a common cause)".into(),
        });
    }
    Ok(())
}

fn parse_requests(requests_json: &str) -> Result<Vec<Box<RawValue>>, GraphError> {
    let items: Vec<Box<RawValue>> =
        serde_json::from_str(requests_json).map_err(|e| GraphError::InvalidRequest {
            status: None,
            code: None,
            message: format!(
                "the requests to send are not a JSON array ({e}); this is a bug in the caller"
            ),
        })?;
    if items.is_empty() {
        return Err(GraphError::InvalidRequest {
            status: None,
            code: None,
            message: "the requests array is empty; there is nothing to send".into(),
        });
    }
    Ok(items)
}

fn single_request_too_large(chunk: &Chunk, status: Option<u16>, message: &str) -> GraphError {
    let id = chunk
        .items
        .first()
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .and_then(|v| v.get("data")?.get("id").cloned())
        .map(|id| match id {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let id: String = id.chars().take(100).collect();
    GraphError::InvalidRequest {
        status,
        code: None,
        message: format!(
            "the request for product id `{id}` alone ({} bytes) is too large for the Graph API ({message}); shorten its fields",
            chunk.text.len()
        ),
    }
}

/// Reads the body up to [`MAX_RESPONSE_BYTES`]; a cut-off read is transient.
async fn read_body(
    mut response: reqwest::Response,
    scrub: &Scrubber,
    endpoint: Endpoint,
) -> Result<Vec<u8>, GraphError> {
    let status = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                if body.len() + bytes.len() > MAX_RESPONSE_BYTES {
                    return Err(GraphError::InvalidResponse {
                        status: status.as_u16(),
                        detail: format!(
                            "the {} answer is larger than {MAX_RESPONSE_BYTES} bytes, which the Graph API never sends",
                            endpoint.name()
                        ),
                    });
                }
                body.extend_from_slice(&bytes);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(transport_error(&e, scrub, endpoint)),
        }
    }
}

/// No usable answer arrived: timeouts, refused or reset connections are all transient, except
/// a request that could not even be built.
fn transport_error(e: &reqwest::Error, scrub: &Scrubber, endpoint: Endpoint) -> GraphError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "the connection failed"
    };
    if e.is_builder() {
        // Only a token that replace_token let through can break the request this way.
        return GraphError::InvalidSettings {
            message: scrub.message(&format!(
                "the {} request could not be built ({}); check that the access token has no spaces or line breaks",
                endpoint.name(),
                error_chain(e)
            )),
        };
    }
    let message = scrub.message(&format!("{} {what}: {}", endpoint.name(), error_chain(e)));
    GraphError::Transient {
        status: e.status().map(|s: StatusCode| s.as_u16()),
        code: None,
        message,
    }
}

/// An error and its sources on one line: reqwest's own text omits the cause (refused, reset...).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> GraphClient {
        GraphClient::new(
            GraphSettings {
                base_url: base.into(),
                ..GraphSettings::default()
            },
            AccessToken::new("tok"),
        )
        .unwrap()
    }

    #[test]
    fn client_is_shareable() {
        fn is<T: Send + Sync + Clone + 'static>() {}
        is::<GraphClient>();
        is::<GraphError>();
    }

    #[test]
    fn futures_are_send_so_callers_can_spawn_them() {
        fn is_send<T: Send>(_: &T) {}
        let c = client("http://127.0.0.1:9");
        let policy = RetryPolicy::default();
        is_send(&c.send_batch("1", "[]", &policy, None));
        is_send(&c.check_with_retry("1", "h", &policy, None));
        is_send(&c.items_batch("1", "[]"));
        is_send(&c.catalog("1"));
    }

    #[test]
    fn urls_are_built_from_segments() {
        let c = client("http://127.0.0.1:9/");
        assert_eq!(
            c.url("123", Some("items_batch")).unwrap().as_str(),
            "http://127.0.0.1:9/v27.0/123/items_batch"
        );
        let c = client("https://example.test/proxy/graph");
        assert_eq!(
            c.url("a/b?c", None).unwrap().as_str(),
            "https://example.test/proxy/graph/v27.0/a%2Fb%3Fc"
        );
        assert!(c.url("", None).is_err());
        assert!(c.url("1\n2", None).is_err());
    }

    #[test]
    fn debug_hides_the_token() {
        let c = client("http://127.0.0.1:9");
        c.replace_token(AccessToken::new("very-secret"));
        let text = format!("{c:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert_eq!(c.token().expose_secret(), "very-secret");
    }

    #[tokio::test]
    async fn tokens_must_fit_in_a_header() {
        for bad in ["", "tok\n", "to k", "tök"] {
            let err =
                GraphClient::new(GraphSettings::default(), AccessToken::new(bad)).unwrap_err();
            assert!(err.to_string().contains("META_ACCESS_TOKEN"), "{err}");
        }
        // A bad replacement token fails the call as a settings problem, without sending anything.
        let c = client("http://127.0.0.1:9");
        c.replace_token(AccessToken::new("bad\ntoken"));
        let err = c.catalog("1").await.unwrap_err();
        assert!(matches!(err, GraphError::InvalidSettings { .. }), "{err:?}");
        assert!(!err.to_string().contains("bad\ntoken"));
    }

    #[test]
    fn new_rejects_bad_settings() {
        let err = GraphClient::new(
            GraphSettings {
                base_url: "http://example.test".into(),
                ..GraphSettings::default()
            },
            AccessToken::new("t"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GRAPH_API_BASE_URL"));
    }

    #[test]
    fn chunks_split_by_element_and_keep_order() {
        let items = parse_requests(r#"[{"a":1}, {"b":2},{"c":3}]"#).unwrap();
        let chunk = Chunk::from_items(items);
        assert_eq!(chunk.text, r#"[{"a":1},{"b":2},{"c":3}]"#);
        let (first, second) = chunk.split();
        assert_eq!(first.text, r#"[{"a":1}]"#);
        assert_eq!(second.text, r#"[{"b":2},{"c":3}]"#);
        assert!(parse_requests("[]").is_err());
        assert!(parse_requests("{}").is_err());
    }

    #[test]
    fn single_oversized_request_names_the_product() {
        let chunk = Chunk::from_items(
            parse_requests(r#"[{"method":"UPDATE","data":{"id":"sku-1"}}]"#).unwrap(),
        );
        let err = single_request_too_large(&chunk, Some(500), "reduce the amount of data");
        assert_eq!(err.class(), crate::ErrorClass::InvalidRequest);
        assert!(err.to_string().contains("sku-1"), "{err}");
    }

    #[test]
    fn excerpts_are_short_and_scrubbed() {
        use crate::error::MAX_EXCERPT_CHARS;
        use crate::response::excerpt;

        let scrub = Scrubber::new(["tok123"]);
        let body = format!("<html>{}tok123</html>", "x".repeat(10));
        let e = excerpt(body.as_bytes(), &scrub);
        assert!(!e.contains("tok123"));
        let long = "y".repeat(10_000);
        assert!(excerpt(long.as_bytes(), &scrub).chars().count() < MAX_EXCERPT_CHARS + 10);
        assert_eq!(excerpt(b"", &scrub), "(empty body)");
        assert!(excerpt(&[0xff, 0xfe, b'a'], &scrub).contains('a'));
    }
}
