//! A private moto server per test (or one per test process) and helpers on top of it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde::{Deserialize, Deserializer};
use tempfile::TempDir;

use crate::http;
use crate::unique_name;

/// The region every client and child process is configured with.
const REGION: &str = "us-east-1";
/// Static credentials moto accepts (it does not check them).
const ACCESS_KEY_ID: &str = "testing";
/// Static secret key matching [`ACCESS_KEY_ID`].
const SECRET_ACCESS_KEY: &str = "testing";
/// How long `start` waits for moto to answer before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many free ports `start` tries (another process may grab the port we picked).
const START_ATTEMPTS: usize = 3;

/// Runs the real binary with stdin kept as a watchdog pipe.
///
/// `sh -c SCRIPT moto_server -H 127.0.0.1 -p PORT`: moto runs in the background with stdin from
/// /dev/null; a background reader waits for end-of-file on our pipe (fd 3). End-of-file comes
/// when `MotoServer` is dropped *or* when the test process dies in any way (panic abort,
/// SIGKILL), because the write end lives only in the test process. The reader then stops moto
/// (TERM, then KILL after 5 s), so no moto outlives its test process. No `prctl`, no `unsafe`.
const WATCHDOG_SCRIPT: &str = r#"exec 3<&0 </dev/null
"$0" "$@" &
pid=$!
{
  read -r _ <&3
  kill -TERM "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$pid" 2>/dev/null
} &
wait "$pid"
"#;

/// A moto server (local S3, SNS, SQS, Secrets Manager) listening on a free 127.0.0.1 port.
///
/// [`MotoServer::start`] gives each test its own server (about a quarter of a second to start);
/// [`MotoServer::shared`] gives one per test process for tests that use [`unique_name`]s
/// instead of [`MotoServer::reset`]. The server is stopped on drop, and also when the test
/// process dies without dropping it.
pub struct MotoServer {
    child: Child,
    /// The watchdog pipe: dropping it stops the server.
    stdin: Option<ChildStdin>,
    port: u16,
    log_path: PathBuf,
    _log_dir: TempDir,
}

impl std::fmt::Debug for MotoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoServer")
            .field("endpoint", &self.endpoint())
            .field("pid", &self.child.id())
            .field("log", &self.log_path)
            .finish()
    }
}

impl MotoServer {
    /// Starts a new moto server and waits until it answers; panics with its log if it cannot.
    ///
    /// The binary is `$MOTO_SERVER_BIN`, else `<workspace root>/.tools/moto/bin/moto_server`.
    pub fn start() -> MotoServer {
        let bin = moto_bin();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&bin) {
                Ok(server) => return server,
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "testkit: moto server {} did not start ({START_ATTEMPTS} attempts):\n{}",
            bin.display(),
            failures.join("\n---\n")
        );
    }

    /// The process-wide server, started on first use and stopped when the test process exits.
    ///
    /// Tests sharing it run concurrently: give every resource a [`unique_name`] and never call
    /// [`MotoServer::reset`] on it.
    pub fn shared() -> &'static MotoServer {
        static SHARED: OnceLock<MotoServer> = OnceLock::new();
        SHARED.get_or_init(MotoServer::start)
    }

    fn try_start(bin: &Path) -> Result<MotoServer, String> {
        let log_dir = tempfile::Builder::new()
            .prefix("testkit-moto-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory for the moto log: {e}"))?;
        let log_path = log_dir.path().join("moto_server.log");
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot duplicate the log file handle: {e}"))?;
        let port = free_port().map_err(|e| format!("cannot find a free port: {e}"))?;

        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            // Own process group: a terminal's Ctrl-C goes to the test, whose exit then stops
            // moto through the watchdog, and `Drop` can kill the whole group as a last resort.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot spawn /bin/sh to run {}: {e}", bin.display()))?;
        let stdin = child.stdin.take();
        let mut server = MotoServer {
            child,
            stdin,
            port,
            log_path,
            _log_dir: log_dir,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "moto_server exited ({status}) before answering on port {port}; log:\n{}",
                    server.log_text()
                ));
            }
            let probe = http::request(
                &server.address(),
                "GET",
                "/moto-api/",
                &[],
                b"",
                Duration::from_secs(2),
            );
            if matches!(probe, Ok(ref r) if r.status == 200) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                let last = match probe {
                    Ok(r) => format!("HTTP {}", r.status),
                    Err(e) => e.to_string(),
                };
                let log = server.log_text();
                server.stop();
                return Err(format!(
                    "moto_server did not answer GET /moto-api/ on port {port} within {START_TIMEOUT:?} (last: {last}); log:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address())
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Path of the server's log file (its stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log_path.display()))
    }

    /// Deletes every resource in every service (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let response = http::request(
            &self.address(),
            "POST",
            "/moto-api/reset",
            &[],
            b"",
            Duration::from_secs(30),
        );
        match response {
            Ok(r) if r.status == 200 => {}
            Ok(r) => panic!(
                "testkit: moto reset answered HTTP {}: {}",
                r.status,
                r.text()
            ),
            Err(e) => panic!("testkit: moto reset failed: {e}"),
        }
    }

    /// SDK configuration for this server: region us-east-1, static test credentials, endpoint
    /// URL set to the server, latest behaviour version.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "testkit-moto",
            )))
            .endpoint_url(self.endpoint())
            .build()
    }

    /// An S3 client for this server, with path-style addressing.
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// An SNS client for this server.
    pub fn sns_client(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config())
    }

    /// An SQS client for this server.
    pub fn sqs_client(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config())
    }

    /// A Secrets Manager client for this server.
    pub fn secrets_client(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk_config())
    }

    /// Environment for a child process (a Lambda binary, the CLI) whose AWS SDK should use this
    /// server: `AWS_ENDPOINT_URL`, region, static credentials, IMDS disabled.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Creates bucket `name` (in us-east-1, so without a location constraint).
    pub async fn create_bucket(&self, name: &str) {
        if let Err(e) = self.s3_client().create_bucket().bucket(name).send().await {
            fail(&format!("create bucket {name}"), e);
        }
    }

    /// Writes `bytes` to `s3://bucket/key`.
    pub async fn put_object(&self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) {
        let result = self
            .s3_client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes.into()))
            .send()
            .await;
        if let Err(e) = result {
            fail(&format!("put s3://{bucket}/{key}"), e);
        }
    }

    /// The bytes of `s3://bucket/key`, or `None` if there is no such key.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let result = self
            .s3_client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return None,
            Err(e) => fail(&format!("get s3://{bucket}/{key}"), e),
        };
        match output.body.collect().await {
            Ok(data) => Some(data.into_bytes().to_vec()),
            Err(e) => fail(&format!("read the body of s3://{bucket}/{key}"), e),
        }
    }

    /// Every key in `bucket` that starts with `prefix` (all pages), in S3's (lexicographic) order.
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let client = self.s3_client();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => keys.extend(page.contents().iter().filter_map(|o| o.key.clone())),
                Err(e) => fail(&format!("list s3://{bucket}/{prefix}"), e),
            }
        }
        keys
    }

    /// Creates SNS topic `name` and returns its ARN.
    pub async fn create_topic(&self, name: &str) -> String {
        match self.sns_client().create_topic().name(name).send().await {
            Ok(out) => out
                .topic_arn
                .unwrap_or_else(|| panic!("testkit: create topic {name}: no TopicArn returned")),
            Err(e) => fail(&format!("create topic {name}"), e),
        }
    }

    /// Creates SQS queue `name` and returns its URL.
    pub async fn create_queue(&self, name: &str) -> String {
        match self
            .sqs_client()
            .create_queue()
            .queue_name(name)
            .send()
            .await
        {
            Ok(out) => out
                .queue_url
                .unwrap_or_else(|| panic!("testkit: create queue {name}: no QueueUrl returned")),
            Err(e) => fail(&format!("create queue {name}"), e),
        }
    }

    /// The ARN of the queue at `queue_url`.
    pub async fn queue_arn(&self, queue_url: &str) -> String {
        let result = self
            .sqs_client()
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await;
        match result {
            Ok(out) => out
                .attributes
                .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
                .unwrap_or_else(|| panic!("testkit: queue {queue_url} has no QueueArn attribute")),
            Err(e) => fail(&format!("get the ARN of queue {queue_url}"), e),
        }
    }

    async fn set_queue_policy(&self, queue_url: &str, policy: serde_json::Value) {
        let result = self
            .sqs_client()
            .set_queue_attributes()
            .queue_url(queue_url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await;
        if let Err(e) = result {
            fail(&format!("set the policy of queue {queue_url}"), e);
        }
    }

    /// Creates a fresh SQS queue subscribed to `topic_arn` and returns the queue URL.
    ///
    /// Raw message delivery is off, so every message is the SNS JSON envelope with `Subject`,
    /// `Message` and `MessageAttributes`; read them with [`MotoServer::receive_sns_messages`].
    pub async fn subscribe_queue_to_topic(&self, topic_arn: &str) -> String {
        let queue_url = self.create_queue(&unique_name("sns-sink")).await;
        let queue_arn = self.queue_arn(&queue_url).await;
        self.set_queue_policy(
            &queue_url,
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}
                }]
            }),
        )
        .await;
        let result = self
            .sns_client()
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "false")
            .return_subscription_arn(true)
            .send()
            .await;
        if let Err(e) = result {
            fail(&format!("subscribe {queue_arn} to {topic_arn}"), e);
        }
        queue_url
    }

    /// Receives (and deletes) SNS envelopes from `queue_url` until at least `expected` have
    /// arrived or `timeout` has passed, then returns everything received, in arrival order.
    ///
    /// Use `expected = 0` with a short timeout to check that nothing was published. Panics if a
    /// message is not an SNS envelope.
    pub async fn receive_sns_messages(
        &self,
        queue_url: &str,
        expected: usize,
        timeout: Duration,
    ) -> Vec<SnsEnvelope> {
        let bodies = self
            .receive_bodies(queue_url, expected, timeout, |_| true)
            .await;
        bodies
            .into_iter()
            .map(|body| {
                SnsEnvelope::parse(&body).unwrap_or_else(|e| {
                    panic!("testkit: message on {queue_url} is not an SNS envelope ({e}): {body}")
                })
            })
            .collect()
    }

    /// Sends S3 `ObjectCreated:*` notifications for keys of `bucket` matching `prefix` and
    /// `suffix` (either may be empty) to a fresh SQS queue, and returns the queue URL.
    ///
    /// The queue policy allows S3 to send; the configuration is added to the bucket's existing
    /// notification configuration. Read events with [`MotoServer::receive_s3_events`].
    pub async fn notify_bucket_to_queue(&self, bucket: &str, prefix: &str, suffix: &str) -> String {
        let queue_url = self.create_queue(&unique_name("s3-events")).await;
        let queue_arn = self.queue_arn(&queue_url).await;
        self.set_queue_policy(
            &queue_url,
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{bucket}")}}
                }]
            }),
        )
        .await;

        let mut rules = Vec::new();
        for (name, value) in [
            (FilterRuleName::Prefix, prefix),
            (FilterRuleName::Suffix, suffix),
        ] {
            if !value.is_empty() {
                rules.push(FilterRule::builder().name(name).value(value).build());
            }
        }
        let mut queue_config = QueueConfiguration::builder()
            .id(unique_name("to-sqs"))
            .queue_arn(&queue_arn)
            .events(Event::from("s3:ObjectCreated:*"));
        if !rules.is_empty() {
            queue_config = queue_config.filter(
                NotificationConfigurationFilter::builder()
                    .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                    .build(),
            );
        }
        let queue_config = queue_config.build().unwrap_or_else(|e| {
            panic!("testkit: invalid queue configuration for {queue_arn}: {e}")
        });

        let s3 = self.s3_client();
        let existing = match s3
            .get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out,
            // moto 5.2 answers a bucket without notifications with an empty
            // `<GetBucketNotificationResponse/>` (S3 sends `<NotificationConfiguration/>`),
            // which the SDK cannot parse: that answer means "nothing configured".
            Err(e) if is_moto_empty_notification_answer(&e) => {
                aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput::builder().build()
            }
            Err(e) => fail(&format!("get the notification configuration of {bucket}"), e),
        };
        let mut queues = existing.queue_configurations.unwrap_or_default();
        queues.push(queue_config);
        let config = NotificationConfiguration::builder()
            .set_queue_configurations(Some(queues))
            .set_topic_configurations(existing.topic_configurations)
            .set_lambda_function_configurations(existing.lambda_function_configurations)
            .set_event_bridge_configuration(existing.event_bridge_configuration)
            .build();
        let result = s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(config)
            .send()
            .await;
        if let Err(e) = result {
            fail(
                &format!("put the notification configuration of {bucket}"),
                e,
            );
        }
        queue_url
    }

    /// Waits up to `timeout` for S3 event notifications on `queue_url` and returns (and deletes)
    /// every one available once the first has arrived; empty if none came in time.
    ///
    /// Each item is the message body exactly as moto produced it (a JSON object with
    /// `Records`); S3's `s3:TestEvent` messages are skipped. Object keys are form-encoded as
    /// on AWS (space as `+`), except that moto also encodes `/` as `%2F`. moto leaves out fields that
    /// `aws_lambda_events::s3::S3Event` requires: pass a body through [`complete_s3_event`]
    /// before handing it to code that deserializes that type.
    pub async fn receive_s3_events(&self, queue_url: &str, timeout: Duration) -> Vec<String> {
        self.receive_s3_events_at_least(queue_url, 1, timeout).await
    }

    /// Like [`MotoServer::receive_s3_events`], but waits until at least `expected` events have
    /// arrived (or `timeout` has passed).
    pub async fn receive_s3_events_at_least(
        &self,
        queue_url: &str,
        expected: usize,
        timeout: Duration,
    ) -> Vec<String> {
        self.receive_bodies(queue_url, expected, timeout, |body| !is_s3_test_event(body))
            .await
    }

    /// Receives and deletes messages until `expected` bodies passing `keep` were collected or
    /// the timeout passed; then drains whatever else is immediately available.
    async fn receive_bodies(
        &self,
        queue_url: &str,
        expected: usize,
        timeout: Duration,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let sqs = self.sqs_client();
        let deadline = Instant::now() + timeout;
        let mut bodies = Vec::new();
        let mut draining = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Long-poll in steps of at most one second; a zero wait is a short poll.
            let wait_secs = if draining {
                0
            } else {
                remaining.as_secs().min(1) as i32
            };
            let result = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait_secs)
                .visibility_timeout(30)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            let messages = match result {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => fail(&format!("receive from {queue_url}"), e),
            };
            let got_any = !messages.is_empty();
            for message in messages {
                if let Some(handle) = message.receipt_handle() {
                    let deleted = sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                    if let Err(e) = deleted {
                        fail(&format!("delete a message from {queue_url}"), e);
                    }
                }
                let body = message.body.unwrap_or_default();
                if keep(&body) {
                    bodies.push(body);
                }
            }
            if draining {
                if !got_any {
                    return bodies;
                }
                continue;
            }
            if bodies.len() >= expected && expected > 0 {
                draining = true;
                continue;
            }
            if Instant::now() >= deadline {
                return bodies;
            }
            if wait_secs == 0 && !got_any {
                tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
            }
        }
    }

    /// Creates a Secrets Manager secret `name` holding the string `value`; returns its ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let result = self
            .secrets_client()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await;
        match result {
            Ok(out) => out
                .arn
                .unwrap_or_else(|| panic!("testkit: create secret {name}: no ARN returned")),
            Err(e) => fail(&format!("create secret {name}"), e),
        }
    }

    /// Stops the server: closes the watchdog pipe, waits, and kills the group if needed.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        // Last resort: the whole process group (the shell, moto and the watchdog reader).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last `n` lines of the log.
    fn log_tail(&self, n: usize) -> Vec<String> {
        let Ok(file) = File::open(&self.log_path) else {
            return Vec::new();
        };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "testkit: last lines of the moto server log ({}):\n{}",
                self.log_path.display(),
                self.log_tail(40).join("\n")
            );
        }
        self.stop();
    }
}

/// Finds the moto_server binary or panics with how to install it.
fn moto_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MOTO_SERVER_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        // A bare command name is looked up on PATH by the shell.
        if bin.components().count() > 1 && !bin.is_file() {
            panic!(
                "testkit: MOTO_SERVER_BIN is {} but that file does not exist",
                bin.display()
            );
        }
        return bin;
    }
    let bin = crate::workspace_root().join(".tools/moto/bin/moto_server");
    if !bin.is_file() {
        panic!(
            "testkit: moto server not installed: {} does not exist.\n\
             Run `make test` (which installs the test tools) or `infra/install-tools.sh moto`, \
             or point MOTO_SERVER_BIN at a moto_server binary.",
            bin.display()
        );
    }
    bin
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether a failed GetBucketNotificationConfiguration is moto's empty-configuration answer.
fn is_moto_empty_notification_answer<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    error.raw_response().is_some_and(|raw| {
        raw.status().as_u16() == 200
            && raw.body().bytes().is_some_and(|body| {
                let text = String::from_utf8_lossy(body);
                text.contains("<GetBucketNotificationResponse") && text.trim_end().ends_with("/>")
            })
    })
}

/// Whether an SQS body is the `s3:TestEvent` S3 sends when a notification is configured.
fn is_s3_test_event(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .map(|v| v.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent"))
        .unwrap_or(false)
}

/// An S3 event notification from moto with the fields real S3 always sends filled in.
///
/// moto's records (5.2) lack `userIdentity`, `requestParameters`, `responseElements`,
/// `s3.bucket.ownerIdentity` and `s3.object.sequencer`; `aws_lambda_events::s3::S3Event`
/// requires the first two, so a raw moto body does not deserialize into it. This adds the
/// missing fields with AWS-shaped placeholder values and leaves every present field unchanged.
/// Panics if `raw` is not a JSON object with a `Records` array.
pub fn complete_s3_event(raw: &str) -> serde_json::Value {
    let mut event: serde_json::Value = serde_json::from_str(raw)
        .unwrap_or_else(|e| panic!("testkit: S3 event is not JSON ({e}): {raw}"));
    let Some(records) = event.get_mut("Records").and_then(|r| r.as_array_mut()) else {
        panic!("testkit: S3 event has no Records array: {raw}");
    };
    let fill = |object: &mut serde_json::Value, key: &str, value: serde_json::Value| {
        if let Some(map) = object.as_object_mut() {
            map.entry(key).or_insert(value);
        }
    };
    for (n, record) in records.iter_mut().enumerate() {
        fill(
            record,
            "userIdentity",
            serde_json::json!({"principalId": "AWS:AIDATESTKIT"}),
        );
        fill(
            record,
            "requestParameters",
            serde_json::json!({"sourceIPAddress": "127.0.0.1"}),
        );
        fill(
            record,
            "responseElements",
            serde_json::json!({
                "x-amz-request-id": format!("TESTKIT{n:09}"),
                "x-amz-id-2": "testkit/placeholder/id2",
            }),
        );
        if let Some(s3) = record.get_mut("s3") {
            if let Some(bucket) = s3.get_mut("bucket") {
                fill(
                    bucket,
                    "ownerIdentity",
                    serde_json::json!({"principalId": "ATESTKIT"}),
                );
            }
            if let Some(object) = s3.get_mut("object") {
                fill(
                    object,
                    "sequencer",
                    serde_json::json!(format!("{:016X}", n + 1)),
                );
            }
        }
    }
    event
}

/// Panics with the full error chain of a failed AWS call.
fn fail<E: std::error::Error>(what: &str, error: E) -> ! {
    panic!("testkit: {what} failed: {}", DisplayErrorContext(error))
}

/// An SNS notification as delivered to an SQS queue without raw message delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsEnvelope {
    /// `Type`: `Notification` for published messages.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `MessageId` assigned by SNS.
    pub message_id: String,
    /// `TopicArn` the message was published to.
    pub topic_arn: String,
    /// `Subject`, if the publisher set one.
    #[serde(default)]
    pub subject: Option<String>,
    /// `Message`: the published message text.
    pub message: String,
    /// `Timestamp` of publication (ISO 8601).
    #[serde(default)]
    pub timestamp: String,
    /// `MessageAttributes` by name; empty when the publisher set none.
    #[serde(default)]
    pub message_attributes: BTreeMap<String, SnsMessageAttribute>,
    /// The whole envelope as JSON, for fields not modelled here.
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl SnsEnvelope {
    /// Parses an SQS message body holding an SNS envelope.
    pub fn parse(body: &str) -> Result<SnsEnvelope, serde_json::Error> {
        let raw: serde_json::Value = serde_json::from_str(body)?;
        let mut envelope: SnsEnvelope = serde_json::from_value(raw.clone())?;
        envelope.raw = raw;
        Ok(envelope)
    }

    /// The value of message attribute `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.message_attributes.get(name).map(|a| a.value.as_str())
    }
}

/// One SNS message attribute as it appears in the envelope: `{"Type": ..., "Value": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnsMessageAttribute {
    /// `Type`: `String`, `Number`, `Binary`, `String.Array`, ...
    #[serde(rename = "Type")]
    pub data_type: String,
    /// `Value`, as text (numbers are rendered as SNS renders them: as strings).
    #[serde(rename = "Value", deserialize_with = "string_or_scalar")]
    pub value: String,
}

/// Accepts a string, or any other JSON value rendered as text (moto emits `Number`s unquoted).
fn string_or_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_sns_envelope() {
        let body = r#"{
          "Message": "3 rows rejected",
          "MessageAttributes": {
            "kind": {"Type": "String", "Value": "rejected-rows"},
            "count": {"Type": "Number", "Value": 3}
          },
          "MessageId": "m-1",
          "Signature": "x",
          "Subject": "catalog-sync: rows rejected",
          "Timestamp": "2026-01-01T00:00:00.000Z",
          "TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
          "Type": "Notification"
        }"#;
        let env = SnsEnvelope::parse(body).unwrap();
        assert_eq!(env.kind, "Notification");
        assert_eq!(env.subject.as_deref(), Some("catalog-sync: rows rejected"));
        assert_eq!(env.message, "3 rows rejected");
        assert_eq!(env.attribute("kind"), Some("rejected-rows"));
        assert_eq!(env.attribute("count"), Some("3"));
        assert_eq!(env.message_attributes["count"].data_type, "Number");
        assert_eq!(env.raw["Signature"], "x");
    }

    #[test]
    fn envelope_without_subject_or_attributes() {
        let body = r#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"hi"}"#;
        let env = SnsEnvelope::parse(body).unwrap();
        assert_eq!(env.subject, None);
        assert!(env.message_attributes.is_empty());
        assert!(SnsEnvelope::parse(r#"{"Records": []}"#).is_err());
    }

    #[test]
    fn recognises_the_s3_test_event() {
        assert!(is_s3_test_event(
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#
        ));
        assert!(!is_s3_test_event(r#"{"Records":[]}"#));
        assert!(!is_s3_test_event("not json"));
    }
}
