//! The HTTP side: one axum handler that records, applies scripted faults, checks the token and
//! catalog, then serves the three endpoints from in-memory state.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use futures::StreamExt;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::listener::{ConnHandle, KillableListener};
use crate::rules::{self, Items, Problem};
use crate::{
    AuthMode, BatchOutcome, EmulatorConfig, Endpoint, Fault, MAX_BODY_BYTES,
    MAX_REQUESTS_PER_BATCH, MAX_SAMPLES, RecordedRequest, ScriptedFault,
};

/// Bytes read and discarded past [`MAX_BODY_BYTES`] before answering anyway; reading the rest
/// lets a client that is still sending see the error instead of a broken pipe.
const DRAIN_LIMIT_BYTES: usize = 256 * 1024 * 1024;
/// Non-terminal statuses in the order the Catalog Batch API guide lists them; a batch checked
/// more often than this shows the last one until it ends.
const NON_TERMINAL: [&str; 3] = ["Scheduled", "Dispatched", "Started"];
/// The fields `check_batch_request_status` can return; anything else is an unknown field.
const STATUS_FIELDS: [&str; 7] = [
    "handle",
    "status",
    "errors",
    "warnings",
    "errors_total_count",
    "warnings_total_count",
    "ids_of_invalid_requests",
];
/// What recorded tokens are replaced with.
const REDACTED: &str = "[redacted]";
/// How long `shutdown` lets in-flight requests finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Starts emulators.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphEmulator;

impl GraphEmulator {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(config: EmulatorConfig) -> io::Result<RunningEmulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> io::Result<RunningEmulator> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(EmuState::new(config)),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared))
            .into_make_service_with_connect_info::<ConnHandle>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(KillableListener::new(listener), app)
                .with_graceful_shutdown(async move {
                    // A dropped sender also means stop.
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "graph-emulator server stopped with an error");
            }
        });
        tracing::debug!(%local, "graph-emulator listening");
        Ok(RunningEmulator {
            shared,
            addr: local,
            server: Arc::new(ServerGuard {
                stop: Mutex::new(Some(stop_tx)),
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

/// A running emulator; clones share it, and it stops when the last clone is dropped.
#[derive(Clone)]
pub struct RunningEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Arc<ServerGuard>,
}

impl fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// The base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The products of a catalog: retailer id to current fields (empty for an unknown catalog).
    pub fn items(&self, catalog_id: &str) -> BTreeMap<String, Value> {
        self.shared
            .lock()
            .catalogs
            .get(catalog_id)
            .map(|items| {
                items
                    .iter()
                    .map(|(id, fields)| (id.clone(), Value::Object(fields.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every request received so far, oldest first, tokens redacted.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Queues a fault for the next call it matches (first in, first out).
    pub fn push_fault(&self, fault: impl Into<ScriptedFault>) {
        self.shared.lock().faults.push_back(fault.into());
    }

    /// Refuses `ids` while taking the next `items_batch` call that carries them, with `message`
    /// in `validation_status`, as Meta does for the checks it makes at once (an invalid price,
    /// for one). Each id is refused once.
    pub fn refuse_at_once(&self, ids: &[&str], message: &str) {
        let mut state = self.shared.lock();
        for id in ids {
            state
                .refuse_at_once
                .insert((*id).to_owned(), message.to_owned());
        }
    }

    /// Queues how the next `items_batch` handle ends.
    pub fn push_outcome(&self, outcome: BatchOutcome) {
        self.shared.lock().outcomes.push_back(outcome);
    }

    /// Sets the delay added to every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Sets how many checks report a non-terminal state, for handles created from now on.
    pub fn set_checks_until_finished(&self, checks: u32) {
        self.shared.lock().checks_until_finished = checks;
    }

    /// Accepts `token` (again, if it was revoked).
    pub fn add_token(&self, token: &str) {
        let mut state = self.shared.lock();
        state.revoked.remove(token);
        state.tokens.insert(token.to_owned());
    }

    /// Rejects `token` from now on as expired (error 190, subcode 463).
    pub fn revoke_token(&self, token: &str) {
        let mut state = self.shared.lock();
        state.tokens.remove(token);
        state.revoked.insert(token.to_owned());
    }

    /// Creates an empty catalog (no-op when it exists).
    pub fn add_catalog(&self, id: &str) {
        self.shared
            .lock()
            .catalogs
            .entry(id.to_owned())
            .or_default();
    }

    /// Stops accepting connections, lets in-flight requests finish briefly, then stops.
    pub async fn shutdown(self) {
        self.server.stop_and_wait().await;
    }
}

/// Owns the server task; dropping the last handle aborts it.
struct ServerGuard {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ServerGuard {
    async fn stop_and_wait(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        let task = lock(&self.task).take();
        if let Some(mut task) = task
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State stays consistent between statements, so a panicked holder leaves nothing half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    state: Mutex<EmuState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, EmuState> {
        lock(&self.state)
    }
}

struct EmuState {
    tokens: HashSet<String>,
    revoked: HashSet<String>,
    catalogs: BTreeMap<String, Items>,
    batches: HashMap<String, Batch>,
    faults: VecDeque<ScriptedFault>,
    outcomes: VecDeque<BatchOutcome>,
    requests: Vec<RecordedRequest>,
    latency: Duration,
    checks_until_finished: u32,
    app_secret: Option<String>,
    oldest_served: Option<(u32, u32)>,
    refuse_at_once: HashMap<String, String>,
}

impl EmuState {
    fn new(config: EmulatorConfig) -> Self {
        Self {
            tokens: config.tokens.into_iter().collect(),
            revoked: HashSet::new(),
            catalogs: config
                .catalogs
                .into_iter()
                .map(|id| (id, Items::new()))
                .collect(),
            batches: HashMap::new(),
            faults: VecDeque::new(),
            outcomes: VecDeque::new(),
            requests: Vec::new(),
            latency: config.latency,
            checks_until_finished: config.checks_until_finished,
            app_secret: config.app_secret,
            oldest_served: version_number(&config.oldest_served_version),
            refuse_at_once: HashMap::new(),
        }
    }

    fn take_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let at = self
            .faults
            .iter()
            .position(|f| f.endpoint.is_none_or(|e| e == endpoint))?;
        self.faults.remove(at).map(|f| f.fault)
    }

    fn new_handle(&self) -> String {
        loop {
            let handle = format!("Ac{}", random_text(30));
            if !self.batches.contains_key(&handle) {
                return handle;
            }
        }
    }
}

/// One accepted `items_batch` call.
struct Batch {
    catalog_id: String,
    outcome: BatchOutcome,
    checks_until_finished: u32,
    checks: u32,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    invalid_ids: Vec<String>,
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The parsed parts of a request that every endpoint needs.
struct Incoming {
    endpoint: Option<Endpoint>,
    version: String,
    catalog_id: String,
    params: BTreeMap<String, Value>,
    token: Option<String>,
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (endpoint, version, catalog_id) = route(uri.path());
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_body(body).await;
    let parsed = match &body {
        Ok(read) if !read.over_limit => {
            parse_params(uri.query(), content_type.as_deref(), &read.bytes)
        }
        _ => parse_params(uri.query(), None, &[]),
    };
    let (params, params_error) = match parsed {
        Ok(p) => (p, None),
        Err(e) => (BTreeMap::new(), Some(e)),
    };
    let bearer = bearer_token(&headers);
    let param_token = params
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let auth = match (&bearer, &param_token) {
        (Some(_), _) => AuthMode::Bearer,
        (None, Some(_)) => AuthMode::AccessTokenParam,
        (None, None) => AuthMode::None,
    };
    let record = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: redact_query(uri.query()),
        params: redact_params(&params),
        content_type,
        body_bytes: body.as_ref().map_or(0, |b| b.total),
        auth,
        endpoint,
        status: None,
    };
    let index = {
        let mut state = shared.lock();
        state.requests.push(record);
        state.requests.len() - 1
    };
    let incoming = Incoming {
        endpoint,
        version,
        catalog_id,
        params,
        token: bearer.or(param_token),
    };
    let response = answer(&shared, &conn, &method, incoming, body, params_error).await;
    let status = response.as_ref().map(|r| r.status().as_u16());
    tracing::debug!(%method, path = uri.path(), ?endpoint, ?status, "graph-emulator answered");
    if let Some(entry) = shared.lock().requests.get_mut(index) {
        entry.status = status;
    }
    match response {
        Some(response) => response,
        None => {
            // The connection is already marked dead: this answer is never written.
            conn.kill();
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The answer to a request, or `None` when a fault drops the connection.
async fn answer(
    shared: &Shared,
    conn: &ConnHandle,
    method: &Method,
    incoming: Incoming,
    body: Result<BodyRead, String>,
    params_error: Option<String>,
) -> Option<Response> {
    let (latency, fault) = {
        let mut state = shared.lock();
        let fault = incoming.endpoint.and_then(|e| state.take_fault(e));
        (state.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = fault {
        match fault {
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::DropConnection => {
                conn.kill();
                return None;
            }
            other => return Some(fault_response(shared, other, incoming.token.as_deref())),
        }
    }
    let Some(endpoint) = incoming.endpoint else {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            2500,
            None,
            "OAuthException",
            "Unknown path components: this emulator serves /{version}/{catalog_id}, /{version}/{catalog_id}/items_batch and /{version}/{catalog_id}/check_batch_request_status",
            false,
        ));
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            return Some(invalid_param(format!(
                "could not read the request body: {e}"
            )));
        }
    };
    if body.over_limit {
        return Some(reduce_data());
    }
    if let Some(e) = params_error {
        return Some(invalid_param(e));
    }
    if let Some(denied) = check_token(shared, incoming.token.as_deref()) {
        return Some(denied);
    }
    let Some(version) = version_number(&incoming.version) else {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "OAuthException",
            &format!(
                "Unknown API version `{}`: use the form vNN.N, e.g. v27.0",
                short(&incoming.version)
            ),
            false,
        ));
    };
    if shared
        .lock()
        .oldest_served
        .is_some_and(|oldest| version < oldest)
    {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            2635,
            None,
            "OAuthException",
            &format!(
                "(#2635) You are calling a deprecated version of the Ads API ({}). Please update to the latest version.",
                short(&incoming.version)
            ),
            false,
        ));
    }
    if let Some(refused) = check_proof(shared, &incoming) {
        return Some(refused);
    }
    let expected = match endpoint {
        Endpoint::ItemsBatch => Method::POST,
        Endpoint::BatchStatus | Endpoint::Catalog | Endpoint::Products => Method::GET,
    };
    if !shared.lock().catalogs.contains_key(&incoming.catalog_id) {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(33),
            "GraphMethodException",
            &format!(
                "Unsupported {} request. Object with ID '{}' does not exist, cannot be loaded due to missing permissions, or does not support this operation",
                method.as_str().to_ascii_lowercase(),
                short(&incoming.catalog_id)
            ),
            false,
        ));
    }
    if *method != expected {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "GraphMethodException",
            &format!(
                "Unsupported {} request: use {expected} for this endpoint",
                method.as_str().to_ascii_lowercase()
            ),
            false,
        ));
    }
    Some(match endpoint {
        Endpoint::ItemsBatch => items_batch(shared, &incoming),
        Endpoint::BatchStatus => batch_status(shared, &incoming),
        Endpoint::Catalog => catalog(shared, &incoming),
        Endpoint::Products => products(shared, &incoming),
    })
}

fn items_batch(shared: &Shared, incoming: &Incoming) -> Response {
    let params = &incoming.params;
    match params.get("item_type").and_then(Value::as_str) {
        None => return invalid_param("(#100) The parameter item_type is required".into()),
        Some("PRODUCT_ITEM") => {}
        Some(other) => {
            return invalid_param(format!(
                "(#100) item_type `{}` is not supported by this emulator: use PRODUCT_ITEM",
                short(other)
            ));
        }
    }
    let requests = match params.get("requests") {
        None => return invalid_param("(#100) The parameter requests is required".into()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => {
                return invalid_param(format!("(#100) Param requests must be a JSON array: {e}"));
            }
        },
        Some(other) => other.clone(),
    };
    let Value::Array(requests) = requests else {
        return invalid_param("(#100) Param requests must be a JSON array".into());
    };
    if requests.len() > MAX_REQUESTS_PER_BATCH {
        return invalid_param(format!(
            "(#100) Too many requests in one call: {} (the limit is {MAX_REQUESTS_PER_BATCH}); split the batch",
            requests.len()
        ));
    }
    if requests.is_empty() {
        // Meta answers with no handle when it takes nothing.
        return Json(json!({"handles": [], "validation_status": []})).into_response();
    }
    // The items_batch reference gives `allow_upsert` a default of true; only an explicit false
    // turns it off.
    let allow_upsert = params.get("allow_upsert").is_none_or(|v| is_true(Some(v)));
    let mut guard = shared.lock();
    // Reborrow once so the catalog and the outcome queue can be borrowed side by side.
    let state = &mut *guard;
    let Some(items) = state.catalogs.get_mut(&incoming.catalog_id) else {
        return invalid_param(format!(
            "(#100) catalog {} does not exist",
            short(&incoming.catalog_id)
        ));
    };
    let mut result = rules::process(items, &requests, allow_upsert);
    refuse_scripted(&mut result, &requests, &mut state.refuse_at_once);
    let outcome = state.outcomes.pop_front().unwrap_or_default();
    // A finished batch saves every valid item; one that ends canceled or in error may have
    // been partly applied (the first half here); one that never finishes saves nothing.
    let mut changes = result.changes;
    match outcome {
        BatchOutcome::Finished => {}
        BatchOutcome::Canceled | BatchOutcome::Error => changes.truncate(changes.len() / 2),
        BatchOutcome::NeverFinishes => changes.clear(),
    }
    rules::apply(items, changes);
    let validation_status = validation_status(&result.refused);
    if result.refused.len() == requests.len() {
        // Nothing was taken: no batch, and (as Meta sometimes answers) no `handles` key at all.
        return Json(json!({ "validation_status": validation_status })).into_response();
    }
    let checks_until_finished = state.checks_until_finished;
    let handle = state.new_handle();
    state.batches.insert(
        handle.clone(),
        Batch {
            catalog_id: incoming.catalog_id.clone(),
            outcome,
            checks_until_finished,
            checks: 0,
            errors: result.errors,
            warnings: result.warnings,
            invalid_ids: result.invalid_ids,
        },
    );
    Json(json!({"handles": [handle], "validation_status": validation_status})).into_response()
}

/// Moves the items a test asked to refuse at once out of the batch and into `refused`.
fn refuse_scripted(
    result: &mut rules::BatchResult,
    requests: &[Value],
    scripted: &mut HashMap<String, String>,
) {
    if scripted.is_empty() {
        return;
    }
    for (line, request) in requests.iter().enumerate() {
        let Some(id) = request
            .get("data")
            .and_then(|d| d.get("id"))
            .and_then(|id| match id {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        else {
            continue;
        };
        let Some(message) = scripted.remove(&id) else {
            continue;
        };
        result.changes.retain(|change| change.id() != id);
        result
            .errors
            .retain(|p| p.id.as_deref() != Some(id.as_str()));
        result
            .warnings
            .retain(|p| p.id.as_deref() != Some(id.as_str()));
        result.invalid_ids.retain(|known| *known != id);
        result.refused.push(Problem {
            line: Some(line),
            id: Some(id),
            message,
        });
    }
}

/// Items refused while taking the call, one entry per retailer id, as `items_batch` answers them.
fn validation_status(refused: &[Problem]) -> Value {
    let mut by_id: Vec<(String, Vec<Value>)> = Vec::new();
    for problem in refused {
        let id = problem.id.clone().unwrap_or_default();
        let message = json!({ "message": problem.message });
        match by_id.iter_mut().find(|(known, _)| *known == id) {
            Some((_, errors)) => errors.push(message),
            None => by_id.push((id, vec![message])),
        }
    }
    Value::Array(
        by_id
            .into_iter()
            .map(|(id, errors)| json!({"retailer_id": id, "errors": errors, "warnings": []}))
            .collect(),
    )
}

fn batch_status(shared: &Shared, incoming: &Incoming) -> Response {
    let Some(handle) = incoming.params.get("handle").and_then(Value::as_str) else {
        return invalid_param("(#100) The parameter handle is required".into());
    };
    let load_ids = is_true(incoming.params.get("load_ids_of_invalid_requests"));
    let mut state = shared.lock();
    let Some(batch) = state
        .batches
        .get_mut(handle)
        .filter(|b| b.catalog_id == incoming.catalog_id)
    else {
        return invalid_param(format!(
            "(#100) Invalid handle `{}`: no batch with this handle in catalog {}",
            short(handle),
            short(&incoming.catalog_id)
        ));
    };
    batch.checks = batch.checks.saturating_add(1);
    let terminal =
        batch.outcome != BatchOutcome::NeverFinishes && batch.checks > batch.checks_until_finished;
    let mut data = Map::new();
    data.insert("handle".into(), Value::from(handle));
    if !terminal {
        let step = usize::try_from(batch.checks.saturating_sub(1)).unwrap_or(0);
        data.insert(
            "status".into(),
            Value::from(NON_TERMINAL[step % NON_TERMINAL.len()]),
        );
        data.insert("errors_total_count".into(), Value::from(0));
        data.insert("errors".into(), json!([]));
        data.insert("warnings_total_count".into(), Value::from(0));
        data.insert("warnings".into(), json!([]));
        data.insert("ids_of_invalid_requests".into(), json!([]));
        return status_answer(data, incoming.params.get("fields"));
    }
    let mut errors = batch.errors.clone();
    let status = match batch.outcome {
        BatchOutcome::Finished | BatchOutcome::NeverFinishes => "finished",
        BatchOutcome::Canceled => "canceled",
        BatchOutcome::Error => {
            errors.push(Problem {
                line: None,
                id: None,
                message: "the batch could not be processed and nothing was saved; send it again"
                    .into(),
            });
            "error"
        }
    };
    data.insert("status".into(), Value::from(status));
    data.insert("errors_total_count".into(), Value::from(errors.len()));
    data.insert("errors".into(), samples(&errors));
    data.insert(
        "warnings_total_count".into(),
        Value::from(batch.warnings.len()),
    );
    data.insert("warnings".into(), samples(&batch.warnings));
    let ids = if load_ids {
        batch.invalid_ids.clone()
    } else {
        Vec::new()
    };
    data.insert("ids_of_invalid_requests".into(), Value::from(ids));
    status_answer(data, incoming.params.get("fields"))
}

/// The status object cut down to the fields asked for. Without `fields` only the handle and
/// the status come back, so a client that forgets to ask for the counts cannot mistake their
/// absence for "no errors" without it showing in its tests.
fn status_answer(mut data: Map<String, Value>, fields: Option<&Value>) -> Response {
    let wanted: Vec<String> = match fields {
        None => vec!["handle".into(), "status".into()],
        Some(value) => {
            let text = value.as_str().unwrap_or_default();
            let mut wanted = Vec::new();
            for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                if !STATUS_FIELDS.contains(&field) {
                    return invalid_param(format!(
                        "(#100) Tried accessing nonexisting field ({}) on node type (CheckBatchRequestStatus)",
                        short(field)
                    ));
                }
                wanted.push(field.to_owned());
            }
            wanted
        }
    };
    data.retain(|key, _| wanted.iter().any(|w| w == key));
    Json(json!({"data": [data]})).into_response()
}

/// When the emulator has an app secret, a call must prove it knows it: `appsecret_proof` is the
/// hex HMAC-SHA256 of the call's token keyed by the secret (Graph API, "Securing Requests").
fn check_proof(shared: &Shared, incoming: &Incoming) -> Option<Response> {
    use hmac::{Hmac, Mac};
    let secret = shared.lock().app_secret.clone()?;
    let token = incoming.token.as_deref().unwrap_or_default();
    let Some(proof) = incoming
        .params
        .get("appsecret_proof")
        .and_then(Value::as_str)
    else {
        return Some(invalid_param(
            "(#100) API calls from the server require an appsecret_proof argument".into(),
        ));
    };
    let valid = hex::decode(proof.trim()).is_ok_and(|given| {
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .map(|mut mac| {
                mac.update(token.as_bytes());
                mac.verify_slice(&given).is_ok()
            })
            .unwrap_or(false)
    });
    (!valid).then(|| {
        invalid_param("(#100) Invalid appsecret_proof provided in the API argument".into())
    })
}

/// The names in the `fields` parameter, or in `default` when it is absent.
fn requested_fields<'a>(incoming: &'a Incoming, default: &'a str) -> Vec<&'a str> {
    incoming
        .params
        .get("fields")
        .and_then(Value::as_str)
        .unwrap_or(default)
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect()
}

fn catalog(shared: &Shared, incoming: &Incoming) -> Response {
    let fields = requested_fields(incoming, "id,name");
    let state = shared.lock();
    let count = state
        .catalogs
        .get(&incoming.catalog_id)
        .map_or(0, |items| items.len());
    let mut out = Map::new();
    for field in fields {
        let value = match field {
            "id" => Value::from(incoming.catalog_id.clone()),
            "name" => Value::from(format!("Emulated catalog {}", incoming.catalog_id)),
            "product_count" => Value::from(count),
            other => {
                return invalid_param(format!(
                    "(#100) Tried accessing nonexisting field ({}) on node type (ProductCatalog)",
                    short(other)
                ));
            }
        };
        out.insert(field.to_owned(), value);
    }
    out.entry("id")
        .or_insert_with(|| Value::from(incoming.catalog_id.clone()));
    Json(Value::Object(out)).into_response()
}

/// `GET /{version}/{catalog_id}/products?fields=retailer_id,name`: every product of the catalog on
/// one page (Meta pages by `limit`), each with `id` and the fields asked for that it holds, so a
/// test outside the process can see what the catalog holds.
fn products(shared: &Shared, incoming: &Incoming) -> Response {
    let fields = requested_fields(incoming, "id");
    let state = shared.lock();
    let data: Vec<Value> = state
        .catalogs
        .get(&incoming.catalog_id)
        .into_iter()
        .flatten()
        .map(|(retailer_id, held)| {
            let mut out = Map::new();
            out.insert(
                "id".to_owned(),
                Value::from(product_item_id(&incoming.catalog_id, retailer_id)),
            );
            for field in &fields {
                let value = match *field {
                    "id" => continue,
                    "retailer_id" => Some(Value::from(retailer_id.clone())),
                    other => held.get(other).cloned(),
                };
                if let Some(value) = value {
                    out.insert((*field).to_owned(), value);
                }
            }
            Value::Object(out)
        })
        .collect();
    Json(json!({ "data": data })).into_response()
}

/// A product item's Meta id: digits, stable for a catalog and retailer id.
fn product_item_id(catalog_id: &str, retailer_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{catalog_id}/{retailer_id}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    format!("{:016}", u64::from_be_bytes(bytes) % 10_u64.pow(16))
}

fn samples(problems: &[Problem]) -> Value {
    Value::Array(
        problems
            .iter()
            .take(MAX_SAMPLES)
            .map(Problem::to_json)
            .collect(),
    )
}

fn check_token(shared: &Shared, token: Option<&str>) -> Option<Response> {
    let Some(token) = token else {
        return Some(graph_error(
            StatusCode::BAD_REQUEST,
            104,
            None,
            "OAuthException",
            "An access token is required to request this resource.",
            false,
        ));
    };
    let state = shared.lock();
    if state.tokens.contains(token) {
        return None;
    }
    Some(if state.revoked.contains(token) {
        expired_token()
    } else {
        graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            None,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
            false,
        )
    })
}

fn fault_response(shared: &Shared, fault: Fault, token: Option<&str>) -> Response {
    match fault {
        Fault::Throttle {
            code,
            regain_access_minutes,
            retry_after_secs,
        } => {
            let mut response = graph_error(
                StatusCode::BAD_REQUEST,
                code,
                None,
                "OAuthException",
                &throttle_message(code),
                false,
            );
            let headers = response.headers_mut();
            if let Some(minutes) = regain_access_minutes {
                let usage = json!({"100000000000000": [{
                    "type": "catalog_batch", "call_count": 100, "total_cputime": 10,
                    "total_time": 10, "estimated_time_to_regain_access": minutes
                }]});
                if let Ok(value) = HeaderValue::from_str(&usage.to_string()) {
                    headers.insert("x-business-use-case-usage", value);
                }
            }
            if let Some(secs) = retry_after_secs {
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Fault::ServerError { status } => graph_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            2,
            None,
            "OAuthException",
            "An unexpected error has occurred. Please retry your request later.",
            true,
        ),
        Fault::TokenExpired => {
            if let Some(token) = token {
                let mut state = shared.lock();
                state.tokens.remove(token);
                state.revoked.insert(token.to_owned());
            }
            expired_token()
        }
        Fault::PermissionDenied => graph_error(
            StatusCode::FORBIDDEN,
            200,
            None,
            "OAuthException",
            "(#200) Requires catalog_management permission to manage the object",
            false,
        ),
        Fault::PayloadTooLarge => reduce_data(),
        // Handled before answering; kept total so a new variant cannot be forgotten.
        Fault::Slow(_) | Fault::DropConnection => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn throttle_message(code: i64) -> String {
    match code {
        4 => "(#4) Application request limit reached".into(),
        17 => "(#17) User request limit reached".into(),
        32 => "(#32) Page request limit reached".into(),
        613 => "(#613) Calls to this api have exceeded the rate limit.".into(),
        80014 => "(#80014) There have been too many calls for the batch uploads to this catalog account. Wait a bit and try again.".into(),
        80009 => "(#80009) There have been too many calls to this Catalog account. Wait a bit and try again.".into(),
        other => format!("(#{other}) There have been too many calls. Wait a bit and try again."),
    }
}

fn expired_token() -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        190,
        Some(463),
        "OAuthException",
        "Error validating access token: Session has expired. The token must be renewed.",
        false,
    )
}

fn reduce_data() -> Response {
    graph_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        1,
        None,
        "OAuthException",
        "Please reduce the amount of data you're asking for, then retry your request",
        false,
    )
}

fn invalid_param(message: String) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        None,
        "OAuthException",
        &message,
        false,
    )
}

/// Meta's error envelope.
fn graph_error(
    status: StatusCode,
    code: i64,
    subcode: Option<i64>,
    kind: &str,
    message: &str,
    is_transient: bool,
) -> Response {
    let mut error = Map::new();
    error.insert("message".into(), Value::from(message));
    error.insert("type".into(), Value::from(kind));
    error.insert("code".into(), Value::from(code));
    if let Some(subcode) = subcode {
        error.insert("error_subcode".into(), Value::from(subcode));
    }
    error.insert("is_transient".into(), Value::from(is_transient));
    error.insert(
        "fbtrace_id".into(),
        Value::from(format!("Emu{}", random_text(8))),
    );
    (status, Json(json!({ "error": error }))).into_response()
}

/// The endpoint, version and catalog id a path names.
fn route(path: &str) -> (Option<Endpoint>, String, String) {
    let trimmed = path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<String> = trimmed
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    match segments.as_slice() {
        [version, catalog] => (Some(Endpoint::Catalog), version.clone(), catalog.clone()),
        [version, catalog, edge] => {
            let endpoint = match edge.as_str() {
                "items_batch" => Some(Endpoint::ItemsBatch),
                "check_batch_request_status" => Some(Endpoint::BatchStatus),
                "products" => Some(Endpoint::Products),
                _ => None,
            };
            (endpoint, version.clone(), catalog.clone())
        }
        _ => (None, String::new(), String::new()),
    }
}

/// `vNN.N` as (major, minor), or `None` when it is not a version.
fn version_number(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.strip_prefix('v')?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(major) && digits(minor)) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
fn is_version(v: &str) -> bool {
    version_number(v).is_some()
}

struct BodyRead {
    bytes: Vec<u8>,
    total: usize,
    over_limit: bool,
}

/// Reads the body, keeping at most [`MAX_BODY_BYTES`] and discarding the rest.
async fn read_body(body: Body) -> Result<BodyRead, String> {
    let mut stream = body.into_data_stream();
    let mut read = BodyRead {
        bytes: Vec::new(),
        total: 0,
        over_limit: false,
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        read.total = read.total.saturating_add(chunk.len());
        if read.total > MAX_BODY_BYTES {
            if !read.over_limit {
                read.over_limit = true;
                read.bytes = Vec::new();
            }
            if read.total > DRAIN_LIMIT_BYTES {
                break;
            }
        } else {
            read.bytes.extend_from_slice(&chunk);
        }
    }
    Ok(read)
}

/// Query parameters, then body parameters (form or JSON object), the body winning.
fn parse_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<BTreeMap<String, Value>, String> {
    let mut params = BTreeMap::new();
    if let Some(query) = query {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            params.insert(k.into_owned(), Value::from(v.into_owned()));
        }
    }
    if body.is_empty() {
        return Ok(params);
    }
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if media == "application/json" {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(obj)) => params.extend(obj),
            Ok(_) => return Err("(#100) a JSON body must be an object of parameters".into()),
            Err(e) => return Err(format!("(#100) the JSON body does not parse: {e}")),
        }
    } else if media.starts_with("multipart/") {
        return Err(
            "(#100) multipart bodies are not supported by this emulator: send application/x-www-form-urlencoded or application/json".into(),
        );
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            params.insert(k.into_owned(), Value::from(v.into_owned()));
        }
    }
    Ok(params)
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn redact_params(params: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let mut out = params.clone();
    if let Some(token) = out.get_mut("access_token") {
        *token = Value::from(REDACTED);
    }
    out
}

fn redact_query(query: Option<&str>) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let has_token = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "access_token");
    if !has_token {
        return query.to_owned();
    }
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "access_token" {
            out.append_pair(&k, REDACTED);
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn short(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(100)
        .collect();
    if text.chars().count() > 100 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/v25.0/123/items_batch"),
            (Some(Endpoint::ItemsBatch), "v25.0".into(), "123".into())
        );
        assert_eq!(
            route("/v1.0/12%2F3/check_batch_request_status/"),
            (Some(Endpoint::BatchStatus), "v1.0".into(), "12/3".into())
        );
        assert_eq!(route("/v25.0/123").0, Some(Endpoint::Catalog));
        assert_eq!(route("/v25.0/123/products").0, Some(Endpoint::Products));
        assert_eq!(route("/v25.0/123/product_sets").0, None);
        assert_eq!(route("/").0, None);
        assert_eq!(route("/a/b/c/d").0, None);
    }

    #[test]
    fn versions() {
        assert!(is_version("v25.0"));
        assert!(is_version("v2.12"));
        assert!(!is_version("25.0"));
        assert!(!is_version("v25"));
        assert!(!is_version("vx.0"));
    }

    #[test]
    fn query_redaction() {
        assert_eq!(redact_query(None), "");
        assert_eq!(redact_query(Some("a=1&b=2")), "a=1&b=2");
        let q = redact_query(Some("handle=h&access_token=SECRET"));
        assert!(!q.contains("SECRET"));
        assert!(q.contains("handle=h"));
    }

    #[test]
    fn params_from_form_and_json() {
        let p = parse_params(Some("a=1"), None, b"b=2&a=3").unwrap();
        assert_eq!(p["a"], "3");
        assert_eq!(p["b"], "2");
        let p = parse_params(
            None,
            Some("application/json; charset=utf-8"),
            br#"{"x":[1]}"#,
        )
        .unwrap();
        assert_eq!(p["x"], json!([1]));
        assert!(parse_params(None, Some("application/json"), b"[1]").is_err());
        assert!(parse_params(None, Some("application/json"), b"{").is_err());
        assert!(parse_params(None, Some("multipart/form-data; boundary=x"), b"--x").is_err());
    }

    #[test]
    fn truthy_values() {
        assert!(is_true(Some(&json!(true))));
        assert!(is_true(Some(&json!("true"))));
        assert!(is_true(Some(&json!("1"))));
        assert!(!is_true(Some(&json!("false"))));
        assert!(!is_true(None));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), None);
    }
}
