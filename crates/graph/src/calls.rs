//! How many calls a client made and how they ended, counted per attempt, so a function can
//! report Meta's throttling and errors as metrics even when a retry hid them from the caller.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorClass, GraphError};

/// Calls made through one client since it was built: every attempt, retries included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    /// Attempts made, successful or not.
    pub calls: u64,
    /// Attempts that ended in an error (no answer, an error answer, or an unreadable one),
    /// throttled ones included.
    pub failed: u64,
    /// Attempts Meta refused for its rate limits (HTTP 429 or a throttling error code).
    pub throttled: u64,
}

impl CallCounts {
    /// The calls made after `earlier` was read, up to `self`.
    pub fn since(self, earlier: CallCounts) -> CallCounts {
        CallCounts {
            calls: self.calls.saturating_sub(earlier.calls),
            failed: self.failed.saturating_sub(earlier.failed),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }
}

/// The live counters behind [`CallCounts`], shared by every clone of a client.
#[derive(Debug, Default)]
pub(crate) struct CallCounters {
    calls: AtomicU64,
    failed: AtomicU64,
    throttled: AtomicU64,
}

impl CallCounters {
    /// Counts one attempt that ended with `result`.
    pub(crate) fn record<T>(&self, result: &Result<T, GraphError>) {
        // Relaxed: each counter is a tally read for metrics, never a guard for other memory.
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if error.class() == ErrorClass::Throttled {
                self.throttled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counts so far.
    pub(crate) fn read(&self) -> CallCounts {
        CallCounts {
            calls: self.calls.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attempt_is_counted_by_how_it_ended() {
        let counters = CallCounters::default();
        counters.record(&Ok::<(), GraphError>(()));
        counters.record::<()>(&Err(GraphError::Throttled {
            code: Some(80014),
            message: "too many calls".into(),
            retry_after: None,
        }));
        counters.record::<()>(&Err(GraphError::Transient {
            status: Some(503),
            code: None,
            message: "unavailable".into(),
        }));
        assert_eq!(
            counters.read(),
            CallCounts {
                calls: 3,
                failed: 2,
                throttled: 1
            }
        );
    }

    #[test]
    fn the_difference_since_an_earlier_reading_never_underflows() {
        let later = CallCounts {
            calls: 10,
            failed: 4,
            throttled: 1,
        };
        let earlier = CallCounts {
            calls: 7,
            failed: 4,
            throttled: 0,
        };
        assert_eq!(
            later.since(earlier),
            CallCounts {
                calls: 3,
                failed: 0,
                throttled: 1
            }
        );
        assert_eq!(earlier.since(later).calls, 0);
    }
}
