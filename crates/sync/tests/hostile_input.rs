//! Hostile files through the whole sync path (moto S3, the Graph API emulator over HTTP): each
//! ends in `rejected/` with a report that says why, or, when only some rows are bad, archived
//! with those rows listed, and never in a crash, a hang or unbounded memory.

use std::sync::Arc;
use std::time::Duration;

use graph::RetryPolicy;
use serde_json::Value;
use sync::adapters::aws::S3Store;
use sync::ports::SystemClock;
use sync::process::{FileOutcome, FileProcessor, Services};
use sync::progress::NoQueue;

mod common;

use common::{Stack, stack};

const TOKEN: &str = "hostile-input-token";
const HEADER: &str =
    "id,title,description,link,image_link,availability,price,brand,condition,product_type";
const GOOD: &str = "SKU-1,Tent,A tent,https://shop.example/1,https://shop.example/1.jpg,in stock,10.00 USD,Acme,new,Camping";

struct Harness {
    stack: Stack,
    processor: FileProcessor,
}

impl std::ops::Deref for Harness {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        &self.stack
    }
}

async fn harness() -> Harness {
    let stack = stack(TOKEN).await;
    let catalog = stack
        .catalog(RetryPolicy::default(), Duration::from_secs(60))
        .await;
    let services = Services {
        store: Arc::new(S3Store::new(stack.moto.s3_client())),
        catalog: Arc::new(catalog),
        alerts: Arc::new(sync::alert::LogAlerts),
        clock: Arc::new(SystemClock),
        continuations: Arc::new(NoQueue),
    };
    let settings = stack.settings(3000, Duration::from_secs(1));
    Harness {
        processor: FileProcessor::new(services, settings),
        stack,
    }
}

impl Harness {
    /// Lands `bytes` and processes them within a minute (a hang fails the test).
    async fn process(&self, name: &str, bytes: Vec<u8>) -> FileOutcome {
        let key = format!("data/{name}");
        self.moto.put_object(&self.landing, &key, bytes).await;
        tokio::time::timeout(
            Duration::from_secs(60),
            self.processor.process(&self.landing, &key, None),
        )
        .await
        .expect("processing ends")
        .expect("processing succeeds")
    }

    /// The file is in `rejected/` with a report beside it naming `code`; returns the report.
    async fn assert_rejected(&self, name: &str, outcome: &FileOutcome, code: &str) -> Value {
        assert!(
            matches!(outcome, FileOutcome::Rejected { .. }),
            "{name}: {outcome:?}"
        );
        let rejected = self.moto.list_keys(&self.landing, "rejected/").await;
        let report_key = format!("rejected/{name}.report.json");
        assert!(
            rejected.contains(&format!("rejected/{name}")) && rejected.contains(&report_key),
            "{name}: {rejected:?}"
        );
        assert!(self.moto.list_keys(&self.landing, "data/").await.is_empty());
        let report: Value = serde_json::from_slice(
            &self
                .moto
                .get_object(&self.landing, &report_key)
                .await
                .expect("report"),
        )
        .expect("json");
        assert_eq!(report["status"], "rejected", "{name}");
        assert_eq!(report["failure"]["code"], code, "{name}: {report}");
        assert!(
            !report["failure"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
        report
    }
}

/// Deterministic pseudo-random bytes (xorshift), NULs and high bytes included.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_garbage_is_rejected_with_a_report() {
    let h = harness().await;
    for (n, seed) in [1u64, 2, 3].into_iter().enumerate() {
        let name = format!("garbage-{n}.csv");
        let outcome = h.process(&name, garbage(200_000, seed)).await;
        assert!(
            matches!(outcome, FileOutcome::Rejected { .. }),
            "{name}: {outcome:?}"
        );
    }
    assert_eq!(
        h.moto.list_keys(&h.landing, "rejected/").await.len(),
        6,
        "three files, each with its report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_the_header_reject_the_file() {
    let h = harness().await;
    let csv = format!("id\0,title\0,description,link\n{GOOD}\n").into_bytes();
    let outcome = h.process("nul.csv", csv).await;
    let report = h
        .assert_rejected("nul.csv", &outcome, "missing_columns")
        .await;
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("title"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_in_another_encoding_rejects_the_file() {
    let h = harness().await;
    // "descripción" in Latin-1.
    let mut csv = b"id,title,descripci\xf3n,link,image_link,availability,price,brand,condition,product_type\n"
        .to_vec();
    csv.extend_from_slice(GOOD.as_bytes());
    let outcome = h.process("latin1-header.csv", csv).await;
    h.assert_rejected("latin1-header.csv", &outcome, "header_not_utf8")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_another_encoding_are_rejected_and_the_rest_is_sent() {
    let h = harness().await;
    let mut csv = format!("{HEADER}\n{GOOD}\n").into_bytes();
    csv.extend_from_slice(b"SKU-2,Caf\xe9 table,A table,https://shop.example/2,https://shop.example/2.jpg,in stock,10.00 USD,Acme,new,Home\n");
    csv.extend_from_slice(GOOD.replace("SKU-1", "SKU-3").as_bytes());
    csv.push(b'\n');
    let outcome = h.process("mixed.csv", csv).await;
    let FileOutcome::Archived { counts, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!((counts.rows_read, counts.sent, counts.rejected), (3, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbalanced_quote_in_a_large_file_rejects_it_without_reading_it_all() {
    let h = harness().await;
    let mut csv = format!("{HEADER}\n{GOOD}\nSKU-2,\"never closed,").into_bytes();
    // Everything after the quote is one field: far more than the 1 MiB record limit.
    for n in 0..60_000 {
        csv.extend_from_slice(format!("{GOOD}-{n}\n").as_bytes());
    }
    let outcome = h.process("quote.csv", csv).await;
    let report = h
        .assert_rejected("quote.csv", &outcome, "record_too_large")
        .await;
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("unclosed quote"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_columns_reject_the_file() {
    let h = harness().await;
    let mut header = HEADER.to_owned();
    for n in 0..100_000 {
        header.push_str(&format!(",extra{n}"));
    }
    let csv = format!("{header}\n{GOOD}\n").into_bytes();
    let outcome = h.process("wide.csv", csv).await;
    h.assert_rejected("wide.csv", &outcome, "too_many_columns")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endless_line_is_rejected_after_the_record_limit() {
    let h = harness().await;
    let csv = vec![b'a'; 8 * 1024 * 1024];
    let outcome = h.process("endless.csv", csv).await;
    h.assert_rejected("endless.csv", &outcome, "record_too_large")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_and_a_header_only_file_are_rejected() {
    let h = harness().await;
    let outcome = h.process("empty.csv", Vec::new()).await;
    h.assert_rejected("empty.csv", &outcome, "empty_file").await;
    let outcome = h
        .process("header.csv", format!("{HEADER}\n").into_bytes())
        .await;
    h.assert_rejected("header.csv", &outcome, "no_rows").await;
}
