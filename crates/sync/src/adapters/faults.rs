//! Fault injection for tests: an [`ObjectStore`] and an [`AlertSink`] that fail exactly where
//! a test scripts it, and pass everything else through to the real adapter.
//!
//! ```
//! # use sync::faults::{FaultyStore, Op};
//! # use sync::local::LocalStore;
//! let store = FaultyStore::new(LocalStore::new("/tmp/x"));
//! store
//!     .fail(Op::Put, "pending/", 2) // the next two puts of a pending record fail
//!     .fail_nth(Op::Copy, 1) // the first copy fails
//!     .fail_read_after("data/big.csv", 4096); // the download breaks after 4 KiB
//! ```

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use tokio::io::{AsyncRead, ReadBuf};

use crate::ports::Alert;
use crate::ports::{
    AlertError, AlertSink, ListPage, ObjectBody, ObjectInfo, ObjectStore, Payload, StoreError,
    StoreErrorKind,
};

/// The message of every injected failure, so tests can tell them from real ones.
pub const INJECTED_FAULT: &str = "injected fault";

/// A store operation, as scripted and as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`ObjectStore::head`].
    Head,
    /// [`ObjectStore::get`].
    Get,
    /// [`ObjectStore::put`].
    Put,
    /// [`ObjectStore::copy`].
    Copy,
    /// [`ObjectStore::delete`].
    Delete,
    /// [`ObjectStore::list`].
    List,
}

impl Op {
    /// The S3 operation name, used in the injected [`StoreError`].
    pub fn operation(self) -> &'static str {
        match self {
            Op::Head => "HeadObject",
            Op::Get => "GetObject",
            Op::Put => "PutObject",
            Op::Copy => "CopyObject",
            Op::Delete => "DeleteObject",
            Op::List => "ListObjectsV2",
        }
    }

    fn index(self) -> usize {
        match self {
            Op::Head => 0,
            Op::Get => 1,
            Op::Put => 2,
            Op::Copy => 3,
            Op::Delete => 4,
            Op::List => 5,
        }
    }
}

#[derive(Debug)]
enum Trigger {
    /// Calls whose key (for a copy `from -> to`, for a list the prefix) contains this.
    KeyContains(String),
    /// The n-th call of the operation (1-based, counted since the store was made).
    Nth(usize),
}

#[derive(Debug)]
struct CallRule {
    op: Op,
    trigger: Trigger,
    /// Failures left; `None` for always.
    remaining: Option<usize>,
}

#[derive(Debug)]
struct ReadRule {
    key_contains: String,
    after: u64,
    /// Broken bodies left to hand out; `None` for always.
    remaining: Option<usize>,
}

#[derive(Debug, Default)]
struct Script {
    calls: Vec<CallRule>,
    reads: Vec<ReadRule>,
    seen: Vec<(Op, String)>,
    counts: [usize; 6],
}

/// Takes one use of a rule with `remaining` uses left, if any is left.
fn take(remaining: &mut Option<usize>) -> bool {
    match remaining {
        None => true,
        Some(0) => false,
        Some(left) => {
            *left -= 1;
            true
        }
    }
}

/// An [`ObjectStore`] that fails scripted calls with [`StoreErrorKind::Other`] and the message
/// [`INJECTED_FAULT`], and passes every other call to `inner`.
///
/// Rules are checked in the order they were added; the first that applies fires (and uses up
/// one of its failures). A failed call does not reach `inner`. Every call, failed or not, is
/// recorded for [`FaultyStore::operations`]. Rules can be added at any time, also through an
/// `Arc` shared with the code under test.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    script: Mutex<Script>,
}

impl<S> FaultyStore<S> {
    /// `inner` with no faults scripted yet.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            script: Mutex::new(Script::default()),
        }
    }

    /// The wrapped store, to inspect or prepare it without faults or recording.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The next `times` calls of `op` whose key contains `key_contains` fail ("" matches all).
    pub fn fail(&self, op: Op, key_contains: &str, times: usize) -> &Self {
        self.add_call(
            op,
            Trigger::KeyContains(key_contains.to_owned()),
            Some(times),
        )
    }

    /// Every call of `op` whose key contains `key_contains` fails ("" matches all).
    pub fn fail_always(&self, op: Op, key_contains: &str) -> &Self {
        self.add_call(op, Trigger::KeyContains(key_contains.to_owned()), None)
    }

    /// The `n`-th call of `op` fails: 1-based, counting every call of `op` since this store
    /// was made (so `n` at or below the calls already made never fires).
    pub fn fail_nth(&self, op: Op, n: usize) -> &Self {
        self.add_call(op, Trigger::Nth(n), Some(1))
    }

    /// Every body read from a key containing `key_contains` fails with an I/O error (message
    /// [`INJECTED_FAULT`]) once `bytes` bytes of it were read, if the body holds more than that;
    /// a shorter body ends normally. Counted from the first byte returned, after any `from`.
    pub fn fail_read_after(&self, key_contains: &str, bytes: u64) -> &Self {
        self.add_read(key_contains, bytes, None)
    }

    /// Like [`FaultyStore::fail_read_after`], for the next `times` matching reads only.
    pub fn fail_read_after_times(&self, key_contains: &str, bytes: u64, times: usize) -> &Self {
        self.add_read(key_contains, bytes, Some(times))
    }

    /// Every call seen so far, in order: the operation and its key (for a copy `from -> to`,
    /// for a list the prefix).
    pub fn operations(&self) -> Vec<(Op, String)> {
        self.lock().seen.clone()
    }

    /// How many calls of `op` were seen so far, failed ones included.
    pub fn calls(&self, op: Op) -> usize {
        self.lock().counts[op.index()]
    }

    fn add_call(&self, op: Op, trigger: Trigger, remaining: Option<usize>) -> &Self {
        self.lock().calls.push(CallRule {
            op,
            trigger,
            remaining,
        });
        self
    }

    fn add_read(&self, key_contains: &str, after: u64, remaining: Option<usize>) -> &Self {
        self.lock().reads.push(ReadRule {
            key_contains: key_contains.to_owned(),
            after,
            remaining,
        });
        self
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        // A test that panicked while holding the lock leaves a script that is still coherent.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the call and fails it if a rule says so.
    fn enter(&self, op: Op, bucket: &str, key: &str) -> Result<(), StoreError> {
        let mut guard = self.lock();
        let script = &mut *guard;
        script.seen.push((op, key.to_owned()));
        let count = &mut script.counts[op.index()];
        *count += 1;
        let n = *count;
        for rule in script.calls.iter_mut().filter(|rule| rule.op == op) {
            let applies = match &rule.trigger {
                Trigger::KeyContains(part) => key.contains(part.as_str()),
                Trigger::Nth(nth) => *nth == n,
            };
            if applies && take(&mut rule.remaining) {
                return Err(StoreError {
                    operation: op.operation(),
                    location: format!("{bucket}/{key}"),
                    kind: StoreErrorKind::Other,
                    message: INJECTED_FAULT.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// After how many bytes a body read from `key` must break, if it must.
    fn read_fault(&self, key: &str) -> Option<u64> {
        let mut script = self.lock();
        for rule in script.reads.iter_mut() {
            if key.contains(rule.key_contains.as_str()) && take(&mut rule.remaining) {
                return Some(rule.after);
            }
        }
        None
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.enter(Op::Head, bucket, key)?;
        self.inner.head(bucket, key).await
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        from: u64,
        if_match: Option<&str>,
    ) -> Result<Option<(ObjectInfo, ObjectBody)>, StoreError> {
        self.enter(Op::Get, bucket, key)?;
        let Some((info, body)) = self.inner.get(bucket, key, from, if_match).await? else {
            return Ok(None);
        };
        let body: ObjectBody = match self.read_fault(key) {
            Some(after) => Box::pin(BreakingBody::new(body, after)),
            None => body,
        };
        Ok(Some((info, body)))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        payload: Payload,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.enter(Op::Put, bucket, key)?;
        self.inner.put(bucket, key, payload, content_type).await
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<(), StoreError> {
        self.enter(Op::Copy, bucket, &format!("{from} -> {to}"))?;
        self.inner.copy(bucket, from, to).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.enter(Op::Delete, bucket, key)?;
        self.inner.delete(bucket, key).await
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StoreError> {
        self.enter(Op::List, bucket, prefix)?;
        self.inner.list(bucket, prefix, next).await
    }

    fn location(&self, bucket: &str, key: &str) -> String {
        self.inner.location(bucket, key)
    }
}

/// A body that passes `left` bytes through and then fails, like a connection reset mid-way.
struct BreakingBody {
    inner: ObjectBody,
    left: u64,
    broken: bool,
    scratch: Vec<u8>,
}

impl BreakingBody {
    fn new(inner: ObjectBody, after: u64) -> Self {
        BreakingBody {
            inner,
            left: after,
            broken: false,
            scratch: Vec::new(),
        }
    }
}

impl AsyncRead for BreakingBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.broken {
            return Poll::Ready(Err(io::Error::other(INJECTED_FAULT)));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // At the limit, peek one byte: the body breaks only if there was more to read.
        let want = usize::try_from(this.left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining())
            .max(1);
        // Reading into a scratch buffer of `want` bytes keeps the limit exact without unsafe.
        this.scratch.resize(want, 0);
        let mut limited = ReadBuf::new(&mut this.scratch[..want]);
        ready!(this.inner.as_mut().poll_read(cx, &mut limited))?;
        let filled = limited.filled();
        if this.left == 0 {
            if filled.is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.broken = true;
            return Poll::Ready(Err(io::Error::other(INJECTED_FAULT)));
        }
        buf.put_slice(filled);
        this.left = this
            .left
            .saturating_sub(u64::try_from(filled.len()).unwrap_or(u64::MAX));
        Poll::Ready(Ok(()))
    }
}

/// An [`AlertSink`] whose first `fail_first` publishes fail (message [`INJECTED_FAULT`]);
/// later ones go to `inner`.
#[derive(Debug)]
pub struct FaultyAlerts<A> {
    inner: A,
    fail_first: usize,
    attempts: AtomicUsize,
}

impl<A> FaultyAlerts<A> {
    /// `inner`, failing its first `fail_first` publishes.
    pub fn new(inner: A, fail_first: usize) -> Self {
        FaultyAlerts {
            inner,
            fail_first,
            attempts: AtomicUsize::new(0),
        }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// Publishes attempted so far, failed ones included.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<A: AlertSink> AlertSink for FaultyAlerts<A> {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        if attempt < self.fail_first {
            return Err(AlertError {
                subject: alert.subject.clone(),
                message: INJECTED_FAULT.to_owned(),
            });
        }
        self.inner.publish(alert).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn body(bytes: &'static [u8]) -> ObjectBody {
        Box::pin(bytes)
    }

    async fn read_all(mut body: impl AsyncRead + Unpin) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut chunk = [0u8; 3];
        loop {
            match body.read(&mut chunk).await {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(err) => return (out, Some(err)),
            }
        }
    }

    #[tokio::test]
    async fn a_body_breaks_after_exactly_the_scripted_bytes() {
        let (read, err) = read_all(BreakingBody::new(body(b"0123456789"), 4)).await;
        assert_eq!(read, b"0123");
        assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(INJECTED_FAULT));
    }

    #[tokio::test]
    async fn a_body_no_longer_than_the_limit_ends_normally() {
        let (read, err) = read_all(BreakingBody::new(body(b"0123"), 4)).await;
        assert_eq!(read, b"0123");
        assert!(err.is_none());
        let (read, err) = read_all(BreakingBody::new(body(b""), 0)).await;
        assert!(read.is_empty() && err.is_none());
    }

    #[tokio::test]
    async fn a_zero_limit_breaks_at_once_and_stays_broken() {
        let mut broken = BreakingBody::new(body(b"x"), 0);
        let mut chunk = [0u8; 8];
        assert!(broken.read(&mut chunk).await.is_err());
        assert!(broken.read(&mut chunk).await.is_err());
    }

    #[test]
    fn limited_rules_are_used_up_and_unlimited_ones_are_not() {
        let mut three = Some(2);
        assert!(take(&mut three));
        assert!(take(&mut three));
        assert!(!take(&mut three));
        let mut always = None;
        assert!((0..100).all(|_| take(&mut always)));
    }
}
