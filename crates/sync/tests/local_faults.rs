//! `FaultyStore` and `FaultyAlerts` fail exactly as scripted and pass everything else through.

use std::sync::Arc;

use sync::alert::{AlertBuilder, AlertKind};
use sync::faults::{FaultyAlerts, FaultyStore, INJECTED_FAULT, Op};
use sync::local::{ConsoleAlerts, LANDING_BUCKET, LocalStore, SYNCED_BUCKET};
use sync::ports::{AlertSink, ObjectStore, Payload, StoreError, StoreErrorKind, read_small};
use tokio::io::AsyncReadExt;

fn faulty() -> (tempfile::TempDir, FaultyStore<LocalStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::new(LocalStore::new(dir.path()));
    (dir, store)
}

async fn put(store: &dyn ObjectStore, key: &str, text: &str) -> Result<(), StoreError> {
    store
        .put(
            SYNCED_BUCKET,
            key,
            Payload::from(text.to_owned()),
            "application/json",
        )
        .await
}

fn assert_injected(result: Result<impl std::fmt::Debug, StoreError>, operation: &str) {
    let err = result.expect_err("an injected fault");
    assert_eq!(err.kind, StoreErrorKind::Other);
    assert_eq!(err.message, INJECTED_FAULT);
    assert_eq!(err.operation, operation);
}

#[tokio::test]
async fn fail_fails_the_next_matching_calls_only_then_passes() {
    let (_dir, store) = faulty();
    store.fail(Op::Put, "pending/", 2);
    put(&store, "reports/r.json", "{}").await.unwrap();
    assert_injected(put(&store, "pending/h1.json", "{}").await, "PutObject");
    put(&store, "synced/b.json", "{}").await.unwrap();
    assert_injected(put(&store, "pending/h2.json", "{}").await, "PutObject");
    put(&store, "pending/h3.json", "{}").await.unwrap();
    put(&store, "pending/h1.json", "{}").await.unwrap();

    // Failed calls never reached the real store.
    let inner = store.inner();
    assert!(
        inner
            .head(SYNCED_BUCKET, "pending/h2.json")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        inner
            .head(SYNCED_BUCKET, "pending/h3.json")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.operations(),
        [
            (Op::Put, "reports/r.json".to_owned()),
            (Op::Put, "pending/h1.json".to_owned()),
            (Op::Put, "synced/b.json".to_owned()),
            (Op::Put, "pending/h2.json".to_owned()),
            (Op::Put, "pending/h3.json".to_owned()),
            (Op::Put, "pending/h1.json".to_owned()),
        ]
    );
    assert_eq!(store.calls(Op::Put), 6);
    assert_eq!(store.calls(Op::Get), 0);
}

#[tokio::test]
async fn fail_nth_fails_that_call_of_that_operation_only() {
    let (_dir, store) = faulty();
    put(&store, "a.json", "a").await.unwrap();
    store.fail_nth(Op::Head, 2).fail_nth(Op::Get, 1);
    assert!(store.head(SYNCED_BUCKET, "a.json").await.unwrap().is_some());
    assert_injected(store.head(SYNCED_BUCKET, "a.json").await, "HeadObject");
    assert!(store.head(SYNCED_BUCKET, "a.json").await.unwrap().is_some());
    assert!(store.get(SYNCED_BUCKET, "a.json", 0, None).await.is_err());
    assert_eq!(
        read_small(&store, SYNCED_BUCKET, "a.json")
            .await
            .unwrap()
            .unwrap(),
        b"a"
    );
    assert_eq!(store.calls(Op::Head), 3);
    assert_eq!(store.calls(Op::Get), 2);
}

#[tokio::test]
async fn fail_always_keeps_failing_matching_calls_and_nothing_else() {
    let (_dir, store) = faulty();
    store
        .inner()
        .put(
            LANDING_BUCKET,
            "data/a.csv",
            Payload::from("x".to_owned()),
            "text/csv",
        )
        .await
        .unwrap();
    store
        .fail_always(Op::Copy, "archive/")
        .fail_always(Op::Delete, "data/");
    for _ in 0..5 {
        assert_injected(
            store
                .copy(LANDING_BUCKET, "data/a.csv", "archive/a.csv")
                .await,
            "CopyObject",
        );
        assert_injected(
            store.delete(LANDING_BUCKET, "data/a.csv").await,
            "DeleteObject",
        );
    }
    store
        .copy(LANDING_BUCKET, "data/a.csv", "rejected/a.csv")
        .await
        .unwrap();
    store
        .delete(LANDING_BUCKET, "rejected/a.csv")
        .await
        .unwrap();
    assert!(
        store
            .head(LANDING_BUCKET, "data/a.csv")
            .await
            .unwrap()
            .is_some()
    );
    // A copy is recorded and matched as `from -> to`, so a rule can aim at either side.
    assert_eq!(
        store.operations()[0],
        (Op::Copy, "data/a.csv -> archive/a.csv".to_owned())
    );
}

#[tokio::test]
async fn list_rules_match_the_prefix_and_an_empty_pattern_matches_everything() {
    let (_dir, store) = faulty();
    put(&store, "pending/h.json", "{}").await.unwrap();
    store.fail(Op::List, "pending/", 1).fail(Op::Head, "", 1);
    assert_injected(
        store.list(SYNCED_BUCKET, "pending/", None).await,
        "ListObjectsV2",
    );
    let page = store.list(SYNCED_BUCKET, "pending/", None).await.unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_injected(store.head(SYNCED_BUCKET, "anything").await, "HeadObject");
    assert!(
        store
            .head(SYNCED_BUCKET, "anything")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn without_rules_every_call_passes_through_unchanged() {
    let (_dir, store) = faulty();
    put(&store, "a/b.json", "body").await.unwrap();
    store
        .copy(SYNCED_BUCKET, "a/b.json", "c.json")
        .await
        .unwrap();
    let page = store.list(SYNCED_BUCKET, "", None).await.unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["a/b.json", "c.json"]);
    let (info, mut body) = store
        .get(SYNCED_BUCKET, "c.json", 1, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.size, 4,
        "the whole object's size, as every store reports it"
    );
    let mut text = String::new();
    body.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "ody");
    store.delete(SYNCED_BUCKET, "c.json").await.unwrap();
    assert!(
        store
            .get(SYNCED_BUCKET, "c.json", 0, None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .operations()
            .iter()
            .map(|(op, _)| *op)
            .collect::<Vec<_>>(),
        [Op::Put, Op::Copy, Op::List, Op::Get, Op::Delete, Op::Get]
    );
}

#[tokio::test]
async fn a_read_fails_mid_stream_after_the_scripted_bytes() {
    let (_dir, store) = faulty();
    let content = "0123456789".repeat(10_000);
    store
        .inner()
        .put(
            LANDING_BUCKET,
            "data/big.csv",
            Payload::from(content.clone()),
            "text/csv",
        )
        .await
        .unwrap();
    store
        .inner()
        .put(
            LANDING_BUCKET,
            "data/small.csv",
            Payload::from(content.clone()),
            "text/csv",
        )
        .await
        .unwrap();
    store.fail_read_after_times("big.csv", 12_345, 1);

    let (info, mut body) = store
        .get(LANDING_BUCKET, "data/big.csv", 0, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.size, 100_000, "the get itself succeeds");
    let mut read = Vec::new();
    let err = body.read_to_end(&mut read).await.unwrap_err();
    assert_eq!(err.to_string(), INJECTED_FAULT);
    assert_eq!(read.len(), 12_345);
    assert_eq!(read, content.as_bytes()[..12_345]);

    // Other keys, and the next read of the same key, are whole.
    let whole = read_small(&store, LANDING_BUCKET, "data/small.csv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(whole.len(), 100_000);
    let whole = read_small(&store, LANDING_BUCKET, "data/big.csv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(whole, content.as_bytes());
}

#[tokio::test]
async fn an_unlimited_read_fault_breaks_every_matching_read_counted_after_the_offset() {
    let (_dir, store) = faulty();
    put(&store, "r.json", "abcdefghij").await.unwrap();
    store.fail_read_after("r.json", 3);
    for _ in 0..3 {
        let (_, mut body) = store
            .get(SYNCED_BUCKET, "r.json", 2, None)
            .await
            .unwrap()
            .unwrap();
        let mut read = Vec::new();
        assert!(body.read_to_end(&mut read).await.is_err());
        assert_eq!(read, b"cde");
    }
}

#[tokio::test]
async fn rules_hold_across_tasks_sharing_the_store() {
    let (_dir, store) = faulty();
    let store = Arc::new(store);
    store.fail(Op::Put, "", 5);
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            put(store.as_ref(), &format!("k/{n}.json"), "{}")
                .await
                .is_err()
        }));
    }
    let mut failures = 0;
    for task in tasks {
        if task.await.unwrap() {
            failures += 1;
        }
    }
    assert_eq!(failures, 5);
    assert_eq!(store.calls(Op::Put), 20);
    let stored = sync::ports::list_all(store.inner(), SYNCED_BUCKET, "k/")
        .await
        .unwrap();
    assert_eq!(stored.len(), 15);
}

#[tokio::test]
async fn faulty_alerts_fail_the_first_publishes_then_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let sink = FaultyAlerts::new(ConsoleAlerts::in_root(dir.path(), false), 2);
    let alert = |n: u32| {
        AlertBuilder::new(AlertKind::BatchStuck, format!("stuck {n}"))
            .what_happened("A batch is stuck.")
            .build()
    };
    for n in 0..2 {
        let err = sink.publish(&alert(n)).await.unwrap_err();
        assert_eq!(err.message, INJECTED_FAULT);
        assert_eq!(err.subject, format!("catalog-sync: stuck {n}"));
    }
    sink.publish(&alert(2)).await.unwrap();
    sink.publish(&alert(3)).await.unwrap();
    assert_eq!(sink.attempts(), 4);
    let log = std::fs::read_to_string(sink.inner().log_path()).unwrap();
    assert!(!log.contains("stuck 0") && !log.contains("stuck 1"));
    assert!(log.contains("catalog-sync: stuck 2") && log.contains("catalog-sync: stuck 3"));
}
