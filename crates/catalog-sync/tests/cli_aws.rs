//! `doctor`, `replay` and `poll` on AWS: the binary against moto (S3, SNS) and the Graph API
//! emulator over HTTP, configured as the functions are, through environment variables.

mod common;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use common::{catalog_sync, samples_dir, text, valid_ids};
use graph_emulator::{DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, GraphEmulator};
use testkit::{MotoServer, unique_name};

/// Two buckets and a topic on the shared moto server, with a queue subscribed to the topic.
struct Stack {
    landing: String,
    synced: String,
    topic: String,
    queue: String,
}

impl Stack {
    async fn create() -> Stack {
        let moto = MotoServer::shared();
        let stack = Stack {
            landing: unique_name("landing"),
            synced: unique_name("synced"),
            topic: moto.create_topic(&unique_name("alerts")).await,
            queue: String::new(),
        };
        moto.create_bucket(&stack.landing).await;
        moto.create_bucket(&stack.synced).await;
        let queue = moto.subscribe_queue_to_topic(&stack.topic).await;
        Stack { queue, ..stack }
    }

    /// The functions' variables, pointing at moto and `graph_url`.
    fn env(&self, graph_url: &str) -> Vec<(String, String)> {
        let mut env = MotoServer::shared().env_vars();
        for (name, value) in [
            ("CATALOG_ID", DEFAULT_CATALOG_ID),
            ("META_ACCESS_TOKEN", DEFAULT_TOKEN),
            ("GRAPH_API_BASE_URL", graph_url),
            ("SYNCED_BUCKET", &self.synced),
            ("LANDING_BUCKET", &self.landing),
            ("ALERT_TOPIC_ARN", &self.topic),
        ] {
            env.push((name.to_owned(), value.to_owned()));
        }
        env
    }
}

/// Runs the binary off the async threads (the emulator serves on them meanwhile).
async fn run(args: &[&str], env: Vec<(String, String)>) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || catalog_sync().args(args).envs(env).output().unwrap())
        .await
        .unwrap()
}

fn with(env: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env.iter().filter(|(k, _)| k != name).cloned().collect();
    env.push((name.to_owned(), value.to_owned()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_complete_setup_and_names_each_problem_with_its_fix() {
    let emulator = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let stack = Stack::create().await;
    let env = stack.env(&emulator.url());

    let output = run(&["doctor"], env.clone()).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for check in [
        "ok   configuration",
        "ok   access token (from META_ACCESS_TOKEN)",
        "ok   catalog 100000000000001 at http://127.0.0.1:",
        &format!(
            "ok   LANDING_BUCKET s3://{} (data/, archive/, rejected/, failed/)",
            stack.landing
        ),
        &format!(
            "ok   SYNCED_BUCKET s3://{} (synced/, reports/, pending/, checked/, progress/, state/)",
            stack.synced
        ),
        &format!("ok   ALERT_TOPIC_ARN {}", stack.topic),
    ] {
        assert!(stdout.contains(check), "{check}\n{stdout}");
    }
    assert_eq!(stdout.lines().filter(|l| l.starts_with("FAIL")).count(), 0);

    // A missing bucket, a refused token and a missing topic, all in one run.
    let missing_bucket = unique_name("missing");
    let missing_topic = stack.topic.replace("alerts", "gone");
    let mut bad = with(&env, "SYNCED_BUCKET", &missing_bucket);
    bad = with(&bad, "META_ACCESS_TOKEN", "EAAB-wrong-token");
    bad = with(&bad, "ALERT_TOPIC_ARN", &missing_topic);
    let output = run(&["doctor"], bad).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "FAIL SYNCED_BUCKET s3://{missing_bucket} (synced/, reports/, pending/, checked/, progress/, state/): the bucket does not exist; check SYNCED_BUCKET"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL catalog 100000000000001 at http://127.0.0.1:")
            && stdout.contains("rejected the access token"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "FAIL ALERT_TOPIC_ARN {missing_topic}: the topic does not exist; check ALERT_TOPIC_ARN"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("ok   LANDING_BUCKET s3://{}", stack.landing)));
    assert!(stdout.contains("doctor: 3 check(s) failed"), "{stdout}");
    let all = format!("{stdout}{}", text(&output.stderr));
    assert!(!all.contains("EAAB-wrong-token"), "the token was printed");

    // A configuration problem is named with its fix, and the rest is still checked.
    let output = run(&["doctor"], with(&env, "BATCH_SIZE", "9000")).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("FAIL configuration: BATCH_SIZE"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ok   LANDING_BUCKET s3://{}", stack.landing)),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resends_archived_failed_and_stuck_files_and_poll_records_the_verdicts() {
    let emulator = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let moto = MotoServer::shared();
    let stack = Stack::create().await;
    let env = stack.env(&emulator.url());
    let sample = |name: &str| std::fs::read(samples_dir().join(name)).unwrap();
    moto.put_object(
        &stack.landing,
        "archive/outdoor.csv",
        sample("outdoor-with-problems.csv"),
    )
    .await;
    moto.put_object(
        &stack.landing,
        "failed/2026/sample.csv",
        sample("sample.csv"),
    )
    .await;
    moto.put_object(&stack.landing, "failed/2026/sample.csv.report.json", "{}")
        .await;
    moto.put_object(
        &stack.landing,
        "data/home.csv",
        sample("home-goods-clean.csv"),
    )
    .await;

    let output = run(
        &[
            "replay",
            "archive/outdoor.csv",
            &format!("s3://{}/failed/2026/sample.csv", stack.landing),
            "data/home.csv",
        ],
        env.clone(),
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("archive/outdoor.csv: copied to data/outdoor.csv; data/outdoor.csv: archived: 9 rows read, 3 sent, 5 rejected, 1 superseded"), "{stdout}");
    assert!(stdout.contains("failed/2026/sample.csv: copied to data/2026/sample.csv; removed from failed/; data/2026/sample.csv: archived"), "{stdout}");
    assert!(
        stdout.contains("data/home.csv: archived: 20 rows read, 20 sent"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("report s3://{}/reports/", stack.synced)),
        "{stdout}"
    );

    let landing: BTreeSet<String> = moto
        .list_keys(&stack.landing, "")
        .await
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = [
        "archive/2026/sample.csv",
        "archive/home.csv",
        "archive/outdoor.csv",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(landing, expected);
    assert_eq!(moto.list_keys(&stack.synced, "reports/").await.len(), 3);
    assert_eq!(moto.list_keys(&stack.synced, "pending/").await.len(), 3);
    let mut ids = BTreeSet::new();
    for name in [
        "outdoor-with-problems.csv",
        "sample.csv",
        "home-goods-clean.csv",
    ] {
        ids.extend(valid_ids(&samples_dir().join(name)));
    }
    let held: BTreeSet<String> = emulator.items(DEFAULT_CATALOG_ID).into_keys().collect();
    assert_eq!(held, ids);
    // The rows rejected in the outdoor file were alerted through SNS, as the function does.
    let messages = moto
        .receive_sns_messages(&stack.queue, 1, Duration::from_secs(10))
        .await;
    assert!(
        messages
            .iter()
            .any(|m| m.attribute("kind") == Some("rows_rejected")
                && m.subject
                    .as_deref()
                    .is_some_and(|s| s.contains("data/outdoor.csv"))),
        "{messages:#?}"
    );

    // The emulator finishes a batch on its second check.
    let output = run(&["poll"], env.clone()).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("poll: 3 pending batch(es) found, 3 checked: 0 finished"),
        "{stdout}"
    );
    let output = run(&["poll"], env.clone()).await;
    let stdout = text(&output.stdout);
    assert!(stdout.contains("3 checked: 3 finished"), "{stdout}");
    assert!(moto.list_keys(&stack.synced, "pending/").await.is_empty());
    assert_eq!(moto.list_keys(&stack.synced, "checked/").await.len(), 3);

    // --since: every archived file modified since the date (all three, just now), or none.
    let today = time::OffsetDateTime::now_utc().date();
    let output = run(&["replay", "--since", &today.to_string()], env.clone()).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert_eq!(stdout.matches(": archived:").count(), 3, "{stdout}");
    let tomorrow = today.next_day().unwrap();
    let output = run(&["replay", "--since", &tomorrow.to_string()], env.clone()).await;
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).contains("no archived file was modified since"));

    // What cannot be replayed says why; the exit status says something was not re-sent.
    let output = run(&["replay", "archive/none.csv", "rejected/x.csv"], env).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "archive/none.csv: not re-sent: s3://{}/archive/none.csv does not exist",
            stack.landing
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("rejected/x.csv: not re-sent: files in rejected/ could not be used at all"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_needs_files_or_a_date_and_aws_settings() {
    let output = run(&["replay"], Vec::new()).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("name the files to re-send"));
    let output = run(&["replay", "archive/a.csv"], Vec::new()).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("CATALOG_ID: not set"),
        "{}",
        text(&output.stderr)
    );
}
