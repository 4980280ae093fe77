//! One contract for [`ObjectStore`], run against every adapter: the local folder store, the S3
//! store on moto server, and the fault-injecting store with no faults scheduled. An adapter
//! that answers differently from the others fails here, not in a user's second run.
//!
//! The port has no conditional create; its one condition is `If-Match` on a read, which the
//! contract covers (a matching ETag reads, another fails with `Changed`).

use bytes::Bytes;
use sync::adapters::aws::S3Store;
use sync::faults::FaultyStore;
use sync::local::LocalStore;
use sync::ports::{ObjectStore, Payload, StoreErrorKind, list_all};
use testkit::{MotoServer, unique_name};
use tokio::io::AsyncReadExt;

/// Keys a retailer's export can have: spaces, `+` (a space in an S3 event, literal here), `%`,
/// and non-ASCII letters.
const AWKWARD_KEYS: [&str; 5] = [
    "data/spring sale.csv",
    "data/a+b.csv",
    "data/100% cotton.csv",
    "data/données/été ü.csv",
    "data/%20literal.csv",
];

/// Everything the use cases rely on from a store, asserted on `store` in `bucket` (empty).
async fn contract(store: &dyn ObjectStore, bucket: &str) {
    missing_keys(store, bucket).await;
    reads_from_any_offset(store, bucket).await;
    conditional_reads(store, bucket).await;
    copy_and_delete(store, bucket).await;
    awkward_names(store, bucket).await;
    listing(store, bucket).await;
}

async fn put(store: &dyn ObjectStore, bucket: &str, key: &str, text: &str) {
    store
        .put(
            bucket,
            key,
            Payload::Bytes(Bytes::from(text.to_owned())),
            "text/csv",
        )
        .await
        .unwrap_or_else(|err| panic!("put {key}: {err}"));
}

/// The object's size as reported and its bytes from `from`, or `None` if missing.
async fn read_from(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    from: u64,
) -> Option<(u64, String)> {
    let (info, mut body) = store
        .get(bucket, key, from, None)
        .await
        .unwrap_or_else(|err| panic!("get {key} from {from}: {err}"))?;
    assert_eq!(info.key, key);
    let mut text = String::new();
    body.read_to_string(&mut text)
        .await
        .unwrap_or_else(|err| panic!("read {key} from {from}: {err}"));
    Some((info.size, text))
}

async fn keys(store: &dyn ObjectStore, bucket: &str, prefix: &str) -> Vec<String> {
    list_all(store, bucket, prefix)
        .await
        .unwrap_or_else(|err| panic!("list {prefix}: {err}"))
        .into_iter()
        .map(|object| object.key)
        .collect()
}

async fn missing_keys(store: &dyn ObjectStore, bucket: &str) {
    let key = "data/never-written.csv";
    assert_eq!(store.head(bucket, key).await.expect("head"), None);
    assert!(read_from(store, bucket, key, 0).await.is_none());
    assert!(read_from(store, bucket, key, 5).await.is_none());
    assert!(keys(store, bucket, "data/never").await.is_empty());
    store
        .delete(bucket, key)
        .await
        .expect("deleting a missing object is not an error");
    assert!(
        store.copy(bucket, key, "archive/x.csv").await.is_err(),
        "copying a missing object fails"
    );
    assert_eq!(
        store.head(bucket, "archive/x.csv").await.expect("head"),
        None
    );
}

async fn reads_from_any_offset(store: &dyn ObjectStore, bucket: &str) {
    let key = "data/ten.csv";
    put(store, bucket, key, "0123456789").await;
    let head = store
        .head(bucket, key)
        .await
        .expect("head")
        .expect("exists");
    assert_eq!(head.size, 10);
    assert!(head.etag.is_some());
    for (from, rest) in [(0, "0123456789"), (1, "123456789"), (4, "456789"), (9, "9")] {
        assert_eq!(
            read_from(store, bucket, key, from).await,
            Some((10, rest.to_owned())),
            "a read from {from} reports the whole object's size and the rest of its bytes"
        );
    }
    for from in [10, 11, 1_000_000] {
        assert_eq!(
            read_from(store, bucket, key, from).await,
            Some((10, String::new())),
            "a read from {from}, at or past the end, is an empty stream"
        );
    }
    let empty = "data/empty.csv";
    put(store, bucket, empty, "").await;
    assert_eq!(
        read_from(store, bucket, empty, 0).await,
        Some((0, String::new()))
    );
    store.delete(bucket, key).await.expect("delete");
    store.delete(bucket, empty).await.expect("delete");
}

async fn conditional_reads(store: &dyn ObjectStore, bucket: &str) {
    let key = "data/etag.csv";
    put(store, bucket, key, "first").await;
    let etag = store
        .head(bucket, key)
        .await
        .expect("head")
        .and_then(|info| info.etag)
        .expect("an etag");
    for from in [0, 2, 5] {
        let (info, _) = store
            .get(bucket, key, from, Some(&etag))
            .await
            .unwrap_or_else(|err| panic!("a matching If-Match from {from} reads: {err}"))
            .expect("exists");
        assert_eq!(info.etag.as_deref(), Some(etag.as_str()));
    }
    put(store, bucket, key, "second version").await;
    let changed = match store.get(bucket, key, 0, Some(&etag)).await {
        Err(err) => err,
        Ok(_) => panic!("a read of a replaced object with the old ETag must fail"),
    };
    assert_eq!(changed.kind, StoreErrorKind::Changed, "{changed}");
    store.delete(bucket, key).await.expect("delete");
}

async fn copy_and_delete(store: &dyn ObjectStore, bucket: &str) {
    let (from, to) = ("data/move-me.csv", "archive/move-me.csv");
    put(store, bucket, from, "payload").await;
    store.copy(bucket, from, to).await.expect("copy");
    assert_eq!(
        read_from(store, bucket, to, 0).await,
        Some((7, "payload".to_owned()))
    );
    assert!(
        store.head(bucket, from).await.expect("head").is_some(),
        "a copy keeps its source"
    );
    put(store, bucket, from, "newer").await;
    store.copy(bucket, from, to).await.expect("copy over");
    assert_eq!(
        read_from(store, bucket, to, 0).await,
        Some((5, "newer".to_owned())),
        "a copy replaces its target whole"
    );
    store.delete(bucket, from).await.expect("delete");
    store.delete(bucket, to).await.expect("delete");
    assert_eq!(store.head(bucket, from).await.expect("head"), None);
    assert_eq!(store.head(bucket, to).await.expect("head"), None);
}

async fn awkward_names(store: &dyn ObjectStore, bucket: &str) {
    for (n, key) in AWKWARD_KEYS.iter().enumerate() {
        put(store, bucket, key, &format!("row {n}")).await;
    }
    let mut expected: Vec<String> = AWKWARD_KEYS.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(keys(store, bucket, "data/").await, expected);
    for (n, key) in AWKWARD_KEYS.iter().enumerate() {
        let text = format!("row {n}");
        assert_eq!(
            read_from(store, bucket, key, 4).await,
            Some((text.len() as u64, text[4..].to_owned())),
            "{key}"
        );
        let archived = key.replacen("data/", "archive/", 1);
        store
            .copy(bucket, key, &archived)
            .await
            .unwrap_or_else(|err| panic!("copy {key}: {err}"));
        store.delete(bucket, key).await.expect("delete");
        assert_eq!(store.head(bucket, key).await.expect("head"), None, "{key}");
        assert_eq!(
            read_from(store, bucket, &archived, 0).await,
            Some((text.len() as u64, text)),
            "{archived}"
        );
    }
    let archived: Vec<String> = expected
        .iter()
        .map(|key| key.replacen("data/", "archive/", 1))
        .collect();
    assert_eq!(keys(store, bucket, "archive/").await, archived);
    for key in &archived {
        store.delete(bucket, key).await.expect("delete");
    }
    assert!(keys(store, bucket, "").await.is_empty(), "all cleaned up");
}

async fn listing(store: &dyn ObjectStore, bucket: &str) {
    let written = [
        "pending/b.json",
        "pending/a.json",
        "pending/a/nested.json",
        "pending/a-b.json",
        "pending/a0.json",
        "pendingx/not-under.json",
        "progress/r.json",
    ];
    for key in written {
        put(store, bucket, key, key).await;
    }
    // S3's byte-wise order: `-` (0x2d) < `.` (0x2e) < `/` (0x2f) < `0` (0x30).
    assert_eq!(
        keys(store, bucket, "pending/").await,
        [
            "pending/a-b.json",
            "pending/a.json",
            "pending/a/nested.json",
            "pending/a0.json",
            "pending/b.json",
        ]
    );
    assert_eq!(
        keys(store, bucket, "pending/a").await,
        [
            "pending/a-b.json",
            "pending/a.json",
            "pending/a/nested.json",
            "pending/a0.json",
        ],
        "a prefix filters keys, not folders"
    );
    assert_eq!(keys(store, bucket, "pending").await.len(), 6);
    assert!(keys(store, bucket, "nothing/").await.is_empty());
    // Every page's objects, in order, with sizes and ETags as a head reports them.
    let listed = list_all(store, bucket, "").await.expect("list");
    assert_eq!(listed.len(), written.len());
    for object in &listed {
        let head = store
            .head(bucket, &object.key)
            .await
            .expect("head")
            .expect("listed objects exist");
        assert_eq!(object.size, head.size, "{}", object.key);
        assert_eq!(object.etag, head.etag, "{}", object.key);
    }
    let mut first = store.list(bucket, "pending/", None).await.expect("list");
    let mut paged = std::mem::take(&mut first.objects);
    let mut next = first.next;
    while let Some(token) = next {
        let page = store
            .list(bucket, "pending/", Some(token))
            .await
            .expect("next page");
        paged.extend(page.objects);
        next = page.next;
    }
    assert_eq!(paged.len(), 5, "pages cover every key once");
    for key in written {
        store.delete(bucket, key).await.expect("delete");
    }
}

#[tokio::test]
async fn the_local_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    contract(&LocalStore::new(dir.path()), "landing").await;
}

#[tokio::test]
async fn the_local_store_keeps_the_contract_across_small_pages() {
    let dir = tempfile::tempdir().expect("temp dir");
    contract(&LocalStore::new(dir.path()).with_page_size(2), "landing").await;
}

#[tokio::test]
async fn the_fault_injecting_store_with_no_faults_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FaultyStore::new(LocalStore::new(dir.path()).with_page_size(3));
    contract(&store, "landing").await;
    assert!(
        !store.operations().is_empty(),
        "the calls went through the fault-injecting store"
    );
}

#[tokio::test]
async fn the_s3_store_on_moto_keeps_the_contract() {
    let moto = MotoServer::shared();
    let bucket = unique_name("contract");
    moto.create_bucket(&bucket).await;
    contract(&S3Store::new(moto.s3_client()), &bucket).await;
}
