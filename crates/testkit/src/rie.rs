//! A compiled Lambda function running under AWS's own Runtime Interface Emulator
//! (`aws-lambda-rie`), invoked over the emulator's HTTP invoke endpoint.
//!
//! The RIE is the Runtime API that AWS ships (it runs inside `sam local invoke` and the Lambda
//! base images), so the functions are tested against the real protocol peer rather than an
//! imitation. A Rust `lambda_runtime` binary is the RIE's handler command as it is: it reads
//! `AWS_LAMBDA_RUNTIME_API`, which the RIE sets, so no bootstrap script is needed.
//!
//! What the pinned RIE (SAM CLI 1.170.0) does, checked by this crate's tests
//! (`tests/rie.rs`), and what [`RieFunction`] builds on:
//! - It starts the function lazily, on the first invoke, and restarts it on the next invoke
//!   after a timeout or a crash. The function's stdout and stderr are the RIE's own, so one pipe
//!   carries the function's lines and the RIE's `START`/`END`/`REPORT` lines in write order.
//! - `AWS_LAMBDA_FUNCTION_TIMEOUT` (whole seconds) is honoured: the deadline the function sees
//!   is the invoke's arrival plus the timeout (the init of a cold start counts against it, unlike
//!   on AWS); past it the invocation answers `Task timed out after N.00 seconds` and the
//!   function is killed. `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` and `AWS_LAMBDA_FUNCTION_NAME` reach
//!   the function (the invoked ARN is always `arn:aws:lambda:us-east-1:012345678912:function:NAME`).
//!   An `X-Amzn-RequestId` header on the invoke becomes the request id. No trace id is sent.
//! - A function error answers HTTP 200 with the posted `{"errorType", "errorMessage"}` document
//!   (the `Lambda-Runtime-Function-Error-Type` header is not surfaced); a crash answers 502
//!   `Runtime.ExitError`; an `/init/error` answers 502 with the posted document; an exit during
//!   init without a report answers 502 with an empty body.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

use crate::http;

/// Environment variable naming the `aws-lambda-rie` binary to use instead of the SAM CLI's.
pub const RIE_BIN_VAR: &str = "AWS_LAMBDA_RIE_BIN";
/// The RIE's invoke path (the function is always called `function` in the URL).
const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";
/// Region given to the function's environment (moto's region).
const REGION: &str = "us-east-1";
/// Environment variables passed from the test process to the RIE and the function.
const PASS_THROUGH_ENV: &[&str] = &[
    "PATH",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_LOG",
    "LLVM_PROFILE_FILE",
];
/// Bound on the RIE's start (listening) and on its output catching up with an answer: only
/// reached when something is truly broken, never part of a normal run.
const SETTLE_BOUND: Duration = Duration::from_secs(60);
/// Added to the function timeout to bound the invoke request: the RIE answers by the function
/// timeout itself, so this is only reached if the RIE hangs.
const INVOKE_MARGIN: Duration = Duration::from_secs(120);
/// Attempts at starting the RIE when a free port was taken between choosing and binding it.
const START_ATTEMPTS: usize = 5;

/// The `aws-lambda-rie` binary: `$AWS_LAMBDA_RIE_BIN`, else the one in the SAM CLI installed in
/// `<workspace root>/.tools/sam/` for this machine's architecture.
///
/// Panics naming `make tools` / `infra/install-tools.sh sam` when it is missing.
pub fn rie_binary() -> PathBuf {
    let from_env = std::env::var_os(RIE_BIN_VAR).filter(|v| !v.is_empty());
    locate_rie(
        from_env.map(PathBuf::from),
        &crate::workspace_root().join(".tools/sam"),
        std::env::consts::ARCH,
    )
}

/// [`rie_binary`] with its inputs explicit, so the search and its messages are unit-tested.
fn locate_rie(from_env: Option<PathBuf>, sam_venv: &Path, arch: &str) -> PathBuf {
    if let Some(bin) = from_env {
        if !bin.is_file() {
            panic!(
                "testkit: {RIE_BIN_VAR} is {} but that file does not exist",
                bin.display()
            );
        }
        return bin;
    }
    // The SAM CLI ships one RIE build per Lambda architecture.
    let suffix = match arch {
        "aarch64" => "arm64",
        other => other,
    };
    let file = format!("aws-lambda-rie-{suffix}");
    let lib = sam_venv.join("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| {
                e.path()
                    .join("site-packages/samcli/local/rapid")
                    .join(&file)
            })
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(bin) => bin,
        None => panic!(
            "testkit: aws-lambda-rie not installed: no {}/python3*/site-packages/samcli/local/rapid/{file}.\n\
             It ships with the pinned SAM CLI: run `make tools` or `infra/install-tools.sh sam`, \
             or point {RIE_BIN_VAR} at an aws-lambda-rie binary.",
            lib.display()
        ),
    }
}

/// How the function is configured, as the RIE reads it from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSettings {
    /// `AWS_LAMBDA_FUNCTION_NAME` (also the last part of the invoked ARN).
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_TIMEOUT`; the RIE counts whole seconds.
    pub timeout: Duration,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` in MB.
    pub memory_mb: u32,
}

impl Default for FunctionSettings {
    fn default() -> Self {
        FunctionSettings {
            name: "testkit-function".to_owned(),
            timeout: Duration::from_secs(120),
            memory_mb: 256,
        }
    }
}

impl FunctionSettings {
    /// Default settings for a function called `name`.
    pub fn named(name: &str) -> FunctionSettings {
        FunctionSettings {
            name: name.to_owned(),
            ..FunctionSettings::default()
        }
    }

    /// The same settings with `timeout` (whole seconds, at least one).
    pub fn timeout(mut self, timeout: Duration) -> FunctionSettings {
        self.timeout = timeout;
        self
    }

    /// The same settings with `memory_mb`.
    pub fn memory_mb(mut self, memory_mb: u32) -> FunctionSettings {
        self.memory_mb = memory_mb;
        self
    }

    fn timeout_secs(&self) -> u64 {
        if self.timeout.subsec_nanos() != 0 || self.timeout.is_zero() {
            panic!(
                "testkit: the RIE takes AWS_LAMBDA_FUNCTION_TIMEOUT in whole seconds; {:?} is not",
                self.timeout
            );
        }
        self.timeout.as_secs()
    }
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function answered; a body that is not JSON is kept as a JSON string.
    Response(Value),
    /// The invocation failed.
    Error {
        /// The `errorType` the RIE answered: the function's own (from its error document), or
        /// `Sandbox.Timedout`, `Runtime.ExitError`, the init error's type, or `Sandbox.Failure`
        /// when the RIE answered 502 with no document (an exit during init).
        error_type: String,
        /// The error document (`{"errorType", "errorMessage"}`), `null` when there was none.
        body: Value,
    },
}

/// The result of [`RieFunction::invoke`].
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The request id the function saw (sent to the RIE as `X-Amzn-RequestId`).
    pub request_id: String,
    /// The response or error.
    pub outcome: Outcome,
    /// HTTP status of the RIE's answer (200, or 502 for crashes and init errors).
    pub status: u16,
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

/// Reads the RIE's answer the way the Invoke API reports it.
fn outcome(status: u16, body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    if status == 200 && text.starts_with("Task timed out after") {
        return Outcome::Error {
            error_type: "Sandbox.Timedout".to_owned(),
            body: json!({"errorType": "Sandbox.Timedout", "errorMessage": text}),
        };
    }
    let document = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or_else(|_| Value::String(text.into_owned()))
    };
    // The RIE answers a function error with 200 and the error document alone; the document's
    // shape is the only sign of it (Lambda's `X-Amz-Function-Error` header is not emulated).
    let is_error_document = document.as_object().is_some_and(|fields| {
        fields.get("errorType").is_some_and(Value::is_string)
            && fields.contains_key("errorMessage")
            && fields
                .keys()
                .all(|k| matches!(k.as_str(), "errorType" | "errorMessage" | "stackTrace"))
    });
    match status {
        200 if !is_error_document => Outcome::Response(document),
        200 | 502 if is_error_document => Outcome::Error {
            error_type: document["errorType"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body: document,
        },
        502 if document.is_null() => Outcome::Error {
            error_type: "Sandbox.Failure".to_owned(),
            body: document,
        },
        other => Outcome::Error {
            error_type: format!("HTTP {other}"),
            body: document,
        },
    }
}

/// Lines the RIE and the function wrote, with a signal for each new one.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
    /// Set when the pipe closed (the RIE and the function are gone).
    closed: Mutex<bool>,
}

impl Logs {
    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: String) {
        self.lock().push(line);
        self.grew.notify_all();
    }

    fn close(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = true;
        // Take the lines lock so a waiter between its check and its wait sees the wake-up.
        drop(self.lock());
        self.grew.notify_all();
    }

    fn is_closed(&self) -> bool {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a line satisfies `found` or `bound` passes; returns whether one did.
    fn wait_for(&self, bound: Duration, found: impl Fn(&str) -> bool) -> bool {
        let give_up = Instant::now() + bound;
        let mut lines = self.lock();
        let mut checked = 0;
        loop {
            if lines[checked..].iter().any(|l| found(l)) {
                return true;
            }
            checked = lines.len();
            let now = Instant::now();
            if now >= give_up || self.is_closed() {
                return false;
            }
            lines = self
                .grew
                .wait_timeout(lines, give_up - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A compiled Lambda function binary running under `aws-lambda-rie` on 127.0.0.1.
///
/// [`RieFunction::start`] starts the RIE with the binary as its handler and both of its
/// addresses on free 127.0.0.1 ports (its defaults are wildcard addresses). The environment is
/// clean like on AWS: the function settings, the region, a few variables of the test process
/// (`PATH`, `TMPDIR`, `RUST_LOG`, `RUST_BACKTRACE`, `LLVM_PROFILE_FILE`), then the caller's
/// `env`, which wins. Everything the RIE and the function print is kept ([`RieFunction::logs`])
/// and printed if the test panics. On drop the RIE is stopped (it kills the function) and any
/// function process left is killed.
pub struct RieFunction {
    binary: PathBuf,
    settings: FunctionSettings,
    child: Mutex<Child>,
    invoke_address: SocketAddr,
    runtime_api_address: SocketAddr,
    logs: Arc<Logs>,
}

impl std::fmt::Debug for RieFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RieFunction")
            .field("binary", &self.binary)
            .field("settings", &self.settings)
            .field("invoke_address", &self.invoke_address)
            .field("runtime_api_address", &self.runtime_api_address)
            .finish()
    }
}

impl RieFunction {
    /// Starts `aws-lambda-rie` running `binary` with `settings` and `env`, and waits until it
    /// accepts invocations. The function process itself starts on the first invoke.
    ///
    /// Panics if the RIE is missing or does not start.
    pub fn start(
        binary: impl AsRef<Path>,
        settings: &FunctionSettings,
        env: &[(String, String)],
    ) -> RieFunction {
        let binary = binary.as_ref().to_path_buf();
        let rie = rie_binary();
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match RieFunction::try_start(&rie, &binary, settings, env) {
                Ok(function) => return function,
                // Another process took a chosen port before the RIE bound it: choose again.
                Err(failure) if failure.contains("address already in use") => {
                    last_failure = failure;
                }
                Err(failure) => panic!("testkit: {failure}"),
            }
        }
        panic!("testkit: {last_failure}")
    }

    fn try_start(
        rie: &Path,
        binary: &Path,
        settings: &FunctionSettings,
        env: &[(String, String)],
    ) -> Result<RieFunction, String> {
        let (invoke_address, runtime_api_address) = two_free_ports();
        let mut cmd = Command::new(rie);
        cmd.env_clear();
        for var in PASS_THROUGH_ENV {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        let lambda_env = [
            ("AWS_LAMBDA_FUNCTION_NAME", settings.name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_TIMEOUT",
                settings.timeout_secs().to_string(),
            ),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                settings.memory_mb.to_string(),
            ),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("TZ", ":UTC".to_owned()),
            ("LANG", "en_US.UTF-8".to_owned()),
        ];
        // One pipe for both streams, so lines keep the order they were written in.
        let (reader, writer) =
            std::io::pipe().map_err(|e| format!("cannot create a pipe for the RIE: {e}"))?;
        let writer_too = writer
            .try_clone()
            .map_err(|e| format!("cannot duplicate the RIE's pipe: {e}"))?;
        cmd.envs(lambda_env)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("--runtime-interface-emulator-address")
            .arg(invoke_address.to_string())
            .arg("--runtime-api-address")
            .arg(runtime_api_address.to_string())
            .arg(binary)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_too);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} for {}: {e}",
                rie.display(),
                binary.display()
            )
        })?;
        // The Command holds the write ends: drop it so the pipe closes when the RIE is gone.
        drop(cmd);

        let logs = Arc::new(Logs::default());
        {
            let logs = logs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rie-output-{}", child.id()))
                .spawn(move || capture(reader, &logs));
            if let Err(e) = spawned {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot start the RIE's output reader: {e}"));
            }
        }
        let function = RieFunction {
            binary: binary.to_path_buf(),
            settings: settings.clone(),
            child: Mutex::new(child),
            invoke_address,
            runtime_api_address,
            logs,
        };
        function.wait_until_listening()?;
        Ok(function)
    }

    /// Waits until the invoke endpoint accepts a connection, or the RIE exits.
    fn wait_until_listening(&self) -> Result<(), String> {
        let give_up = Instant::now() + SETTLE_BOUND;
        loop {
            if TcpStream::connect_timeout(&self.invoke_address, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.lock_child().try_wait() {
                // Let the reader take the RIE's last words (the pipe closes once it is gone).
                self.logs.wait_for(SETTLE_BOUND, |_| false);
                return Err(format!(
                    "aws-lambda-rie exited ({status}) before accepting invocations:\n{}",
                    self.logs().join("\n")
                ));
            }
            if Instant::now() >= give_up {
                return Err(format!(
                    "aws-lambda-rie did not listen on {} within {SETTLE_BOUND:?}:\n{}",
                    self.invoke_address,
                    self.logs().join("\n")
                ));
            }
            // Polling a condition with an overall bound: the RIE prints nothing when ready.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings the function runs with.
    pub fn settings(&self) -> &FunctionSettings {
        &self.settings
    }

    /// `host:port` of the RIE's invoke endpoint (always on 127.0.0.1).
    pub fn invoke_address(&self) -> SocketAddr {
        self.invoke_address
    }

    /// `host:port` of the Runtime API the function talks to (always on 127.0.0.1).
    pub fn runtime_api_address(&self) -> SocketAddr {
        self.runtime_api_address
    }

    /// The process id of the RIE.
    pub fn rie_pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// The process ids of the function processes the RIE is running now (Linux; empty
    /// elsewhere or before the first invoke).
    pub fn function_pids(&self) -> Vec<u32> {
        children_of(self.rie_pid())
    }

    /// Invokes the function with `event` and waits for the outcome; afterwards [`logs`] holds
    /// everything the function printed for it.
    ///
    /// [`logs`]: RieFunction::logs
    pub async fn invoke(&self, event: Value) -> Invocation {
        let call = self.invoke_call(event);
        let logs = self.logs.clone();
        match tokio::task::spawn_blocking(move || call.run(&logs)).await {
            Ok(invocation) => invocation,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("testkit: the invoke task was cancelled: {e}"),
        }
    }

    /// [`RieFunction::invoke`] for synchronous code (benchmarks, plain `#[test]`s).
    pub fn invoke_blocking(&self, event: Value) -> Invocation {
        self.invoke_call(event).run(&self.logs)
    }

    fn invoke_call(&self, event: Value) -> InvokeCall {
        InvokeCall {
            address: self.invoke_address.to_string(),
            request_id: new_request_id(),
            event: event.to_string().into_bytes(),
            bound: self.settings.timeout + INVOKE_MARGIN,
        }
    }

    /// Every line the RIE and the function printed so far, in the order written.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().clone()
    }

    /// Waits until a printed line contains `needle`; returns whether one did within `bound`.
    pub fn wait_for_log(&self, needle: &str, bound: Duration) -> bool {
        self.logs.wait_for(bound, |line| line.contains(needle))
    }

    /// Each function start's init duration as the RIE reported it (`INIT REPORT`): from the
    /// function process's start to its first `/next`.
    pub fn init_durations(&self) -> Vec<Duration> {
        self.logs()
            .iter()
            .filter_map(|line| init_report_duration(line))
            .collect()
    }
}

impl Drop for RieFunction {
    fn drop(&mut self) {
        let rie_pid = self.rie_pid();
        let functions = children_of(rie_pid);
        // SIGTERM lets the RIE SIGKILL the function and reap it; SIGKILL is the fallback.
        let _ = Command::new("kill")
            .args(["-TERM", &rie_pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut child = self.lock_child();
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        drop(child);
        for pid in functions {
            if is_running(pid, &self.binary) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "testkit: output of aws-lambda-rie running {}:\n{}",
                self.binary.display(),
                self.logs().join("\n")
            );
        }
    }
}

/// One invoke request, owned so it can run on a blocking thread.
struct InvokeCall {
    address: String,
    request_id: String,
    event: Vec<u8>,
    bound: Duration,
}

impl InvokeCall {
    fn run(self, logs: &Logs) -> Invocation {
        let answer = http::request(
            &self.address,
            "POST",
            INVOKE_PATH,
            &[
                ("Content-Type", "application/json"),
                ("X-Amzn-RequestId", &self.request_id),
            ],
            &self.event,
            self.bound,
        )
        .unwrap_or_else(|e| {
            panic!(
                "testkit: invoking the RIE at {} failed: {e}\n{}",
                self.address,
                logs.lock().join("\n")
            )
        });
        let outcome = outcome(answer.status, &answer.body);
        // The RIE prints `END RequestId` once the function answered or timed out; the function
        // printed its lines to the same pipe before, so once END is read they all are.
        if answer.status == 200 {
            let end = format!("END RequestId: {}", self.request_id);
            if !logs.wait_for(SETTLE_BOUND, |line| line.starts_with(&end)) {
                panic!(
                    "testkit: the RIE answered invocation {} but never printed `{end}`:\n{}",
                    self.request_id,
                    logs.lock().join("\n")
                );
            }
        }
        Invocation {
            request_id: self.request_id,
            outcome,
            status: answer.status,
        }
    }
}

/// Two distinct free ports on 127.0.0.1 (both held until both are chosen).
fn two_free_ports() -> (SocketAddr, SocketAddr) {
    let bind = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr().map(|a| (l, a)))
            .unwrap_or_else(|e| panic!("testkit: cannot find a free port on 127.0.0.1: {e}"))
    };
    let (first, first_addr) = bind();
    let (second, second_addr) = bind();
    drop((first, second));
    (first_addr, second_addr)
}

/// Reads lines from the RIE's pipe into `logs` until it closes.
fn capture(stream: std::io::PipeReader, logs: &Logs) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                logs.push(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }
    logs.close();
}

/// Child process ids of `pid`, from `/proc/<pid>/task/*/children` (Linux).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Whether `pid` is alive and still runs `binary` (so a reused pid is never signalled).
fn is_running(pid: u32, binary: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        Path::new(&*String::from_utf8_lossy(program)) == binary
    })
}

/// The duration in an RIE `INIT REPORT(durationMs: 589.318000)` line.
fn init_report_duration(line: &str) -> Option<Duration> {
    let rest = line.split_once("INIT REPORT(durationMs: ")?.1;
    let millis: f64 = rest.split(')').next()?.trim().parse().ok()?;
    (millis.is_finite() && millis >= 0.0).then(|| Duration::from_secs_f64(millis / 1000.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_like_the_invoke_api() {
        assert_eq!(
            outcome(200, br#"{"archived":["a"]}"#),
            Outcome::Response(json!({"archived": ["a"]}))
        );
        assert_eq!(
            outcome(200, b"not json"),
            Outcome::Response(json!("not json"))
        );
        assert_eq!(
            outcome(200, br#"{"errorType":"Boom","errorMessage":"it broke"}"#),
            Outcome::Error {
                error_type: "Boom".to_owned(),
                body: json!({"errorType": "Boom", "errorMessage": "it broke"}),
            }
        );
        // A response that merely mentions an error type is still a response.
        assert!(matches!(
            outcome(200, br#"{"errorType":"x","errorMessage":"y","counts":{}}"#),
            Outcome::Response(_)
        ));
        let timed_out = outcome(200, b"Task timed out after 2.00 seconds");
        assert_eq!(
            timed_out,
            Outcome::Error {
                error_type: "Sandbox.Timedout".to_owned(),
                body: json!({"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 2.00 seconds"}),
            }
        );
        assert_eq!(
            outcome(
                502,
                br#"{"errorType":"Runtime.ExitError","errorMessage":"exit status 3"}"#
            ),
            Outcome::Error {
                error_type: "Runtime.ExitError".to_owned(),
                body: json!({"errorType": "Runtime.ExitError", "errorMessage": "exit status 3"}),
            }
        );
        assert_eq!(
            outcome(502, b""),
            Outcome::Error {
                error_type: "Sandbox.Failure".to_owned(),
                body: Value::Null,
            }
        );
        assert_eq!(
            outcome(413, b"too big"),
            Outcome::Error {
                error_type: "HTTP 413".to_owned(),
                body: json!("too big"),
            }
        );
    }

    #[test]
    fn init_reports_give_the_init_duration() {
        assert_eq!(
            init_report_duration(
                "01 Dec 2026 21:34:29,627 [INFO] (rapid) INIT REPORT(durationMs: 589.318000)"
            ),
            Some(Duration::from_secs_f64(0.589318))
        );
        assert_eq!(init_report_duration("INIT START(type: on-demand)"), None);
        assert_eq!(init_report_duration("INIT REPORT(durationMs: -1)"), None);
    }

    #[test]
    fn the_rie_is_found_in_the_sam_cli_for_the_architecture() {
        let venv = tempfile::tempdir().unwrap();
        let rapid = venv
            .path()
            .join("lib/python3.11/site-packages/samcli/local/rapid");
        std::fs::create_dir_all(&rapid).unwrap();
        std::fs::write(rapid.join("aws-lambda-rie-x86_64"), b"").unwrap();
        std::fs::write(rapid.join("aws-lambda-rie-arm64"), b"").unwrap();
        assert_eq!(
            locate_rie(None, venv.path(), "x86_64"),
            rapid.join("aws-lambda-rie-x86_64")
        );
        assert_eq!(
            locate_rie(None, venv.path(), "aarch64"),
            rapid.join("aws-lambda-rie-arm64")
        );
        let chosen = rapid.join("aws-lambda-rie-x86_64");
        assert_eq!(
            locate_rie(Some(chosen.clone()), Path::new("/nowhere"), "x86_64"),
            chosen
        );
    }

    #[test]
    #[should_panic(expected = "infra/install-tools.sh sam")]
    fn a_missing_rie_names_the_install_command() {
        let venv = tempfile::tempdir().unwrap();
        locate_rie(None, venv.path(), "x86_64");
    }

    #[test]
    #[should_panic(expected = "AWS_LAMBDA_RIE_BIN is /no/such/aws-lambda-rie")]
    fn a_wrong_override_is_named() {
        locate_rie(
            Some(PathBuf::from("/no/such/aws-lambda-rie")),
            Path::new("/nowhere"),
            "x86_64",
        );
    }

    #[test]
    #[should_panic(expected = "whole seconds")]
    fn timeouts_are_whole_seconds() {
        FunctionSettings::default()
            .timeout(Duration::from_millis(1500))
            .timeout_secs();
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
