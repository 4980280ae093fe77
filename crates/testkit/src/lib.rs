//! Test harness: moto server, compiled Lambda functions under AWS's Runtime Interface Emulator,
//! and helpers for integration tests.
//!
//! This crate is only ever a dev-dependency. It offers three things:
//!
//! - [`MotoServer`]: a private moto server (local S3, SNS, SQS, Secrets Manager) on a free
//!   127.0.0.1 port, SDK clients pointed at it, and helpers to create buckets, topics, queues and
//!   secrets and to read back what the code under test produced (objects, S3 event
//!   notifications, SNS envelopes).
//! - [`RieFunction`]: a compiled Lambda function binary running under `aws-lambda-rie`, AWS's
//!   own Runtime Interface Emulator (shipped in the pinned SAM CLI), invoked over its HTTP invoke
//!   endpoint, so a function's `main` runs in a test against the real Runtime API (environment,
//!   request ids, deadlines from the function timeout, error reporting, init errors). What the
//!   RIE does and does not emulate is listed in the module's documentation.
//! - small utilities: [`workspace_root`], [`unique_name`], [`cargo_bin`], [`ensure_built`].
//!
//! Use it from another crate's tests with `testkit.workspace = true` under
//! `[dev-dependencies]`. A package's own Lambda binary is at `env!("CARGO_BIN_EXE_<name>")` in
//! its integration tests; another package's binary is found with [`cargo_bin`] after
//! [`ensure_built`]. moto is installed by `make test` or `infra/install-tools.sh moto` into
//! `.tools/moto/` (or set `MOTO_SERVER_BIN`); the RIE comes with the SAM CLI
//! (`infra/install-tools.sh sam`, into `.tools/sam/`; or set `AWS_LAMBDA_RIE_BIN`).
//!
//! Where moto 5.2 differs from AWS in ways these tests can meet:
//! - S3 event notifications omit `userIdentity`, `requestParameters`, `responseElements`,
//!   `ownerIdentity` and `sequencer`; `aws_lambda_events::s3::S3Event` cannot deserialize them
//!   until passed through [`complete_s3_event`].
//! - Object keys in those events encode `/` as `%2F` (S3 leaves `/` as is); both decode to the
//!   same key with `+`-as-space then percent-decoding.
//! - GetBucketNotificationConfiguration on a bucket with no notifications returns a body the
//!   SDK cannot parse; [`MotoServer::notify_bucket_to_queue`] handles it.
//!
//! Helpers panic with a descriptive message when the environment is not as expected (moto not
//! installed, binary not built, AWS call failed): in test support a clear panic is the most
//! useful failure.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! let moto = testkit::MotoServer::start();
//! moto.create_bucket("landing").await;
//! let lambda = testkit::RieFunction::start(
//!     testkit::cargo_bin("sync-on-arrival"),
//!     &testkit::FunctionSettings::named("sync-on-arrival").timeout(Duration::from_secs(30)),
//!     &moto.env_vars(),
//! );
//! let out = lambda.invoke(serde_json::json!({"Records": []})).await;
//! println!("{:?}\n{}", out.outcome, lambda.logs().join("\n"));
//! # }
//! ```

#![warn(missing_docs)]

mod http;
mod moto;
mod rie;

pub use moto::{MotoServer, SnsEnvelope, SnsMessageAttribute, complete_s3_event};
pub use rie::{FunctionSettings, Invocation, Outcome, RIE_BIN_VAR, RieFunction, rie_binary};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The workspace root directory (the folder holding the workspace `Cargo.toml`).
///
/// Resolved from this crate's own location at build time, checked to contain a
/// `[workspace]` manifest; if the checkout moved since, the current directory's ancestors are
/// searched instead.
pub fn workspace_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(root) = built.ancestors().find(|dir| is_workspace_root(dir)) {
        return root.to_path_buf();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|e| {
        panic!("testkit: cannot locate the workspace root: no [workspace] manifest above {} and the current directory is unreadable: {e}", built.display())
    });
    match cwd.ancestors().find(|dir| is_workspace_root(dir)) {
        Some(root) => root.to_path_buf(),
        None => panic!(
            "testkit: cannot locate the workspace root: no Cargo.toml with [workspace] above {} or {}",
            built.display(),
            cwd.display()
        ),
    }
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|text| text.lines().any(|l| l.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// A fresh resource name: `prefix` sanitised, then a suffix unique per call and per process.
///
/// The result is lowercase, uses only `a-z`, `0-9` and `-`, starts and ends with a letter or
/// digit and is 3 to 63 characters long, so it is a valid S3 bucket, SQS queue, SNS topic and
/// Secrets Manager name. Use it for resources on the [`MotoServer::shared`] server.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Time (to the microsecond, wrapped to ~10 days) + pid + counter: unique within a process
    // because of the counter, and across concurrent processes because of the pid.
    let suffix = format!(
        "{}-{}-{}",
        base36((nanos / 1_000 % 1_000_000_000_000) as u64),
        base36(u64::from(std::process::id())),
        base36(n)
    );

    let mut clean = String::new();
    for c in prefix.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            clean.push(c);
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    // Leave room for "-" + suffix within S3's 63-character limit.
    let room = 63 - 1 - suffix.len();
    clean.truncate(room);
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        format!("t-{suffix}")
    } else {
        format!("{clean}-{suffix}")
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Where cargo put the artefacts of the build that produced the running test.
struct BuildDirs {
    /// The `--target-dir` root (holds `CACHEDIR.TAG`).
    target_root: PathBuf,
    /// The profile directory binaries land in, e.g. `<root>/debug`.
    profile_dir: PathBuf,
    /// `--target <triple>` when the build was a cross build.
    triple: Option<String>,
    /// The profile directory name (`debug`, `release`, or a custom profile).
    profile: String,
}

fn build_dirs() -> BuildDirs {
    // Test executables live in `<target root>[/<triple>]/<profile>/deps/`.
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe.parent()
        && deps.file_name().is_some_and(|n| n == "deps")
        && let Some(profile_dir) = deps.parent()
        && let Some(above) = profile_dir.parent()
    {
        let profile = profile_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "debug".to_owned());
        let (target_root, triple) = if !above.join("CACHEDIR.TAG").exists()
            && let Some(root) = above.parent()
            && root.join("CACHEDIR.TAG").exists()
        {
            let triple = above.file_name().map(|n| n.to_string_lossy().into_owned());
            (root.to_path_buf(), triple)
        } else {
            (above.to_path_buf(), None)
        };
        return BuildDirs {
            target_root,
            profile_dir: profile_dir.to_path_buf(),
            triple,
            profile,
        };
    }
    // Not running from cargo's deps folder: fall back to CARGO_TARGET_DIR or <root>/target.
    let root = workspace_root();
    let target_root = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    BuildDirs {
        profile_dir: target_root.join("debug"),
        target_root,
        triple: None,
        profile: "debug".to_owned(),
    }
}

/// The path of workspace binary `name` as built for the current test run.
///
/// The directory is the one holding the running test executable's `deps/` folder, so it
/// follows `CARGO_TARGET_DIR`, the profile and `--target`; outside a cargo test it is
/// `$CARGO_TARGET_DIR/debug` or `<workspace root>/target/debug`. Panics with instructions if
/// the binary has not been built; build it first (`cargo build -p <package>`) or call
/// [`ensure_built`].
pub fn cargo_bin(name: &str) -> PathBuf {
    let dirs = build_dirs();
    let path = dirs
        .profile_dir
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "testkit: binary `{name}` is not built: {} does not exist.\n\
             Build it before the test runs (`cargo build -p <package of {name}>` with the same \
             CARGO_TARGET_DIR), or call `testkit::ensure_built(\"<package>\")` at the start of the test.",
            path.display()
        );
    }
    path
}

/// Runs `cargo build -p <package>` once per test process, into the same target directory and
/// profile as the running test, so [`cargo_bin`] finds the package's binaries.
///
/// Concurrent callers for the same package wait for the first build. Panics with cargo's output
/// if the build fails.
pub fn ensure_built(package: &str) {
    static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    // Holding the lock for the whole build serialises builds: they share one target directory
    // anyway, and cargo would serialise them on its own lock.
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let built = built.get_or_insert_with(HashSet::new);
    if built.contains(package) {
        return;
    }
    let dirs = build_dirs();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "-p", package, "--target-dir"])
        .arg(&dirs.target_root);
    match dirs.profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(triple) = &dirs.triple {
        cmd.args(["--target", triple]);
    }
    let output = cmd.output().unwrap_or_else(|e| {
        panic!(
            "testkit: cannot run `{} build -p {package}`: {e}",
            Path::new(&cargo).display()
        )
    });
    if !output.status.success() {
        panic!(
            "testkit: `cargo build -p {package}` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    built.insert(package.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        assert!(is_workspace_root(&root), "{}", root.display());
        assert!(root.join("crates/testkit/Cargo.toml").is_file());
    }

    fn is_bucket_safe(name: &str) -> bool {
        (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
            && !name.contains("--")
    }

    #[test]
    fn unique_names_are_bucket_safe_and_distinct() {
        let prefixes = [
            "landing",
            "Landing_Bucket.Name",
            "",
            "---",
            "UPPER",
            "a very long prefix that goes on and on and on well past sixty three characters",
            "ünïcödé-prefix",
        ];
        let mut seen = HashSet::new();
        for prefix in prefixes {
            for _ in 0..50 {
                let name = unique_name(prefix);
                assert!(is_bucket_safe(&name), "{prefix:?} gave {name:?}");
                assert!(seen.insert(name.clone()), "duplicate {name}");
            }
        }
        assert!(unique_name("Landing_Bucket").starts_with("landing-bucket-"));
    }

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }

    #[test]
    fn build_dirs_follow_the_running_test() {
        let dirs = build_dirs();
        let exe = std::env::current_exe().unwrap();
        assert!(exe.starts_with(&dirs.profile_dir), "{}", exe.display());
        assert!(dirs.target_root.join("CACHEDIR.TAG").exists());
    }

    #[test]
    #[should_panic(expected = "is not built")]
    fn cargo_bin_explains_a_missing_binary() {
        cargo_bin("no-such-binary-anywhere");
    }
}
