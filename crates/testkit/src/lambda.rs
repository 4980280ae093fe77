//! An emulator of the AWS Lambda Runtime API and a supervisor for a Lambda binary using it.
//! The behaviour is documented on [`RuntimeApi`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

/// Account id used in the invoked function ARN (moto's default account).
const ACCOUNT_ID: &str = "123456789012";
/// Region used in the invoked function ARN and the function environment.
const REGION: &str = "us-east-1";
/// Default function name for [`RuntimeApi::start`].
const DEFAULT_FUNCTION_NAME: &str = "testkit-function";
/// Lambda's limit for a buffered (non-streamed) function response.
const MAX_RESPONSE_BYTES: usize = 6_291_556;
/// How long an invocation may stay queued with no runtime asking for it.
const PICKUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Environment variables passed from the test process to a [`LambdaProcess`].
const PASS_THROUGH_ENV: &[&str] = &[
    "PATH",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_LOG",
    "LLVM_PROFILE_FILE",
];

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function posted a response; non-JSON bodies are kept as a JSON string.
    Response(Value),
    /// The function (or the emulated service) reported an error.
    Error {
        /// `Lambda-Runtime-Function-Error-Type` as posted (`unhandled` from `lambda_runtime`),
        /// or the service's type: `Sandbox.Timedout`, `Runtime.ExitError`,
        /// `Function.ResponseSizeTooLarge`, or the init error's type.
        error_type: String,
        /// The posted error document (`{"errorType": .., "errorMessage": ..}` from
        /// `lambda_runtime`); non-JSON bodies are kept as a JSON string.
        body: Value,
    },
}

/// The result of [`RuntimeApi::invoke`].
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The request id sent to the function in `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The response or error.
    pub outcome: Outcome,
    /// The deadline sent in `Lambda-Runtime-Deadline-Ms`, if the runtime picked the event up.
    pub deadline_ms: Option<u64>,
    /// Time from the `invoke` call to the outcome (includes waiting for a runtime to ask).
    pub duration: Duration,
}

impl Invocation {
    /// The response document, if the function succeeded.
    pub fn response(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Response(v) => Some(v),
            Outcome::Error { .. } => None,
        }
    }

    /// Whether the invocation ended in an error.
    pub fn is_error(&self) -> bool {
        matches!(self.outcome, Outcome::Error { .. })
    }

    /// The response document; panics with the error if the invocation failed.
    pub fn into_response(self) -> Value {
        match self.outcome {
            Outcome::Response(v) => v,
            Outcome::Error { error_type, body } => panic!(
                "testkit: invocation {} failed with {error_type}: {body}",
                self.request_id
            ),
        }
    }

    /// The error type and document; panics with the response if the invocation succeeded.
    pub fn into_error(self) -> (String, Value) {
        match self.outcome {
            Outcome::Error { error_type, body } => (error_type, body),
            Outcome::Response(v) => panic!(
                "testkit: invocation {} succeeded but an error was expected; response: {v}",
                self.request_id
            ),
        }
    }
}

/// An invocation waiting for a runtime to ask for it.
struct Queued {
    id: String,
    event: Bytes,
    timeout: Duration,
    picked: oneshot::Sender<(Instant, u64)>,
}

/// Mutable emulator state.
#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Every unresolved invocation (queued or running), by request id.
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    /// Request ids handed to a runtime and not yet resolved.
    running: HashSet<String>,
    alive_processes: usize,
    last_exit: Option<String>,
    init_error: Option<(String, Value)>,
}

/// State shared by the server, the invokers and attached processes.
struct Shared {
    function_name: String,
    function_arn: String,
    state: Mutex<State>,
    queued: Notify,
    first_next_at: OnceLock<Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves request `id` with `outcome` if it is still unresolved; returns whether it was.
    fn resolve(&self, id: &str, outcome: Outcome) -> bool {
        let mut state = self.lock();
        state.running.remove(id);
        match state.waiting.remove(id) {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Resolves every unresolved invocation with an error built from its request id.
    fn fail_all(&self, error_type: &str, body: impl Fn(&str) -> Value) {
        let mut state = self.lock();
        state.running.clear();
        state.queue.clear();
        for (id, tx) in state.waiting.drain() {
            let _ = tx.send(Outcome::Error {
                error_type: error_type.to_owned(),
                body: body(&id),
            });
        }
    }

    fn process_started(&self) {
        self.lock().alive_processes += 1;
    }

    fn process_exited(&self, status: &str) {
        let all_gone = {
            let mut state = self.lock();
            state.alive_processes = state.alive_processes.saturating_sub(1);
            state.last_exit = Some(status.to_owned());
            state.alive_processes == 0
        };
        if all_gone {
            self.fail_all("Runtime.ExitError", |id| exit_error_body(id, status));
        }
    }
}

fn exit_error_body(id: &str, status: &str) -> Value {
    json!({
        "errorType": "Runtime.ExitError",
        "errorMessage": format!("RequestId: {id} Error: Runtime exited with error: {status}"),
    })
}

/// Removes an invocation from the emulator if its `invoke` future is dropped early.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.waiting.remove(&self.id);
        state.running.remove(&self.id);
        state.queue.retain(|q| q.id != self.id);
    }
}

/// An emulator of the AWS Lambda Runtime API on a free 127.0.0.1 port.
///
/// It serves from its own thread and Tokio runtime, so it works under any test runtime
/// flavour, and stops on drop. Point a Lambda binary at it with [`LambdaProcess::spawn`], then
/// call [`RuntimeApi::invoke`] as the Lambda service would.
///
/// It follows the real service where a test can observe it:
/// - `GET /2018-06-01/runtime/invocation/next` long-polls until an invocation is queued and
///   answers with the event as the body and the `Lambda-Runtime-Aws-Request-Id`,
///   `Lambda-Runtime-Deadline-Ms` (epoch ms), `Lambda-Runtime-Invoked-Function-Arn` and
///   `Lambda-Runtime-Trace-Id` headers.
/// - The deadline is fixed when the runtime *receives* the event, so init time does not count
///   against the function timeout (as on AWS, and so a slow debug-build start cannot eat a short
///   test timeout). With no answer by the deadline the invocation ends as `Sandbox.Timedout`,
///   and a late answer for it gets HTTP 400. The process is not restarted after a timeout.
/// - `POST .../invocation/{id}/response` and `.../error` answer 202; an unknown or finished
///   request id gets 400 `InvalidRequestID`; a response over 6 MB gets 413 and the invocation
///   fails with `Function.ResponseSizeTooLarge`.
/// - `POST /2018-06-01/runtime/init/error` answers 202 and fails the pending invocations with
///   the posted error type and document, as the Invoke API would.
/// - When every [`LambdaProcess`] attached to it has exited, pending and later invocations fail
///   at once with `Runtime.ExitError` instead of waiting for a runtime.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("address", &self.addr)
            .field("function_arn", &self.shared.function_arn)
            .finish()
    }
}

impl RuntimeApi {
    /// Starts an emulator for a function named `testkit-function`.
    pub fn start() -> RuntimeApi {
        RuntimeApi::start_named(DEFAULT_FUNCTION_NAME)
    }

    /// Starts an emulator for a function called `function_name` (used in the invoked function
    /// ARN and in the environment of spawned processes).
    pub fn start_named(function_name: &str) -> RuntimeApi {
        let shared = Arc::new(Shared {
            function_name: function_name.to_owned(),
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            state: Mutex::new(State::default()),
            queued: Notify::new(),
            first_next_at: OnceLock::new(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("testkit: Runtime API cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("testkit: Runtime API has no local address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("testkit: Runtime API listener setup failed: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                panic!("testkit: cannot build the Runtime API's Tokio runtime: {e}")
            });
        let router = router(shared.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("runtime-api-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("testkit: Runtime API listener failed: {e}");
                            return;
                        }
                    };
                    let serve = std::future::IntoFuture::into_future(axum::serve(listener, router));
                    tokio::select! {
                        result = serve => {
                            if let Err(e) = result {
                                eprintln!("testkit: Runtime API server failed: {e}");
                            }
                        }
                        _ = stop => {}
                    }
                });
            })
            .unwrap_or_else(|e| panic!("testkit: cannot start the Runtime API thread: {e}"));
        RuntimeApi {
            shared,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `host:port`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The function name used in the ARN and the spawned process's environment.
    pub fn function_name(&self) -> &str {
        &self.shared.function_name
    }

    /// The ARN sent in `Lambda-Runtime-Invoked-Function-Arn`.
    pub fn function_arn(&self) -> &str {
        &self.shared.function_arn
    }

    /// When a runtime first called `/next` (the end of its init phase), if one has.
    pub fn first_next_at(&self) -> Option<Instant> {
        self.shared.first_next_at.get().copied()
    }

    /// The type and document of the last `/init/error` a runtime posted, if any.
    pub fn init_error(&self) -> Option<(String, Value)> {
        self.shared.lock().init_error.clone()
    }

    /// Queues `event`, waits for a runtime to take it and answer, and returns the outcome.
    ///
    /// The deadline is `timeout` after the runtime receives the event; with no answer by then
    /// the outcome is a `Sandbox.Timedout` error. Panics if no runtime asks for the event within
    /// 60 s (no process attached or a process hung in init).
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Invocation {
        let started = Instant::now();
        let id = new_request_id();
        let (done_tx, mut done_rx) = oneshot::channel();
        let (picked_tx, picked_rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.alive_processes == 0
                && let Some(status) = state.last_exit.clone()
            {
                return Invocation {
                    outcome: Outcome::Error {
                        error_type: "Runtime.ExitError".to_owned(),
                        body: exit_error_body(&id, &status),
                    },
                    request_id: id,
                    deadline_ms: None,
                    duration: started.elapsed(),
                };
            }
            state.waiting.insert(id.clone(), done_tx);
            state.queue.push_back(Queued {
                id: id.clone(),
                event: Bytes::from(event.to_string()),
                timeout,
                picked: picked_tx,
            });
        }
        self.shared.queued.notify_one();
        let _guard = PendingGuard {
            shared: &self.shared,
            id: id.clone(),
        };
        let finish = |outcome: Outcome, deadline_ms: Option<u64>| Invocation {
            request_id: id.clone(),
            outcome,
            deadline_ms,
            duration: started.elapsed(),
        };

        // Phase 1: wait for a runtime to take the event (or for init/exit errors).
        let picked = tokio::select! {
            biased;
            outcome = &mut done_rx => match outcome {
                Ok(outcome) => return finish(outcome, None),
                Err(_) => panic!("testkit: Runtime API dropped invocation {id}"),
            },
            picked = picked_rx => picked.ok(),
            _ = tokio::time::sleep(PICKUP_TIMEOUT) => panic!(
                "testkit: no runtime asked for invocation {id} within {PICKUP_TIMEOUT:?}: is a \
                 LambdaProcess attached to {} and past its init phase?",
                self.address()
            ),
        };
        let Some((picked_at, deadline_ms)) = picked else {
            // Removed from the queue without being delivered: resolved by init/exit errors.
            return match done_rx.await {
                Ok(outcome) => finish(outcome, None),
                Err(_) => panic!("testkit: Runtime API dropped invocation {id}"),
            };
        };

        // Phase 2: wait for the answer until the deadline.
        let deadline = tokio::time::Instant::from_std(picked_at + timeout);
        match tokio::time::timeout_at(deadline, &mut done_rx).await {
            Ok(Ok(outcome)) => finish(outcome, Some(deadline_ms)),
            Ok(Err(_)) => panic!("testkit: Runtime API dropped invocation {id}"),
            Err(_) => {
                let timed_out = Outcome::Error {
                    error_type: "Sandbox.Timedout".to_owned(),
                    body: json!({
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": format!(
                            "RequestId: {id} Error: Task timed out after {:.2} seconds",
                            timeout.as_secs_f64()
                        ),
                    }),
                };
                // Unless an answer won the race, this resolves the invocation as timed out;
                // either way the outcome is now in the channel.
                self.shared.resolve(&id, timed_out);
                match done_rx.await {
                    Ok(outcome) => finish(outcome, Some(deadline_ms)),
                    Err(_) => panic!("testkit: Runtime API dropped invocation {id}"),
                }
            }
        }
    }

    /// [`RuntimeApi::invoke`] for synchronous code (benchmarks, plain `#[test]`s).
    ///
    /// Panics when called from inside an async runtime; use `invoke(..).await` there.
    pub fn invoke_blocking(&self, event: Value, timeout: Duration) -> Invocation {
        if tokio::runtime::Handle::try_current().is_ok() {
            panic!(
                "testkit: invoke_blocking called inside an async runtime; use `invoke(..).await`"
            );
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| {
                panic!("testkit: cannot build a Tokio runtime for invoke_blocking: {e}")
            });
        runtime.block_on(self.invoke(event, timeout))
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        // Size limits are checked by the handlers, with Lambda's limit and error.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn accepted() -> Response {
    json_response(StatusCode::ACCEPTED, json!({"status": "OK"}))
}

fn invalid_request_id(id: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({
            "errorType": "InvalidRequestID",
            "errorMessage": format!("Invalid request ID: {id}"),
        }),
    )
}

/// Parses a posted document: JSON if it is JSON, `null` if empty, a string otherwise.
fn parse_body(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn next_invocation(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    shared.first_next_at.get_or_init(Instant::now);
    loop {
        let notified = shared.queued.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let queued = {
            let mut state = shared.lock();
            let mut found = None;
            while let Some(q) = state.queue.pop_front() {
                if state.waiting.contains_key(&q.id) {
                    state.running.insert(q.id.clone());
                    found = Some(q);
                    break;
                }
            }
            found
        };
        if let Some(q) = queued {
            return deliver(&shared, q);
        }
        notified.await;
    }
}

fn deliver(shared: &Shared, q: Queued) -> Response {
    let now = Instant::now();
    let epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let deadline_ms = epoch_ms + q.timeout.as_millis() as u64;
    let _ = q.picked.send((now, deadline_ms));
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", q.id.clone());
    put("lambda-runtime-deadline-ms", deadline_ms.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        shared.function_arn.clone(),
    );
    put("lambda-runtime-trace-id", new_trace_id(epoch_ms / 1000));
    put("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, q.event).into_response()
}

/// Whether `id` is currently running (handed to a runtime and not resolved).
fn is_running(shared: &Shared, id: &str) -> bool {
    shared.lock().running.contains(id)
}

async fn invocation_response(
    AxumState(shared): AxumState<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    if !is_running(&shared, &id) {
        return invalid_request_id(&id);
    }
    if body.len() > MAX_RESPONSE_BYTES {
        let message = format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            body.len()
        );
        shared.resolve(
            &id,
            Outcome::Error {
                error_type: "Function.ResponseSizeTooLarge".to_owned(),
                body: json!({"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message}),
            },
        );
        return json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"errorType": "RequestEntityTooLarge", "errorMessage": message}),
        );
    }
    if shared.resolve(&id, Outcome::Response(parse_body(&body))) {
        accepted()
    } else {
        invalid_request_id(&id)
    }
}

fn error_type(headers: &HeaderMap, default: &str) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(default)
        .to_owned()
}

async fn invocation_error(
    AxumState(shared): AxumState<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_running(&shared, &id) {
        return invalid_request_id(&id);
    }
    let outcome = Outcome::Error {
        error_type: error_type(&headers, "Unhandled"),
        body: parse_body(&body),
    };
    if shared.resolve(&id, outcome) {
        accepted()
    } else {
        invalid_request_id(&id)
    }
}

async fn init_error(
    AxumState(shared): AxumState<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = error_type(&headers, "Runtime.Unknown");
    let document = parse_body(&body);
    shared.lock().init_error = Some((kind.clone(), document.clone()));
    shared.fail_all(&kind, |_| document.clone());
    accepted()
}

/// A random version-4 UUID, the format of Lambda request ids.
fn new_request_id() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An X-Ray trace header in Lambda's format.
fn new_trace_id(epoch_secs: u64) -> String {
    let mut rng = rand::rng();
    let root: [u8; 12] = rng.random();
    let parent: [u8; 8] = rng.random();
    let hex = |bytes: &[u8]| bytes.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "Root=1-{epoch_secs:08x}-{};Parent={};Sampled=0",
        hex(&root),
        hex(&parent)
    )
}

/// A Lambda binary running against a [`RuntimeApi`], with its output captured.
///
/// The process gets a clean environment like on AWS: the Lambda variables
/// (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256`,
/// `AWS_LAMBDA_FUNCTION_VERSION`, log group and stream, `AWS_REGION`, `TZ`, ...), a few
/// variables passed through from the test (`PATH`, `TMPDIR`, `RUST_LOG`, `RUST_BACKTRACE`,
/// `LLVM_PROFILE_FILE`), then the caller's `env`, which wins. It is killed on drop; its output
/// is printed if the test is panicking.
pub struct LambdaProcess {
    binary: PathBuf,
    pid: u32,
    child: Arc<Mutex<Child>>,
    logs: Arc<Mutex<Vec<String>>>,
    exit: Arc<Mutex<Option<ExitStatus>>>,
    exited: Arc<AtomicBool>,
    spawned_at: Instant,
}

impl std::fmt::Debug for LambdaProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaProcess")
            .field("binary", &self.binary)
            .field("pid", &self.pid)
            .field("exit", &self.exit_status())
            .finish()
    }
}

impl LambdaProcess {
    /// Spawns `binary` as the function behind `api`, with `env` added to its environment.
    ///
    /// Panics if the binary cannot be started.
    pub fn spawn(
        binary: impl AsRef<Path>,
        api: &RuntimeApi,
        env: &[(String, String)],
    ) -> LambdaProcess {
        let binary = binary.as_ref().to_path_buf();
        let name = api.function_name();
        let task_root = binary
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let log_stream = format!("2026/01/01/[$LATEST]{}", new_request_id().replace('-', ""));
        let lambda_env = [
            ("AWS_LAMBDA_RUNTIME_API", api.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("LAMBDA_TASK_ROOT", task_root),
            ("_HANDLER", "bootstrap".to_owned()),
            ("TZ", ":UTC".to_owned()),
            ("LANG", "en_US.UTF-8".to_owned()),
        ];

        let mut cmd = Command::new(&binary);
        cmd.env_clear();
        for var in PASS_THROUGH_ENV {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        cmd.envs(lambda_env)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let spawned_at = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "testkit: cannot start Lambda binary {}: {e}",
                binary.display()
            )
        });
        let pid = child.id();
        api.shared.process_started();

        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(capture(out, logs.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(capture(err, logs.clone()));
        }
        let child = Arc::new(Mutex::new(child));
        let exit = Arc::new(Mutex::new(None));
        let exited = Arc::new(AtomicBool::new(false));
        {
            let child = child.clone();
            let exit = exit.clone();
            let exited = exited.clone();
            let shared = api.shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("lambda-monitor-{pid}"))
                .spawn(move || monitor(child, readers, exit, exited, shared));
            if let Err(e) = spawned {
                panic!(
                    "testkit: cannot start the monitor thread for {}: {e}",
                    binary.display()
                );
            }
        }
        LambdaProcess {
            binary,
            pid,
            child,
            logs,
            exit,
            exited,
            spawned_at,
        }
    }

    /// When the process was spawned.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Every line the process wrote to stdout or stderr so far, in arrival order.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits up to `timeout` for a log line containing `needle`; returns whether one appeared.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().iter().any(|line| line.contains(needle)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status, once the process has exited and its output has been read.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for the process to exit; returns its status if it did.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited.load(Ordering::Acquire) {
                return self.exit_status();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            // Give the readers a moment to collect the last lines.
            self.wait_exit(Duration::from_secs(2));
            eprintln!(
                "testkit: output of Lambda process {} (pid {}):\n{}",
                self.binary.display(),
                self.pid,
                self.logs().join("\n")
            );
        }
    }
}

/// Reads lines from a child's pipe into `logs` until end of file.
fn capture(stream: impl Read + Send + 'static, logs: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        line.pop();
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    logs.lock().unwrap_or_else(|p| p.into_inner()).push(text);
                }
            }
        }
    })
}

/// Waits for the child to exit, lets the readers finish, records the status and tells the
/// emulator.
fn monitor(
    child: Arc<Mutex<Child>>,
    readers: Vec<JoinHandle<()>>,
    exit: Arc<Mutex<Option<ExitStatus>>>,
    exited: Arc<AtomicBool>,
    shared: Arc<Shared>,
) {
    let status = loop {
        let polled = child.lock().unwrap_or_else(|p| p.into_inner()).try_wait();
        match polled {
            Ok(Some(status)) => break status.to_string(),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break format!("unknown exit ({e})"),
        }
    };
    for reader in readers {
        let _ = reader.join();
    }
    let recorded = child.lock().unwrap_or_else(|p| p.into_inner()).try_wait();
    if let Ok(Some(s)) = recorded {
        *exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }
    exited.store(true, Ordering::Release);
    shared.process_exited(&status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;

    fn call(
        api: &RuntimeApi,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> http::RawResponse {
        http::request(
            &api.address(),
            method,
            path,
            headers,
            body,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Plays the runtime side with raw HTTP from a thread: next, then `answer`.
    fn fake_runtime(
        api: &RuntimeApi,
        answer: impl FnOnce(&http::RawResponse) -> (String, Vec<(&'static str, &'static str)>, Vec<u8>)
        + Send
        + 'static,
    ) -> std::thread::JoinHandle<(http::RawResponse, http::RawResponse)> {
        let addr = api.address();
        std::thread::spawn(move || {
            let next = http::request(
                &addr,
                "GET",
                "/2018-06-01/runtime/invocation/next",
                &[],
                b"",
                Duration::from_secs(30),
            )
            .unwrap();
            let (path, headers, body) = answer(&next);
            let reply = http::request(
                &addr,
                "POST",
                &path,
                &headers,
                &body,
                Duration::from_secs(10),
            )
            .unwrap();
            (next, reply)
        })
    }

    #[tokio::test]
    async fn next_carries_the_event_and_lambda_headers() {
        let api = RuntimeApi::start_named("unit-fn");
        let runtime = fake_runtime(&api, |next| {
            let id = next
                .header("lambda-runtime-aws-request-id")
                .unwrap()
                .to_owned();
            (
                format!("/2018-06-01/runtime/invocation/{id}/response"),
                vec![],
                br#"{"ok":true}"#.to_vec(),
            )
        });
        let before_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let out = api
            .invoke(json!({"hello": "world"}), Duration::from_secs(7))
            .await;
        let (next, reply) = runtime.join().unwrap();

        assert_eq!(next.status, 200);
        assert_eq!(
            serde_json::from_slice::<Value>(&next.body).unwrap(),
            json!({"hello": "world"})
        );
        assert_eq!(
            next.header("lambda-runtime-aws-request-id"),
            Some(out.request_id.as_str())
        );
        assert_eq!(out.request_id.len(), 36);
        assert_eq!(
            next.header("lambda-runtime-invoked-function-arn"),
            Some("arn:aws:lambda:us-east-1:123456789012:function:unit-fn")
        );
        assert!(
            next.header("lambda-runtime-trace-id")
                .unwrap()
                .starts_with("Root=1-")
        );
        let deadline: u64 = next
            .header("lambda-runtime-deadline-ms")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(out.deadline_ms, Some(deadline));
        assert!(
            deadline >= before_ms + 7_000 && deadline < before_ms + 9_000,
            "{deadline} vs {before_ms}"
        );
        assert_eq!(reply.status, 202);
        assert_eq!(out.outcome, Outcome::Response(json!({"ok": true})));
        assert!(api.first_next_at().is_some());
    }

    #[tokio::test]
    async fn error_records_type_header_and_body() {
        let api = RuntimeApi::start();
        let runtime = fake_runtime(&api, |next| {
            let id = next
                .header("lambda-runtime-aws-request-id")
                .unwrap()
                .to_owned();
            (
                format!("/2018-06-01/runtime/invocation/{id}/error"),
                vec![("Lambda-Runtime-Function-Error-Type", "Custom.Boom")],
                br#"{"errorType":"Boom","errorMessage":"it broke"}"#.to_vec(),
            )
        });
        let out = api.invoke(json!({}), Duration::from_secs(5)).await;
        let (_, reply) = runtime.join().unwrap();
        assert_eq!(reply.status, 202);
        let (kind, body) = out.into_error();
        assert_eq!(kind, "Custom.Boom");
        assert_eq!(body["errorMessage"], "it broke");
    }

    #[tokio::test]
    async fn unknown_or_finished_request_ids_are_rejected() {
        let api = RuntimeApi::start();
        let r = call(
            &api,
            "POST",
            "/2018-06-01/runtime/invocation/nope/response",
            &[],
            b"{}",
        );
        assert_eq!(r.status, 400);
        assert!(r.text().contains("InvalidRequestID"));
        let r = call(
            &api,
            "POST",
            "/2018-06-01/runtime/invocation/nope/error",
            &[],
            b"{}",
        );
        assert_eq!(r.status, 400);
        let r = call(&api, "GET", "/2018-06-01/runtime/nothing-here", &[], b"");
        assert_eq!(r.status, 404);
    }

    #[tokio::test]
    async fn no_answer_by_the_deadline_times_out_and_late_answers_are_refused() {
        let api = RuntimeApi::start();
        let addr = api.address();
        let runtime = std::thread::spawn(move || {
            http::request(
                &addr,
                "GET",
                "/2018-06-01/runtime/invocation/next",
                &[],
                b"",
                Duration::from_secs(30),
            )
            .unwrap()
        });
        let out = api.invoke(json!({}), Duration::from_millis(300)).await;
        let next = runtime.join().unwrap();
        let id = next
            .header("lambda-runtime-aws-request-id")
            .unwrap()
            .to_owned();
        assert!(out.duration >= Duration::from_millis(300));
        let (kind, body) = out.into_error();
        assert_eq!(kind, "Sandbox.Timedout");
        assert!(
            body["errorMessage"]
                .as_str()
                .unwrap()
                .contains("Task timed out after 0.30 seconds")
        );
        let late = call(
            &api,
            "POST",
            &format!("/2018-06-01/runtime/invocation/{id}/response"),
            &[],
            b"{}",
        );
        assert_eq!(late.status, 400);
    }

    #[tokio::test]
    async fn oversized_responses_fail_like_lambda() {
        let api = RuntimeApi::start();
        let runtime = fake_runtime(&api, |next| {
            let id = next
                .header("lambda-runtime-aws-request-id")
                .unwrap()
                .to_owned();
            let mut big = b"\"".to_vec();
            big.extend(std::iter::repeat_n(b'x', MAX_RESPONSE_BYTES));
            big.push(b'"');
            (
                format!("/2018-06-01/runtime/invocation/{id}/response"),
                vec![],
                big,
            )
        });
        let out = api.invoke(json!({}), Duration::from_secs(10)).await;
        let (_, reply) = runtime.join().unwrap();
        assert_eq!(reply.status, 413);
        assert_eq!(out.into_error().0, "Function.ResponseSizeTooLarge");
    }

    #[tokio::test]
    async fn init_error_fails_the_pending_invocation() {
        let api = RuntimeApi::start();
        let addr = api.address();
        let poster = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            http::request(
                &addr,
                "POST",
                "/2018-06-01/runtime/init/error",
                &[("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")],
                br#"{"errorType":"Config","errorMessage":"CATALOG_ID is required"}"#,
                Duration::from_secs(10),
            )
            .unwrap()
        });
        let out = api.invoke(json!({}), Duration::from_secs(5)).await;
        assert_eq!(poster.join().unwrap().status, 202);
        assert_eq!(out.deadline_ms, None);
        let (kind, body) = out.into_error();
        assert_eq!(kind, "Runtime.InitError");
        assert_eq!(body["errorMessage"], "CATALOG_ID is required");
        assert_eq!(api.init_error().unwrap().0, "Runtime.InitError");
    }

    #[test]
    fn invoke_blocking_works_without_a_runtime() {
        let api = RuntimeApi::start();
        let runtime = fake_runtime(&api, |next| {
            let id = next
                .header("lambda-runtime-aws-request-id")
                .unwrap()
                .to_owned();
            (
                format!("/2018-06-01/runtime/invocation/{id}/response"),
                vec![],
                b"not json".to_vec(),
            )
        });
        let out = api.invoke_blocking(json!(1), Duration::from_secs(5));
        runtime.join().unwrap();
        assert_eq!(out.into_response(), json!("not json"));
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(id, new_request_id());
    }
}
