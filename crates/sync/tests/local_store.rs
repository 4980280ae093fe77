//! `LocalStore` and `ConsoleAlerts` against a real temporary folder.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use sync::alert::{AlertBuilder, AlertKind};
use sync::local::{
    ConsoleAlerts, DEFAULT_PAGE_SIZE, LANDING_BUCKET, LocalStore, SYNCED_BUCKET, TEMP_PREFIX,
};
use sync::ports::{AlertSink, ObjectStore, Payload, StoreErrorKind, list_all, read_small};
use tokio::io::AsyncReadExt;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    (dir, store)
}

async fn put(store: &LocalStore, bucket: &str, key: &str, text: &str) {
    store
        .put(bucket, key, Payload::from(text.to_owned()), "text/plain")
        .await
        .unwrap();
}

async fn read(store: &LocalStore, bucket: &str, key: &str, from: u64) -> Option<String> {
    let (_, mut body) = store.get(bucket, key, from, None).await.unwrap()?;
    let mut text = String::new();
    body.read_to_string(&mut text).await.unwrap();
    Some(text)
}

async fn keys(store: &LocalStore, bucket: &str, prefix: &str) -> Vec<String> {
    list_all(store, bucket, prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|object| object.key)
        .collect()
}

/// Every file under `dir`, relative, whatever its name.
fn files_on_disk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn missing_objects_and_missing_buckets_read_as_none_or_empty() {
    let (_dir, store) = store();
    assert!(
        store
            .head(LANDING_BUCKET, "data/a.csv")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get(LANDING_BUCKET, "data/a.csv", 0, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get(LANDING_BUCKET, "data/a.csv", 0, Some("\"x\""))
            .await
            .unwrap()
            .is_none()
    );
    let page = store.list(SYNCED_BUCKET, "pending/", None).await.unwrap();
    assert!(page.objects.is_empty() && page.next.is_none());
    store.delete(LANDING_BUCKET, "data/a.csv").await.unwrap();
    assert!(
        read_small(&store, SYNCED_BUCKET, "pending/h.json")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn objects_live_at_root_bucket_key_and_read_back_whole() {
    let (dir, store) = store();
    put(
        &store,
        LANDING_BUCKET,
        "data/2026/a.csv",
        "id,title\n1,Shoe\n",
    )
    .await;
    put(&store, SYNCED_BUCKET, "pending/h1.json", "{}").await;
    assert_eq!(
        files_on_disk(dir.path()),
        ["landing/data/2026/a.csv", "synced/pending/h1.json"]
    );
    assert_eq!(
        store
            .object_path(LANDING_BUCKET, "data/2026/a.csv")
            .unwrap(),
        dir.path().join("landing").join("data/2026/a.csv")
    );
    assert_eq!(store.root(), dir.path());

    let info = store
        .head(LANDING_BUCKET, "data/2026/a.csv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.key, "data/2026/a.csv");
    assert_eq!(info.size, 16);
    let etag = info.etag.clone().unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18,
        "{etag}"
    );
    let age = time::OffsetDateTime::now_utc() - info.last_modified.unwrap();
    assert!(age.whole_seconds().abs() < 60, "{age}");

    let (got, _) = store
        .get(LANDING_BUCKET, "data/2026/a.csv", 0, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, info, "get and head describe the object alike");
    assert_eq!(
        read(&store, LANDING_BUCKET, "data/2026/a.csv", 0)
            .await
            .unwrap(),
        "id,title\n1,Shoe\n"
    );
    // The ETag is stable across reads and agrees between head, get and list.
    let again = store
        .head(LANDING_BUCKET, "data/2026/a.csv")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.etag.as_deref(), Some(etag.as_str()));
    let listed = list_all(&store, LANDING_BUCKET, "").await.unwrap();
    assert_eq!(listed, vec![info]);
}

#[tokio::test]
async fn a_folder_is_not_an_object() {
    let (_dir, store) = store();
    put(&store, LANDING_BUCKET, "data/a.csv", "x").await;
    assert!(store.head(LANDING_BUCKET, "data").await.unwrap().is_none());
    assert!(
        store
            .get(LANDING_BUCKET, "data", 0, None)
            .await
            .unwrap()
            .is_none()
    );
    store.delete(LANDING_BUCKET, "data").await.unwrap();
    assert!(
        store
            .head(LANDING_BUCKET, "data/a.csv")
            .await
            .unwrap()
            .is_some()
    );
    // A key below a file cannot exist.
    assert!(
        store
            .head(LANDING_BUCKET, "data/a.csv/x")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get(LANDING_BUCKET, "data/a.csv/x", 0, None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn ranged_gets_start_at_the_offset_and_report_the_object_size() {
    let (_dir, store) = store();
    put(&store, LANDING_BUCKET, "data/a.csv", "0123456789").await;
    assert_eq!(
        read(&store, LANDING_BUCKET, "data/a.csv", 4).await.unwrap(),
        "456789"
    );
    assert_eq!(
        read(&store, LANDING_BUCKET, "data/a.csv", 9).await.unwrap(),
        "9"
    );
    let (info, _) = store
        .get(LANDING_BUCKET, "data/a.csv", 4, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info.size, 10,
        "the whole object's size, as the S3 adapter reports it"
    );
    for from in [10, 11, u64::MAX] {
        let (info, mut body) = store
            .get(LANDING_BUCKET, "data/a.csv", from, None)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("a read from {from} should find the object"));
        let mut rest = Vec::new();
        body.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "a read from {from} is an empty stream");
        assert_eq!(info.size, 10);
    }
}

#[tokio::test]
async fn if_match_fails_with_changed_after_a_rewrite_even_of_the_same_bytes() {
    let (_dir, store) = store();
    put(&store, LANDING_BUCKET, "data/a.csv", "one").await;
    let old = store
        .head(LANDING_BUCKET, "data/a.csv")
        .await
        .unwrap()
        .unwrap();
    let old_etag = old.etag.unwrap();
    assert!(
        store
            .get(LANDING_BUCKET, "data/a.csv", 0, Some(&old_etag))
            .await
            .unwrap()
            .is_some()
    );
    // Unquoted and `*` forms are accepted, as S3 does.
    let bare = old_etag.trim_matches('"').to_owned();
    assert!(
        store
            .get(LANDING_BUCKET, "data/a.csv", 0, Some(&bare))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get(LANDING_BUCKET, "data/a.csv", 0, Some("*"))
            .await
            .unwrap()
            .is_some()
    );

    put(&store, LANDING_BUCKET, "data/a.csv", "one").await;
    let new = store
        .head(LANDING_BUCKET, "data/a.csv")
        .await
        .unwrap()
        .unwrap();
    let new_etag = new.etag.unwrap();
    assert_ne!(new_etag, old_etag);
    let err = match store
        .get(LANDING_BUCKET, "data/a.csv", 0, Some(&old_etag))
        .await
    {
        Err(err) => err,
        Ok(_) => panic!("a stale ETag must not match"),
    };
    assert_eq!(err.kind, StoreErrorKind::Changed);
    assert_eq!(err.operation, "GetObject");
    assert!(
        err.to_string().contains("replaced while it was being read"),
        "{err}"
    );
    assert_eq!(
        store
            .get(LANDING_BUCKET, "data/a.csv", 0, Some(&new_etag))
            .await
            .unwrap()
            .map(|(info, _)| info.etag),
        Some(Some(new_etag))
    );
}

#[tokio::test]
async fn an_open_body_keeps_the_bytes_it_started_with_when_the_object_is_replaced() {
    let (_dir, store) = store();
    put(&store, LANDING_BUCKET, "data/a.csv", "old content").await;
    let (_, mut body) = store
        .get(LANDING_BUCKET, "data/a.csv", 0, None)
        .await
        .unwrap()
        .unwrap();
    put(&store, LANDING_BUCKET, "data/a.csv", "new content, longer").await;
    let mut text = String::new();
    body.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "old content");
}

#[tokio::test]
async fn puts_are_atomic_and_leave_no_temporary_files() {
    let (dir, store) = store();
    let big = "x".repeat(200_000);
    let a = "a".repeat(200_000);
    let store = Arc::new(store);
    put(&store, LANDING_BUCKET, "data/a.csv", &a).await;
    // Readers racing a writer see the old or the new object whole, never a mix or a part.
    let writer = {
        let store = Arc::clone(&store);
        let big = big.clone();
        let a = a.clone();
        tokio::spawn(async move {
            for round in 0..30u32 {
                let text = if round.is_multiple_of(2) { &big } else { &a };
                put(&store, LANDING_BUCKET, "data/a.csv", text).await;
            }
        })
    };
    for _ in 0..30 {
        let text = read(&store, LANDING_BUCKET, "data/a.csv", 0).await.unwrap();
        assert!(
            text == big || text == a,
            "saw a partial object of {} bytes",
            text.len()
        );
    }
    writer.await.unwrap();
    assert_eq!(files_on_disk(dir.path()), ["landing/data/a.csv"]);

    // A temporary file left by a crash is invisible to listings.
    std::fs::write(
        dir.path()
            .join("landing/data")
            .join(format!("{TEMP_PREFIX}crashed")),
        "half",
    )
    .unwrap();
    assert_eq!(keys(&store, LANDING_BUCKET, "").await, ["data/a.csv"]);
}

#[tokio::test]
async fn a_file_payload_is_copied_into_the_store() {
    let (dir, store) = store();
    let source = dir.path().join("report.json");
    let content: String = (0..50_000).map(|n| format!("{n},")).collect();
    std::fs::write(&source, &content).unwrap();
    store
        .put(
            SYNCED_BUCKET,
            "reports/2026/01/02/run.json",
            Payload::File(source.clone()),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(
        read(&store, SYNCED_BUCKET, "reports/2026/01/02/run.json", 0)
            .await
            .unwrap(),
        content
    );
    assert!(source.exists(), "the source file is left alone");

    let err = store
        .put(
            SYNCED_BUCKET,
            "reports/missing.json",
            Payload::File(dir.path().join("nope.json")),
            "application/json",
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("cannot read"), "{err}");
    assert!(
        store
            .head(SYNCED_BUCKET, "reports/missing.json")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !files_on_disk(dir.path())
            .iter()
            .any(|f| f.contains(TEMP_PREFIX))
    );
}

#[tokio::test]
async fn bytes_payloads_overwrite_whole() {
    let (_dir, store) = store();
    put(
        &store,
        SYNCED_BUCKET,
        "progress/r.json",
        "a long first version",
    )
    .await;
    store
        .put(
            SYNCED_BUCKET,
            "progress/r.json",
            Payload::Bytes(Bytes::from_static(b"short")),
            "application/json",
        )
        .await
        .unwrap();
    assert_eq!(
        read(&store, SYNCED_BUCKET, "progress/r.json", 0)
            .await
            .unwrap(),
        "short"
    );
}

#[tokio::test]
async fn copy_duplicates_atomically_and_refuses_what_s3_refuses() {
    let (dir, store) = store();
    put(&store, LANDING_BUCKET, "data/x/a.csv", "rows").await;
    put(&store, LANDING_BUCKET, "archive/x/a.csv", "older archive").await;
    store
        .copy(LANDING_BUCKET, "data/x/a.csv", "archive/x/a.csv")
        .await
        .unwrap();
    assert_eq!(
        read(&store, LANDING_BUCKET, "archive/x/a.csv", 0)
            .await
            .unwrap(),
        "rows"
    );
    assert_eq!(
        read(&store, LANDING_BUCKET, "data/x/a.csv", 0)
            .await
            .unwrap(),
        "rows"
    );
    store
        .copy(LANDING_BUCKET, "data/x/a.csv", "rejected/new/deep/a.csv")
        .await
        .unwrap();
    assert_eq!(
        read(&store, LANDING_BUCKET, "rejected/new/deep/a.csv", 0)
            .await
            .unwrap(),
        "rows"
    );

    let missing = store
        .copy(LANDING_BUCKET, "data/none.csv", "archive/none.csv")
        .await
        .unwrap_err();
    assert_eq!(missing.operation, "CopyObject");
    assert!(missing.message.contains("NoSuchKey"), "{missing}");
    assert!(
        store
            .head(LANDING_BUCKET, "archive/none.csv")
            .await
            .unwrap()
            .is_none()
    );
    let onto_itself = store
        .copy(LANDING_BUCKET, "data/x/a.csv", "data/x/a.csv")
        .await
        .unwrap_err();
    assert!(onto_itself.message.contains("onto itself"), "{onto_itself}");
    assert!(
        !files_on_disk(dir.path())
            .iter()
            .any(|f| f.contains(TEMP_PREFIX))
    );
}

#[tokio::test]
async fn delete_removes_the_object_and_the_folders_it_leaves_empty() {
    let (dir, store) = store();
    put(&store, LANDING_BUCKET, "data/2026/01/a.csv", "a").await;
    put(&store, LANDING_BUCKET, "data/2026/b.csv", "b").await;
    store
        .delete(LANDING_BUCKET, "data/2026/01/a.csv")
        .await
        .unwrap();
    assert!(
        store
            .head(LANDING_BUCKET, "data/2026/01/a.csv")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!dir.path().join("landing/data/2026/01").exists());
    assert!(dir.path().join("landing/data/2026/b.csv").exists());

    store
        .delete(LANDING_BUCKET, "data/2026/b.csv")
        .await
        .unwrap();
    assert!(!dir.path().join("landing/data").exists());
    assert!(
        dir.path().join("landing").is_dir(),
        "the bucket folder stays"
    );
    // Deleting again, or something that never existed, is fine.
    store
        .delete(LANDING_BUCKET, "data/2026/b.csv")
        .await
        .unwrap();
    store.delete(LANDING_BUCKET, "never/was.csv").await.unwrap();
    assert!(keys(&store, LANDING_BUCKET, "").await.is_empty());
}

#[tokio::test]
async fn keys_and_buckets_that_could_escape_the_root_are_refused_by_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    let store = LocalStore::new(&inner);
    put(&store, LANDING_BUCKET, "data/ok.csv", "ok").await;
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();

    for key in [
        "../../outside.txt",
        "data/../../../outside.txt",
        "/etc/passwd",
        "a\0b",
        "..\\..\\outside.txt",
        "",
        "data//a.csv",
    ] {
        let payload = || Payload::from("evil".to_owned());
        let errors = [
            store.head(LANDING_BUCKET, key).await.err(),
            store.get(LANDING_BUCKET, key, 0, None).await.err(),
            store
                .put(LANDING_BUCKET, key, payload(), "text/plain")
                .await
                .err(),
            store.copy(LANDING_BUCKET, "data/ok.csv", key).await.err(),
            store.copy(LANDING_BUCKET, key, "data/copy.csv").await.err(),
            store.delete(LANDING_BUCKET, key).await.err(),
        ];
        for err in errors {
            let err = err.unwrap_or_else(|| panic!("{key:?} was accepted"));
            assert_eq!(err.kind, StoreErrorKind::Other);
            assert!(err.message.starts_with("invalid key"), "{err}");
        }
    }
    for bucket in ["..", "../landing", "", "a/b"] {
        assert!(
            store.head(bucket, "data/ok.csv").await.is_err(),
            "{bucket:?}"
        );
        assert!(store.list(bucket, "", None).await.is_err(), "{bucket:?}");
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
    assert_eq!(
        files_on_disk(dir.path()),
        ["inner/landing/data/ok.csv", "outside.txt"]
    );
    // A prefix is only a filter: `..` in it lists nothing and reads nothing outside.
    assert!(keys(&store, LANDING_BUCKET, "../").await.is_empty());
}

#[tokio::test]
async fn listings_are_in_s3_byte_order_with_slash_separators() {
    let (_dir, store) = store();
    let mut expected = vec![
        "a-b",
        "a/x",
        "a/b/c",
        "a0",
        "Z",
        "b",
        "é.csv",
        "z/é/1",
        "z/e/1",
        "data/2026/01/02/x.csv",
    ];
    for key in &expected {
        put(&store, SYNCED_BUCKET, key, key).await;
    }
    expected.sort_unstable();
    assert_eq!(keys(&store, SYNCED_BUCKET, "").await, expected);
}

#[tokio::test]
async fn prefixes_filter_like_s3_not_like_folders() {
    let (_dir, store) = store();
    for key in [
        "data/a.csv",
        "data/a.csv.report.json",
        "data/ab/c.csv",
        "data/b.csv",
        "database.csv",
        "archive/data/a.csv",
    ] {
        put(&store, LANDING_BUCKET, key, "x").await;
    }
    assert_eq!(
        keys(&store, LANDING_BUCKET, "data/").await,
        [
            "data/a.csv",
            "data/a.csv.report.json",
            "data/ab/c.csv",
            "data/b.csv"
        ]
    );
    assert_eq!(
        keys(&store, LANDING_BUCKET, "data").await,
        [
            "data/a.csv",
            "data/a.csv.report.json",
            "data/ab/c.csv",
            "data/b.csv",
            "database.csv"
        ]
    );
    assert_eq!(
        keys(&store, LANDING_BUCKET, "data/a").await,
        ["data/a.csv", "data/a.csv.report.json", "data/ab/c.csv"]
    );
    assert_eq!(
        keys(&store, LANDING_BUCKET, "data/a.csv").await,
        ["data/a.csv", "data/a.csv.report.json"]
    );
    assert!(keys(&store, LANDING_BUCKET, "rejected/").await.is_empty());
    assert!(keys(&store, LANDING_BUCKET, "data/a.csv/").await.is_empty());
}

#[tokio::test]
async fn listings_page_through_everything_once_in_order() {
    let (_dir, store) = store();
    let store = store.with_page_size(3);
    let mut expected = Vec::new();
    for n in 0..10 {
        // Spread over folders so pages resume in the middle of a folder walk.
        let key = format!("pending/{}/h{n:02}.json", n % 3);
        put(&store, SYNCED_BUCKET, &key, "{}").await;
        expected.push(key);
    }
    put(&store, SYNCED_BUCKET, "checked/x.json", "{}").await;
    expected.sort();

    let mut pages = Vec::new();
    let mut next = None;
    loop {
        let page = store.list(SYNCED_BUCKET, "pending/", next).await.unwrap();
        let page_keys: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
        if let Some(token) = &page.next {
            assert_eq!(
                Some(token),
                page_keys.last(),
                "next is the last key returned"
            );
        }
        pages.push(page_keys);
        next = page.next;
        if next.is_none() {
            break;
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
    assert_eq!(pages.concat(), expected);

    // Exactly one page's worth has no next page.
    let (_dir2, exact) = self::store();
    let exact = exact.with_page_size(3);
    for n in 0..3 {
        put(&exact, SYNCED_BUCKET, &format!("k{n}"), "").await;
    }
    let page = exact.list(SYNCED_BUCKET, "", None).await.unwrap();
    assert_eq!(page.objects.len(), 3);
    assert!(page.next.is_none());
}

#[tokio::test]
async fn the_default_page_holds_a_thousand_objects() {
    let (dir, store) = store();
    // Written directly: a thousand and one puts through the store would only be slower.
    let folder = dir.path().join("landing/data");
    std::fs::create_dir_all(&folder).unwrap();
    for n in 0..=DEFAULT_PAGE_SIZE {
        std::fs::write(folder.join(format!("{n:05}.csv")), "x").unwrap();
    }
    let first = store.list(LANDING_BUCKET, "data/", None).await.unwrap();
    assert_eq!(first.objects.len(), DEFAULT_PAGE_SIZE);
    assert_eq!(first.next.as_deref(), Some("data/00999.csv"));
    let second = store
        .list(LANDING_BUCKET, "data/", first.next)
        .await
        .unwrap();
    assert_eq!(
        second
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["data/01000.csv"]
    );
    assert!(second.next.is_none());
}

#[cfg(unix)]
#[tokio::test]
async fn symbolic_links_are_followed_without_looping() {
    let (dir, store) = store();
    let exports = dir.path().join("exports");
    std::fs::create_dir_all(exports.join("sub")).unwrap();
    std::fs::write(exports.join("sub/a.csv"), "x").unwrap();
    std::fs::create_dir_all(dir.path().join("landing")).unwrap();
    std::os::unix::fs::symlink(&exports, dir.path().join("landing/data")).unwrap();
    // A link back up the tree would make an endless walk if followed blindly.
    std::os::unix::fs::symlink(&exports, exports.join("sub/loop")).unwrap();
    assert_eq!(keys(&store, LANDING_BUCKET, "").await, ["data/sub/a.csv"]);
    assert_eq!(
        read(&store, LANDING_BUCKET, "data/sub/a.csv", 0)
            .await
            .unwrap(),
        "x"
    );
}

fn alert(kind: AlertKind, headline: &str, what: &str) -> sync::alert::Alert {
    AlertBuilder::new(kind, headline)
        .what_happened(what)
        .fact("File", "data/a.csv")
        .build()
}

#[tokio::test]
async fn console_alerts_append_one_entry_per_alert() {
    let (dir, _store) = store();
    let sink = ConsoleAlerts::in_root(dir.path(), false);
    assert_eq!(sink.log_path(), dir.path().join("alerts.log"));
    std::fs::write(sink.log_path(), "earlier line\n").unwrap();

    sink.publish(&alert(
        AlertKind::RowsRejected,
        "2 rows rejected",
        "Two rows were bad.",
    ))
    .await
    .unwrap();
    sink.publish(&alert(
        AlertKind::SendFailed,
        "send failed",
        "Meta was down.\u{1b}[31m",
    ))
    .await
    .unwrap();

    let log = std::fs::read_to_string(sink.log_path()).unwrap();
    assert!(
        log.starts_with("earlier line\n"),
        "appends, never truncates"
    );
    let separators: Vec<&str> = log.lines().filter(|l| l.starts_with("===== ")).collect();
    assert_eq!(separators.len(), 2, "{log}");
    assert!(separators[0].ends_with("| warning | rows_rejected | catalog-sync: 2 rows rejected"));
    assert!(separators[1].ends_with("| error | send_failed | catalog-sync: send failed"));
    let year = time::OffsetDateTime::now_utc().year().to_string();
    assert!(
        separators[0].starts_with(&format!("===== {year}-")),
        "{}",
        separators[0]
    );
    let first = log.find("Two rows were bad.").unwrap();
    let second = log.find("Meta was down.").unwrap();
    assert!(first < second);
    assert!(log.contains("File: data/a.csv"));
    assert!(!log.contains('\u{1b}'), "terminal escapes are neutralised");
}

#[tokio::test]
async fn console_alerts_from_concurrent_publishers_land_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(ConsoleAlerts::new(
        dir.path().join("logs/alerts.log"),
        false,
    ));
    let mut tasks = Vec::new();
    for n in 0..16 {
        let sink = Arc::clone(&sink);
        tasks.push(tokio::spawn(async move {
            let body = format!("alert {n} {}", "y".repeat(10_000));
            sink.publish(&alert(AlertKind::BatchErrors, &format!("n{n}"), &body))
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let log = std::fs::read_to_string(dir.path().join("logs/alerts.log")).unwrap();
    let entries: Vec<&str> = log.split("===== ").filter(|e| !e.is_empty()).collect();
    assert_eq!(entries.len(), 16);
    for entry in entries {
        let subject_n = entry
            .lines()
            .next()
            .unwrap()
            .rsplit("catalog-sync: n")
            .next()
            .unwrap();
        assert!(entry.contains(&format!("alert {subject_n} {}", "y".repeat(10_000))));
    }
}

#[tokio::test]
async fn an_unwritable_alert_log_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // The log path is a folder, so it cannot be opened for appending.
    let sink = ConsoleAlerts::new(dir.path(), false);
    let err = sink
        .publish(&alert(AlertKind::TokenInvalid, "token", "bad"))
        .await
        .unwrap_err();
    assert_eq!(err.subject, "catalog-sync: token");
    assert!(err.message.contains("cannot append"), "{err}");
}
