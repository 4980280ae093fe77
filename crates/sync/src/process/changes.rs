//! Change detection in a run: the state is loaded before the file is read, consulted for every
//! row (unchanged products are not sent; a full snapshot marks what it holds), told what Meta
//! took after every call, and saved when the invocation ends. A full snapshot's deletes are
//! decided here too, guarded against an empty or truncated export.
//!
//! The state is shared by the parsing thread (lookups and marks) and the sender (what Meta
//! took) behind one mutex; neither holds it for longer than one row or one call.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use catalog::{Batch, KnownProducts};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Run;
use crate::config::ChangeSettings;
use crate::ports::{ObjectStore, Services, StoreError};
use crate::progress::Checkpoint;
use crate::state::{ProductState, SentBatch, StateStore};

/// Examples of held deletes kept for the report and the alert.
pub(crate) const HELD_EXAMPLES: usize = 20;

/// A full snapshot's deletes that were held back, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDeletes {
    /// Products the snapshot would have deleted.
    pub count: u64,
    /// Products known before the snapshot.
    pub known: u64,
    /// Some of their ids.
    pub examples: Vec<String>,
    /// Why they were held.
    pub reason: String,
}

/// What to do with the products a full snapshot no longer holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DeletePlan {
    /// Nothing is absent.
    Nothing,
    /// Delete them.
    Send,
    /// Hold them, for this reason.
    Hold(String),
}

/// The delete guard: a snapshot may delete at most `max_fraction` of the `known` products;
/// an empty or header-only snapshot deletes nothing; marks lost to an interrupted run delete
/// nothing. A person's release (`replay --allow-deletes`) lifts the first two, not the last.
pub(crate) fn plan_deletes(
    known: u64,
    absent: u64,
    rows_read: u64,
    max_fraction: f64,
    released: bool,
    marks_hold: bool,
) -> DeletePlan {
    if absent == 0 {
        return DeletePlan::Nothing;
    }
    if !marks_hold {
        return DeletePlan::Hold(
            "this snapshot was read over several invocations and the record of which products it holds was lost to an interruption, so its deletes cannot be trusted".to_owned(),
        );
    }
    if released {
        return DeletePlan::Send;
    }
    if rows_read == 0 {
        return DeletePlan::Hold(
            "the snapshot has no product rows (empty or header only); it would have deleted every known product".to_owned(),
        );
    }
    // Counts stay far below 2^52, where u64 to f64 loses precision.
    let share = absent as f64 / known.max(1) as f64;
    if share > max_fraction {
        return DeletePlan::Hold(format!(
            "it would delete {absent} of {known} known products ({:.1}%), more than MAX_DELETE_FRACTION allows ({:.1}%)",
            share * 100.0,
            max_fraction * 100.0
        ));
    }
    DeletePlan::Send
}

/// The state of one run's catalog, shared by the parsing thread and the sender.
#[derive(Clone)]
pub(crate) struct Changes {
    state: Arc<Mutex<ProductState>>,
    settings: ChangeSettings,
    /// Seconds since the epoch when the run's invocation started.
    now: i64,
    /// Set for a full snapshot.
    snapshot: Option<SnapshotRun>,
    /// Where the state is stored: the store, the synced bucket and the catalog.
    objects: Arc<dyn ObjectStore>,
    bucket: String,
    catalog_id: String,
}

/// A full snapshot's run: whether its marks can be trusted and whether deletes were released.
#[derive(Debug, Clone, Copy)]
struct SnapshotRun {
    marks_hold: bool,
    released: bool,
}

/// What loading found, for the run's end.
pub(crate) struct Loaded {
    pub(crate) changes: Changes,
    /// Verdict notes to delete once the state is saved.
    pub(crate) folded: Vec<String>,
    /// Why the stored state could not be used (every product is sent again).
    pub(crate) unusable: Option<String>,
}

fn lock(state: &Mutex<ProductState>) -> MutexGuard<'_, ProductState> {
    // A panic elsewhere cannot leave the state half-updated in a way that matters: at worst a
    // product is sent again.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Changes {
    /// Loads the catalog's state for `run`, starting or continuing a snapshot's marks.
    pub(crate) async fn load(
        services: &Services,
        synced_bucket: &str,
        settings: ChangeSettings,
        run: &Run<'_>,
        checkpoint: &Checkpoint,
        is_snapshot: bool,
    ) -> Result<Loaded, StoreError> {
        let catalog_id = services.catalog.catalog_id();
        let store = StateStore::new(services.store.as_ref(), synced_bucket, catalog_id);
        let loaded = store.load().await?;
        let mut state = loaded.state;
        let snapshot = if is_snapshot {
            let released = store.deletes_released(run.key).await?;
            let marks_hold = if checkpoint.resume_at.is_none() {
                state.start_marks(&run.run_id);
                true
            } else {
                state.marks_hold_for(&run.run_id, checkpoint.batches_done)
            };
            Some(SnapshotRun {
                marks_hold,
                released,
            })
        } else {
            None
        };
        Ok(Loaded {
            changes: Changes {
                state: Arc::new(Mutex::new(state)),
                settings,
                now: services.clock.now().unix_timestamp(),
                snapshot,
                objects: Arc::clone(&services.store),
                bucket: synced_bucket.to_owned(),
                catalog_id: catalog_id.to_owned(),
            },
            folded: loaded.folded,
            unusable: loaded.unusable,
        })
    }

    /// Change detection for the parsing thread's batcher.
    pub(crate) fn known(&self) -> Box<dyn KnownProducts> {
        Box::new(Known {
            changes: self.clone(),
        })
    }

    /// Whether the run reads a full snapshot.
    pub(crate) fn is_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Whether a person released this snapshot's deletes.
    pub(crate) fn released(&self) -> bool {
        self.snapshot.is_some_and(|s| s.released)
    }

    /// At the end of a snapshot read in full: the absent products to delete (in id order),
    /// or the deletes held back and why.
    pub(crate) fn snapshot_deletes(&self, rows_read: u64) -> Result<Vec<String>, HeldDeletes> {
        let Some(snapshot) = self.snapshot else {
            return Ok(Vec::new());
        };
        let state = lock(&self.state);
        let known = state.known();
        let absent = state.absent().count() as u64;
        let plan = plan_deletes(
            known,
            absent,
            rows_read,
            self.settings.max_delete_fraction,
            snapshot.released,
            snapshot.marks_hold,
        );
        match plan {
            DeletePlan::Nothing => Ok(Vec::new()),
            DeletePlan::Send => Ok(state.absent().map(str::to_owned).collect()),
            DeletePlan::Hold(reason) => Err(HeldDeletes {
                count: absent,
                known,
                examples: state
                    .absent()
                    .take(HELD_EXAMPLES)
                    .map(str::to_owned)
                    .collect(),
                reason,
            }),
        }
    }

    /// Records what Meta took in one call, the requests at `positions` of `batch`, sent as
    /// `sent`: those `refused` names are remembered as refused and sent again next time.
    pub(crate) fn record(
        &self,
        batch: &Batch,
        positions: Range<usize>,
        refused: impl Fn(&str) -> bool,
        sent: &SentBatch,
    ) {
        let items = batch.items.get(positions.clone()).unwrap_or_default();
        let mut state = lock(&self.state);
        for (item, position) in items.iter().zip(positions) {
            let delete = batch.is_delete_at(position);
            state.record_sent(&item.id, item.fingerprint, delete, refused(&item.id), sent);
        }
    }

    /// Saves the state at the end of an invocation: `deferred_at` (the batches done) for a run
    /// continued later, so that its snapshot marks carry over; `None` for a run that ended.
    /// A failed save is logged and returned: the products are simply sent again next time.
    pub(crate) async fn save(
        &self,
        folded: &[String],
        deferred_at: Option<u32>,
    ) -> Result<(), StoreError> {
        let store = self.store();
        // Written to a temporary file under the lock (nothing else uses the state once the
        // file is read), so a large state is never copied.
        let written = {
            let mut state = lock(&self.state);
            match deferred_at {
                Some(batches_done) => state.set_marks_progress(batches_done),
                None => state.clear_marks(),
            }
            store.write_temp(&state)
        };
        let result = match written {
            Ok(written) => store.upload(written, folded).await,
            Err(error) => Err(error),
        };
        match &result {
            Ok(()) => info!("state saved"),
            Err(error) => {
                warn!(%error, "could not save the state; the products of this run are sent again next time");
            }
        }
        result
    }

    /// Forgets the release of this snapshot's deletes once they went out.
    pub(crate) async fn forget_release(&self, landing_key: &str) {
        if self.released() {
            self.store().forget_release(landing_key).await;
        }
    }

    /// The state's place in the store.
    pub(crate) fn store(&self) -> StateStore<'_> {
        StateStore::new(self.objects.as_ref(), &self.bucket, &self.catalog_id)
    }
}

/// The batcher's view of the state.
struct Known {
    changes: Changes,
}

impl KnownProducts for Known {
    fn saw(&mut self, id: &str) {
        if self.changes.snapshot.is_some() {
            lock(&self.changes.state).mark_seen(id);
        }
    }

    fn unchanged(&mut self, id: &str, fingerprint: u64) -> bool {
        lock(&self.changes.state).check_row(
            id,
            fingerprint,
            self.changes.now,
            self.changes.settings.resend_after,
            self.changes.snapshot.is_some(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delete_guard() {
        use DeletePlan::{Hold, Nothing, Send};
        let plan = |known, absent, rows, released, marks| {
            plan_deletes(known, absent, rows, 0.1, released, marks)
        };
        assert_eq!(plan(100, 0, 0, false, true), Nothing);
        assert_eq!(plan(100, 10, 90, false, true), Send, "10% is allowed");
        assert!(matches!(plan(100, 11, 89, false, true), Hold(r) if r.contains("11 of 100")));
        assert!(matches!(plan(100, 100, 0, false, true), Hold(r) if r.contains("header only")));
        assert_eq!(plan(100, 100, 0, true, true), Send, "released by a person");
        assert_eq!(plan(100, 50, 50, true, true), Send);
        assert!(matches!(plan(100, 1, 99, true, false), Hold(r) if r.contains("interruption")));
        assert_eq!(plan_deletes(100, 100, 5, 1.0, false, true), Send);
        assert!(matches!(
            plan_deletes(100, 1, 99, 0.0, false, true),
            Hold(_)
        ));
    }
}
