//! The retry policy, kept apart from request code so it can be tested with a scripted operation.
//!
//! Transient failures wait an exponential backoff with full jitter (a uniform pick between zero
//! and the capped exponential step). Throttling waits what the server asked for; when that is
//! longer than [`RetryPolicy::max_throttle_wait`] or would pass the deadline, the error comes
//! back at once so the caller can checkpoint instead of sleeping. No sleep ever passes the deadline.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::error::GraphError;

/// How often and how long to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; 0 counts as 1.
    pub max_attempts: u32,
    /// Backoff cap after the first failure; doubles per failure.
    pub initial_backoff: Duration,
    /// Largest backoff cap.
    pub max_backoff: Duration,
    /// Longest server-requested throttle wait worth sleeping through; beyond it, give up at once.
    pub max_throttle_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_throttle_wait: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// A policy that makes exactly one attempt.
    pub fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The upper bound of the jittered wait after `failures` failed attempts (1-based).
    pub fn backoff_cap(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// What to do after attempt number `attempt` (1-based) failed with `error` at `now`.
    pub fn decide(
        &self,
        attempt: u32,
        error: &GraphError,
        now: Instant,
        deadline: Option<Instant>,
        jitter: &impl Jitter,
    ) -> Decision {
        if !error.is_retryable() {
            return Decision::GiveUp(GiveUpReason::NotRetryable);
        }
        if attempt >= self.max_attempts.max(1) {
            return Decision::GiveUp(GiveUpReason::AttemptsExhausted);
        }
        let wait = match error.retry_after() {
            Some(asked) if asked > self.max_throttle_wait => {
                return Decision::GiveUp(GiveUpReason::ThrottleTooLong(asked));
            }
            // A zero hint (Retry-After: 0) must not turn into a tight loop.
            Some(asked) => asked.max(self.initial_backoff),
            None => jitter.pick(self.backoff_cap(attempt)),
        };
        if let Some(deadline) = deadline {
            // An overflowing instant is beyond any deadline.
            let passes = now.checked_add(wait).is_none_or(|end| end > deadline);
            if passes {
                return Decision::GiveUp(GiveUpReason::Deadline);
            }
        }
        Decision::Retry(wait)
    }
}

/// The outcome of [`RetryPolicy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sleep this long, then try again.
    Retry(Duration),
    /// Return the error.
    GiveUp(GiveUpReason),
}

/// Why a retry loop returned its last error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// Token, permission, invalid request or other errors a retry cannot fix.
    NotRetryable,
    /// `max_attempts` reached.
    AttemptsExhausted,
    /// The server asked for a wait longer than `max_throttle_wait`.
    ThrottleTooLong(Duration),
    /// The next wait would end after the deadline.
    Deadline,
}

/// Something that waits; tests can substitute a recorder.
pub trait Sleeper: Send + Sync {
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Sleeps with `tokio::time`, so paused-clock tests run instantly.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// Picks the jittered wait; tests can make it deterministic.
pub trait Jitter: Send + Sync {
    /// A wait in `[0, max]`.
    fn pick(&self, max: Duration) -> Duration;
}

/// Uniform full jitter from the thread-local random generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn pick(&self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// Runs `op` (given the 1-based attempt number) under `policy` with real sleeps and jitter.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Option<Instant>,
    op: F,
) -> Result<T, GraphError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, GraphError>>,
{
    retry_with(policy, deadline, &TokioSleeper, &RandomJitter, op).await
}

/// Runs `op` under `policy`, waiting with `sleeper` and jittering with `jitter`.
pub async fn retry_with<T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Option<Instant>,
    sleeper: &impl Sleeper,
    jitter: &impl Jitter,
    mut op: F,
) -> Result<T, GraphError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, GraphError>>,
{
    let mut attempt = 1u32;
    loop {
        let error = match op(attempt).await {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(attempt, "Graph API call succeeded after retrying");
                }
                return Ok(value);
            }
            Err(error) => error,
        };
        let class = error.class();
        match policy.decide(attempt, &error, Instant::now(), deadline, jitter) {
            Decision::Retry(wait) => {
                tracing::info!(
                    attempt,
                    ?class,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %error,
                    "Graph API call failed; retrying after a wait"
                );
                sleeper.sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
            Decision::GiveUp(reason) => {
                tracing::debug!(attempt, ?class, ?reason, error = %error, "Graph API call not retried");
                return Err(error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Returns the cap itself, or a fixed fraction of it, and records every cap asked for.
    struct RecordingJitter {
        fraction: f64,
        caps: Mutex<Vec<Duration>>,
    }

    impl RecordingJitter {
        fn new(fraction: f64) -> Self {
            Self {
                fraction,
                caps: Mutex::new(Vec::new()),
            }
        }
        fn caps(&self) -> Vec<Duration> {
            self.caps.lock().unwrap().clone()
        }
    }

    impl Jitter for RecordingJitter {
        fn pick(&self, max: Duration) -> Duration {
            self.caps.lock().unwrap().push(max);
            max.mul_f64(self.fraction)
        }
    }

    fn transient() -> GraphError {
        GraphError::Transient {
            status: Some(503),
            code: None,
            message: "unavailable".into(),
        }
    }

    fn throttled(wait: Option<Duration>) -> GraphError {
        GraphError::Throttled {
            code: Some(80014),
            message: "too many calls".into(),
            retry_after: wait,
        }
    }

    /// Runs a script of results through the retry loop; returns (result, attempts, elapsed).
    async fn run_script(
        policy: &RetryPolicy,
        deadline: Option<Instant>,
        jitter: &impl Jitter,
        script: Vec<Result<u32, GraphError>>,
    ) -> (Result<u32, GraphError>, u32, Duration) {
        let script = Mutex::new(script.into_iter());
        let attempts = Mutex::new(0u32);
        let start = Instant::now();
        let result = retry_with(policy, deadline, &TokioSleeper, jitter, |n| {
            *attempts.lock().unwrap() = n;
            let next = script.lock().unwrap().next();
            async move { next.unwrap_or(Ok(999)) }
        })
        .await;
        let n = *attempts.lock().unwrap();
        (result, n, start.elapsed())
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn default_policy() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 6);
        assert_eq!(p.initial_backoff, Duration::from_millis(500));
        assert_eq!(p.max_backoff, Duration::from_secs(30));
        assert_eq!(p.max_throttle_wait, Duration::from_secs(900));
    }

    #[test]
    fn backoff_caps_double_and_saturate() {
        let p = policy();
        let caps: Vec<u64> = (1..=9)
            .map(|n| p.backoff_cap(n).as_millis() as u64)
            .collect();
        assert_eq!(
            caps,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(p.backoff_cap(u32::MAX), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_retries_until_attempts_run_out_with_full_jitter() {
        let jitter = RecordingJitter::new(1.0);
        let script = (0..10).map(|_| Err(transient())).collect();
        let (result, attempts, waited) = run_script(&policy(), None, &jitter, script).await;
        assert!(matches!(result, Err(GraphError::Transient { .. })));
        assert_eq!(attempts, 6);
        // Five waits at the full cap: 0.5 + 1 + 2 + 4 + 8 seconds.
        assert_eq!(waited, Duration::from_millis(15_500));
        assert_eq!(
            jitter.caps(),
            [500, 1000, 2000, 4000, 8000].map(Duration::from_millis)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transient_then_success() {
        let jitter = RecordingJitter::new(0.5);
        let script = vec![Err(transient()), Err(transient()), Ok(7)];
        let (result, attempts, waited) = run_script(&policy(), None, &jitter, script).await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(attempts, 3);
        assert_eq!(waited, Duration::from_millis(250 + 500));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_jitter_still_retries() {
        let jitter = RecordingJitter::new(0.0);
        let script = vec![Err(transient()), Ok(1)];
        let (result, attempts, waited) = run_script(&policy(), None, &jitter, script).await;
        assert_eq!(result.unwrap(), 1);
        assert_eq!(attempts, 2);
        assert_eq!(waited, Duration::ZERO);
    }

    #[test]
    fn random_jitter_stays_within_bounds() {
        let cap = Duration::from_millis(800);
        let picks: Vec<Duration> = (0..2000).map(|_| RandomJitter.pick(cap)).collect();
        assert!(picks.iter().all(|d| *d <= cap));
        // Full jitter spreads over the whole window, not only its top.
        assert!(picks.iter().any(|d| *d < cap / 4));
        assert!(picks.iter().any(|d| *d > cap * 3 / 4));
        assert_eq!(RandomJitter.pick(Duration::ZERO), Duration::ZERO);
        assert!(RandomJitter.pick(Duration::MAX) <= Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_for_fatal_classes() {
        let fatal = [
            GraphError::TokenInvalid {
                code: 190,
                subcode: Some(463),
                message: "expired".into(),
            },
            GraphError::Permission {
                code: 200,
                message: "no".into(),
            },
            GraphError::InvalidRequest {
                status: Some(400),
                code: Some(100),
                message: "bad".into(),
            },
            GraphError::InvalidSettings {
                message: "bad".into(),
            },
            GraphError::PayloadTooLarge {
                status: Some(500),
                message: "reduce".into(),
            },
            GraphError::InvalidResponse {
                status: 200,
                detail: "html".into(),
            },
        ];
        for error in fatal {
            let class = error.class();
            let jitter = RecordingJitter::new(1.0);
            let (result, attempts, waited) =
                run_script(&policy(), None, &jitter, vec![Err(error)]).await;
            assert_eq!(result.unwrap_err().class(), class);
            assert_eq!(attempts, 1, "{class:?}");
            assert_eq!(waited, Duration::ZERO, "{class:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_waits_what_the_server_said() {
        let jitter = RecordingJitter::new(1.0);
        let script = vec![
            Err(throttled(Some(Duration::from_secs(120)))),
            Err(throttled(Some(Duration::from_secs(60)))),
            Ok(5),
        ];
        let (result, attempts, waited) = run_script(&policy(), None, &jitter, script).await;
        assert_eq!(result.unwrap(), 5);
        assert_eq!(attempts, 3);
        assert_eq!(waited, Duration::from_secs(180));
        assert!(
            jitter.caps().is_empty(),
            "a server-given wait is not jittered"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_without_hint_uses_backoff() {
        let jitter = RecordingJitter::new(1.0);
        let script = vec![Err(throttled(None)), Err(throttled(None)), Ok(1)];
        let (result, attempts, waited) = run_script(&policy(), None, &jitter, script).await;
        assert_eq!(result.unwrap(), 1);
        assert_eq!(attempts, 3);
        assert_eq!(waited, Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_longer_than_allowed_returns_at_once() {
        let jitter = RecordingJitter::new(1.0);
        let script = vec![Err(throttled(Some(Duration::from_secs(16 * 60))))];
        let (result, attempts, waited) = run_script(&policy(), None, &jitter, script).await;
        let err = result.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(960)));
        assert_eq!(attempts, 1);
        assert_eq!(waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_past_the_deadline_returns_without_sleeping() {
        let jitter = RecordingJitter::new(1.0);
        let deadline = Instant::now() + Duration::from_secs(60);
        let script = vec![Err(throttled(Some(Duration::from_secs(5 * 60))))];
        let (result, attempts, waited) =
            run_script(&policy(), Some(deadline), &jitter, script).await;
        assert!(matches!(result, Err(GraphError::Throttled { .. })));
        assert_eq!(attempts, 1);
        assert_eq!(waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn never_sleeps_past_the_deadline() {
        // Caps 0.5, 1, 2, 4 s at full jitter: after 3.5 s the next 4 s wait would end at
        // 7.5 s, past a 5 s deadline, so the loop stops after the fourth attempt.
        let jitter = RecordingJitter::new(1.0);
        let deadline = Instant::now() + Duration::from_secs(5);
        let script = (0..10).map(|_| Err(transient())).collect();
        let (result, attempts, waited) =
            run_script(&policy(), Some(deadline), &jitter, script).await;
        assert!(matches!(result, Err(GraphError::Transient { .. })));
        assert_eq!(attempts, 4);
        assert_eq!(waited, Duration::from_millis(3500));
        assert!(Instant::now() <= deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ending_exactly_at_the_deadline_is_allowed() {
        let jitter = RecordingJitter::new(1.0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let script = vec![Err(throttled(Some(Duration::from_secs(30)))), Ok(3)];
        let (result, attempts, waited) =
            run_script(&policy(), Some(deadline), &jitter, script).await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(attempts, 2);
        assert_eq!(waited, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_max_attempts_means_one_attempt() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        let jitter = RecordingJitter::new(1.0);
        let (result, attempts, _) = run_script(&p, None, &jitter, vec![Err(transient())]).await;
        assert!(result.is_err());
        assert_eq!(attempts, 1);
        assert_eq!(RetryPolicy::no_retry().max_attempts, 1);
    }

    #[test]
    fn a_zero_throttle_hint_still_waits_the_initial_backoff() {
        let p = policy();
        let j = RecordingJitter::new(1.0);
        assert_eq!(
            p.decide(
                1,
                &throttled(Some(Duration::ZERO)),
                Instant::now(),
                None,
                &j
            ),
            Decision::Retry(Duration::from_millis(500))
        );
    }

    #[test]
    fn decide_reports_reasons() {
        let p = policy();
        let now = Instant::now();
        let j = RecordingJitter::new(1.0);
        assert_eq!(
            p.decide(6, &transient(), now, None, &j),
            Decision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
        assert_eq!(
            p.decide(1, &throttled(Some(Duration::from_secs(901))), now, None, &j),
            Decision::GiveUp(GiveUpReason::ThrottleTooLong(Duration::from_secs(901)))
        );
        assert_eq!(
            p.decide(1, &transient(), now, Some(now), &j),
            Decision::GiveUp(GiveUpReason::Deadline)
        );
        assert_eq!(
            p.decide(2, &transient(), now, None, &j),
            Decision::Retry(Duration::from_secs(1))
        );
    }
}
