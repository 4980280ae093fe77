//! The state in the synced bucket (or the local folder): loaded before a file, saved after
//! it, with the poller's verdicts folded in on the way.

use std::io::{BufReader, BufWriter, Write};

use serde::{Deserialize, Serialize};
use tokio_util::io::SyncIoBridge;
use tracing::{info, warn};

use super::{BatchVerdict, ProductState, codec};
use crate::keys;
use crate::keys::{state_key, verdict_key, verdicts_prefix};
use crate::ports::{ObjectStore, Payload, StoreError, StoreErrorKind};

/// What the poller leaves for the sync function once a batch ends:
/// `state/<catalog>/verdicts/<handle>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictNote {
    /// The batch's body key, as in its pending record.
    pub batch_key: String,
    /// `finished`, `canceled` or `error`.
    pub state: String,
    /// Products Meta refused in the batch.
    pub refused_ids: Vec<String>,
    /// Whether `refused_ids` names every refused product.
    pub complete: bool,
}

impl VerdictNote {
    fn verdict(self) -> BatchVerdict {
        BatchVerdict {
            finished: self.state == "finished",
            batch_key: self.batch_key,
            refused_ids: self.refused_ids,
            complete: self.complete,
        }
    }
}

/// A loaded state, and what loading it found.
#[derive(Debug, Default)]
pub struct LoadedState {
    /// The state, empty when none could be used.
    pub state: ProductState,
    /// Why the stored state could not be used (damaged, another version, another catalog): it
    /// was replaced by an empty one, so every product is sent once more.
    pub unusable: Option<String>,
    /// Verdict notes folded in; deleted once the state is saved.
    pub folded: Vec<String>,
}

/// Loads and saves one catalog's state.
pub struct StateStore<'a> {
    store: &'a dyn ObjectStore,
    bucket: &'a str,
    catalog_id: &'a str,
}

fn io_error(
    operation: &'static str,
    location: String,
    error: impl std::fmt::Display,
) -> StoreError {
    StoreError {
        operation,
        location,
        kind: StoreErrorKind::Other,
        message: error.to_string(),
    }
}

impl<'a> StateStore<'a> {
    /// The state of `catalog_id` in `bucket`.
    pub fn new(store: &'a dyn ObjectStore, bucket: &'a str, catalog_id: &'a str) -> Self {
        StateStore {
            store,
            bucket,
            catalog_id,
        }
    }

    /// Where the state is, for messages.
    pub fn location(&self) -> String {
        self.store
            .location(self.bucket, &state_key(self.catalog_id))
    }

    /// Loads the state and folds in the poller's verdicts. A missing state is an empty one; a
    /// damaged one is replaced by an empty one (see [`LoadedState::unusable`]); a store that
    /// cannot be read is an error, so that a passing outage never discards what is known.
    pub async fn load(&self) -> Result<LoadedState, StoreError> {
        let key = state_key(self.catalog_id);
        let mut loaded = LoadedState::default();
        if let Some((_, body)) = self.store.get(self.bucket, &key, 0, None).await? {
            let catalog_id = self.catalog_id.to_owned();
            let bridge = SyncIoBridge::new(body);
            let decoded = tokio::task::spawn_blocking(move || {
                codec::decode(BufReader::with_capacity(256 * 1024, bridge), &catalog_id)
            })
            .await
            .map_err(|error| io_error("ReadState", self.location(), error))?;
            match decoded {
                Ok(state) => loaded.state = state,
                Err(codec::DecodeError::Io(error)) => {
                    return Err(io_error("GetObject", self.location(), error));
                }
                Err(error) => {
                    warn!(state = self.location(), %error, "the stored state cannot be used; starting from an empty one");
                    loaded.unusable = Some(error.to_string());
                }
            }
        }
        let (verdicts, folded) = self.read_verdicts().await?;
        let changed = loaded.state.fold_verdicts(&verdicts);
        info!(
            verdicts = verdicts.len(),
            changed,
            products = loaded.state.len(),
            "state loaded"
        );
        loaded.folded = folded;
        Ok(loaded)
    }

    /// Every verdict note waiting, and the keys to delete once they are folded in. A note that
    /// cannot be parsed is dropped with a warning: its batch's products stay as they were.
    async fn read_verdicts(&self) -> Result<(Vec<BatchVerdict>, Vec<String>), StoreError> {
        let prefix = verdicts_prefix(self.catalog_id);
        let mut verdicts = Vec::new();
        let mut keys = Vec::new();
        for object in crate::ports::list_all(self.store, self.bucket, &prefix).await? {
            let Some(bytes) =
                crate::ports::read_small(self.store, self.bucket, &object.key).await?
            else {
                continue;
            };
            match serde_json::from_slice::<VerdictNote>(&bytes) {
                Ok(note) => verdicts.push(note.verdict()),
                Err(error) => {
                    warn!(key = object.key, %error, "not a verdict note; dropped");
                }
            }
            keys.push(object.key);
        }
        Ok((verdicts, keys))
    }

    /// Writes `state` to a temporary file, ready for [`StateStore::upload`]; apart from the
    /// upload so that a caller holding the state behind a lock need not copy it.
    pub fn write_temp(&self, state: &ProductState) -> Result<tempfile::TempPath, StoreError> {
        let (file, path) = tempfile::NamedTempFile::new()
            .map_err(|error| io_error("WriteState", self.location(), error))?
            .into_parts();
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        codec::encode(state, self.catalog_id, &mut out)
            .and_then(|()| out.flush())
            .map_err(|error| io_error("WriteState", self.location(), error))?;
        Ok(path)
    }

    /// Stores a state written by [`StateStore::write_temp`], then deletes the verdict notes it
    /// folded in.
    pub async fn upload(
        &self,
        written: tempfile::TempPath,
        folded: &[String],
    ) -> Result<(), StoreError> {
        self.store
            .put(
                self.bucket,
                &state_key(self.catalog_id),
                Payload::File(written.to_path_buf()),
                "application/octet-stream",
            )
            .await?;
        drop(written);
        for note in folded {
            if let Err(error) = self.store.delete(self.bucket, note).await {
                // Folding a note twice changes nothing; it is deleted next time.
                warn!(key = note, %error, "could not delete a folded verdict note");
            }
        }
        Ok(())
    }

    /// Saves `state`, then deletes the verdict notes it folded in.
    pub async fn save(&self, state: &ProductState, folded: &[String]) -> Result<(), StoreError> {
        let written = self.write_temp(state)?;
        self.upload(written, folded).await
    }

    /// Leaves the verdict of the batch behind `handle` for the next sync to fold in (the
    /// poller's one write to the state's folder).
    pub async fn leave_verdict(&self, handle: &str, note: &VerdictNote) -> Result<(), StoreError> {
        let key = verdict_key(self.catalog_id, handle);
        let json = serde_json::to_vec(note).map_err(|error| {
            io_error(
                "WriteVerdictNote",
                self.store.location(self.bucket, &key),
                error,
            )
        })?;
        self.store
            .put(self.bucket, &key, Payload::from(json), "application/json")
            .await
    }

    /// Whether a person allowed the held deletes of the snapshot at `landing_key`.
    pub async fn deletes_released(&self, landing_key: &str) -> Result<bool, StoreError> {
        let key = keys::release_key(self.catalog_id, landing_key);
        Ok(self.store.head(self.bucket, &key).await?.is_some())
    }

    /// Allows the held deletes of the snapshot at `landing_key` on its next processing.
    pub async fn release_deletes(&self, landing_key: &str) -> Result<(), StoreError> {
        let key = keys::release_key(self.catalog_id, landing_key);
        let body = serde_json::json!({ "landing_key": landing_key }).to_string();
        self.store
            .put(self.bucket, &key, Payload::from(body), "application/json")
            .await
    }

    /// Removes the release of `landing_key` once its deletes went out.
    pub async fn forget_release(&self, landing_key: &str) {
        let key = keys::release_key(self.catalog_id, landing_key);
        if let Err(error) = self.store.delete(self.bucket, &key).await {
            warn!(key, %error, "could not delete a used release of held deletes");
        }
    }
}
