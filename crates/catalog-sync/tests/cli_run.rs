//! `catalog-sync run` over a local folder: once, watching, with files still being written, and
//! interrupted; and `doctor`, `replay` and `poll` with `--root`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    catalog_ids, catalog_sync, deleted_ids, files_under, sample_files, samples_dir, text, valid_ids,
};
use serde_json::Value;

/// A root with the sample exports in `landing/data/`.
fn root_with_samples() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("landing/data");
    std::fs::create_dir_all(&data).unwrap();
    for sample in sample_files() {
        std::fs::copy(&sample, data.join(sample.file_name().unwrap())).unwrap();
    }
    root
}

/// Every report under the root, parsed.
fn reports(root: &Path) -> Vec<Value> {
    files_under(&root.join("synced"))
        .into_iter()
        .filter(|f| f.starts_with("reports/"))
        .map(|f| {
            serde_json::from_slice(&std::fs::read(root.join("synced").join(f)).unwrap()).unwrap()
        })
        .collect()
}

/// No write left half-done: no temporary file, and every JSON file parses.
fn assert_no_partial_output(root: &Path) {
    let files = files_under(root);
    assert!(
        !files
            .iter()
            .any(|f| f.split('/').any(|part| part.starts_with(".tmp-"))),
        "{files:#?}"
    );
    for file in files.iter().filter(|f| f.ends_with(".json")) {
        let bytes = std::fs::read(root.join(file)).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn run_processes_every_file_then_polls_until_the_emulator_has_answered() {
    let root = root_with_samples();
    let output = catalog_sync()
        .args(["run", "--emulator", "--settle", "100ms", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("EMULATOR MODE"), "{stderr}");
    // The rejected rows are alerted on the terminal and in alerts.log.
    assert!(stderr.contains("[alert] warning rows_rejected"), "{stderr}");
    assert_eq!(
        stdout.matches(": archived:").count(),
        sample_files().len(),
        "every sample is archived: {stdout}"
    );
    assert!(stdout.contains("0 batch(es) still waiting"), "{stdout}");

    let files = files_under(root.path());
    assert_eq!(
        files
            .iter()
            .filter(|f| f.starts_with("landing/archive/"))
            .count(),
        sample_files().len()
    );
    assert!(!files.iter().any(|f| f.starts_with("synced/pending/")));
    assert_eq!(
        files
            .iter()
            .filter(|f| f.starts_with("synced/checked/"))
            .count(),
        sample_files().len(),
        "one batch per sample, each with its verdict"
    );
    let mut expected = BTreeSet::new();
    for sample in sample_files() {
        expected.extend(valid_ids(&sample));
        // Files are processed in name order, so a delete removes what an earlier file sent.
        for id in deleted_ids(&sample) {
            expected.remove(&id);
        }
    }
    assert_eq!(
        catalog_ids(&root.path().join("emulator-catalog.json")),
        expected
    );
    assert_no_partial_output(root.path());
    // The data folder is still there for the next files.
    assert!(root.path().join("landing/data").is_dir());
}

/// `run --column-mapping` reads an export in the retailer's own column names; the mapping is
/// shown on standard error, and its fixed value arrives with every product (issue 14).
#[test]
fn run_reads_files_through_a_column_mapping() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("landing/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("mapped.csv"),
        "SKU,title,description,link,image_link,availability,price,Marke\n\
         M-1,Mug,Stoneware mug,https://shop.example/p/1,https://cdn.example/1.jpg,in stock,10.00 USD,Hearth\n",
    )
    .unwrap();
    let output = catalog_sync()
        .args(["run", "--emulator", "--settle", "100ms", "--root"])
        .arg(root.path())
        .args(["--column-mapping", "id=SKU; brand=Marke; condition:=new"])
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("column mapping: condition is \"new\" in every row"),
        "{stderr}"
    );
    let catalog: Value =
        serde_json::from_slice(&std::fs::read(root.path().join("emulator-catalog.json")).unwrap())
            .unwrap();
    assert_eq!(catalog["products"]["M-1"]["condition"], "new", "{catalog}");
    assert_eq!(catalog["products"]["M-1"]["brand"], "Hearth", "{catalog}");
}

#[test]
fn run_refuses_without_a_catalog_or_the_emulator() {
    let root = root_with_samples();
    let output = catalog_sync()
        .args(["run", "--root"])
        .arg(root.path())
        .env("CATALOG_ID", "123")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no catalog to send to: META_ACCESS_TOKEN is not set"),
        "{stderr}"
    );
    assert!(stderr.contains("--emulator"), "{stderr}");
    // Nothing was touched.
    assert_eq!(files_under(&root.path().join("landing/archive")).len(), 0);
}

#[test]
fn run_against_a_real_catalog_refuses_a_bad_token_before_touching_files() {
    let root = root_with_samples();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let emulator = runtime
        .block_on(graph_emulator::GraphEmulator::start(
            graph_emulator::EmulatorConfig::default(),
        ))
        .unwrap();
    let output = catalog_sync()
        .args(["run", "--root"])
        .arg(root.path())
        .env("CATALOG_ID", graph_emulator::DEFAULT_CATALOG_ID)
        .env("META_ACCESS_TOKEN", "not-the-token")
        .env("GRAPH_API_BASE_URL", emulator.url())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("rejected the access token"), "{stderr}");
    assert!(!stderr.contains("not-the-token"), "{stderr}");
    assert!(!stderr.contains("EMULATOR MODE"));
    assert_eq!(
        files_under(&root.path().join("landing/data")).len(),
        sample_files().len()
    );
}

/// A `run --watch --emulator` child whose stderr lines arrive on a channel.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watching {
    /// `run --watch` against the built-in emulator.
    fn start(root: &Path, settle: &str) -> Watching {
        Watching::spawn(root, settle, None)
    }

    /// `run --watch` against the Graph API that `graph_env` names (an emulator of the test's).
    fn start_against(root: &Path, settle: &str, graph_env: &[(String, String)]) -> Watching {
        Watching::spawn(root, settle, Some(graph_env))
    }

    fn spawn(root: &Path, settle: &str, graph_env: Option<&[(String, String)]>) -> Watching {
        let mut command = catalog_sync();
        command.args(["run", "--watch"]);
        match graph_env {
            Some(env) => command.envs(env.iter().map(|(k, v)| (k, v))),
            None => command.arg("--emulator"),
        };
        let mut child = command
            .args(["--poll-interval", "300ms", "--settle", settle, "--root"])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut watching = Watching {
            child,
            lines,
            seen: Vec::new(),
        };
        watching.wait_for_line("watching ");
        watching
    }

    fn wait_for_line(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let found = line.contains(needle);
                self.seen.push(line);
                if found {
                    return;
                }
            }
        }
        panic!(
            "no stderr line with {needle:?}; got:\n{}",
            self.seen.join("\n")
        );
    }

    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns the code and the rest of stderr and stdout.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "catalog-sync did not stop; stderr:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread ends (and the channel closes) at the end of stderr, which comes
        // with the exit: every line is taken however slowly the reader runs.
        while let Ok(line) = self.lines.recv() {
            self.seen.push(line);
        }
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut out, &mut stdout);
        }
        (status.code(), self.seen.join("\n"), stdout)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `path` exists.
fn wait_for_file(path: &Path, watching: &Watching) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared; stderr so far:\n{}",
            path.display(),
            watching.seen.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A valid export of `rows` products with ids `{prefix}-N`, as header and rows.
fn export(prefix: &str, rows: usize) -> (String, Vec<String>) {
    let header = catalog::REQUIRED_HEADER.to_owned();
    let lines = (0..rows)
        .map(|n| {
            format!(
                "{prefix}-{n},Product {n},A fine product number {n},https://shop.example.com/p/{n},https://cdn.example.com/{n}.jpg,in stock,{n}.50 USD,Example,new,Home & Garden"
            )
        })
        .collect();
    (header, lines)
}

#[test]
fn watch_takes_new_files_and_waits_for_a_half_written_one_to_be_complete() {
    let root = tempfile::tempdir().unwrap();
    // The settle period is far longer than any pause of this test between its two writes, so
    // the outcome does not depend on how the machine schedules it.
    let mut watching = Watching::start(root.path(), "15s");
    let data = root.path().join("landing/data");
    let archive = root.path().join("landing/archive");

    // A file dropped whole, already older than the settle period, is picked up at once.
    let staged = data.join(".first.csv");
    std::fs::copy(samples_dir().join("sample.csv"), &staged).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    std::fs::rename(&staged, data.join("first.csv")).unwrap();
    wait_for_file(&archive.join("first.csv"), &watching);

    // A file written in two parts, with the watcher looking in between, is taken once,
    // complete: every row sent, in one report.
    let (header, rows) = export("HALF", 40);
    let half = data.join("half.csv");
    {
        let mut file = std::fs::File::create(&half).unwrap();
        writeln!(file, "{header}").unwrap();
        for row in &rows[..15] {
            writeln!(file, "{row}").unwrap();
        }
    }
    // A file the watcher reports (and leaves alone), created after the first part: the scan
    // that reports it listed the half-written file too.
    std::fs::write(data.join("half-written.txt"), b"marker").unwrap();
    watching.wait_for_line("ignoring data/half-written.txt");
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&half)
            .unwrap();
        for row in &rows[15..] {
            writeln!(file, "{row}").unwrap();
        }
    }
    wait_for_file(&archive.join("half.csv"), &watching);
    // The verdicts come in on the poll interval; the catalog file is rewritten after each poll.
    let catalog = root.path().join("emulator-catalog.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted: BTreeSet<String> = (0..40).map(|n| format!("HALF-{n}")).collect();
    while !(catalog.exists() && catalog_ids(&catalog).is_superset(&wanted)) {
        assert!(
            Instant::now() < deadline,
            "HALF-* never all reached the emulator"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    watching.interrupt();
    let (code, stderr, stdout) = watching.finish();
    assert_eq!(code, Some(0), "{stderr}\n{stdout}");

    let half_reports: Vec<Value> = reports(root.path())
        .into_iter()
        .filter(|r| r["source_key"] == "data/half.csv")
        .collect();
    assert_eq!(half_reports.len(), 1, "taken once: {half_reports:#?}");
    assert_eq!(half_reports[0]["counts"]["rows_read"], 40);
    assert_eq!(half_reports[0]["counts"]["sent"], 40);
    let ids = catalog_ids(&catalog);
    assert!(ids.is_superset(&wanted));
    assert!(ids.is_superset(&valid_ids(&samples_dir().join("sample.csv"))));
    assert_eq!(stdout.matches(": archived:").count(), 2, "{stdout}");
    assert_no_partial_output(root.path());
}

#[test]
fn an_interrupt_finishes_the_file_in_progress_and_leaves_no_partial_output() {
    const ROWS: u64 = 3000;
    const LATENCY: Duration = Duration::from_secs(4);
    let root = tempfile::tempdir().unwrap();
    let staged = root.path().join("big.csv");
    let generated = catalog_sync()
        .args(["generate", "--rows", &ROWS.to_string()])
        .arg(&staged)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (emulator, mut env) = emulator_env(&runtime);
    env.push(("BATCH_SIZE".to_owned(), "1000".to_owned()));
    let mut watching = Watching::start_against(root.path(), "200ms", &env);
    // From now on every Graph call takes LATENCY, one batch after the other: the file (at least
    // two batches) stays in progress for at least 2 * LATENCY after "processing", however the
    // machine schedules this test, which only has to send the interrupt in that time.
    emulator.set_latency(LATENCY);
    // Renamed into place whole, as exports should be delivered.
    std::fs::rename(&staged, root.path().join("landing/data/big.csv")).unwrap();
    watching.wait_for_line("processing data/big.csv");
    let interrupted_at = time::OffsetDateTime::now_utc();
    watching.interrupt();
    let (code, stderr, stdout) = watching.finish();
    assert_eq!(code, Some(0), "{stderr}\n{stdout}");
    assert!(
        stderr.contains("stopping: the file in progress is finished first"),
        "{stderr}"
    );
    assert!(stderr.contains("stopped cleanly"), "{stderr}");

    // The file in progress was finished: archived, reported, every valid row sent.
    assert!(root.path().join("landing/archive/big.csv").is_file());
    let big: Vec<Value> = reports(root.path())
        .into_iter()
        .filter(|r| r["source_key"] == "data/big.csv")
        .collect();
    assert_eq!(big.len(), 1);
    // The interrupt arrived after the file was taken ("processing" above) and before it was
    // done.
    let finished = time::OffsetDateTime::parse(
        big[0]["finished_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        interrupted_at < finished,
        "interrupted at {interrupted_at}, after the file was done at {finished}"
    );
    let counts = &big[0]["counts"];
    assert_eq!(counts["rows_read"], ROWS);
    assert!(
        counts["sent"].as_u64().unwrap() > 1000,
        "more than one batch: {counts}"
    );
    assert_eq!(
        counts["sent"].as_u64().unwrap() + counts["superseded"].as_u64().unwrap(),
        counts["valid"].as_u64().unwrap()
    );
    let products = emulator.items(graph_emulator::DEFAULT_CATALOG_ID);
    assert_eq!(products.len() as u64, counts["sent"].as_u64().unwrap());
    assert_no_partial_output(root.path());
}

/// An emulator in this process, and the variables that point the binary at it.
fn emulator_env(
    runtime: &tokio::runtime::Runtime,
) -> (graph_emulator::RunningEmulator, Vec<(String, String)>) {
    let emulator = runtime
        .block_on(graph_emulator::GraphEmulator::start(
            graph_emulator::EmulatorConfig::default(),
        ))
        .unwrap();
    let env = vec![
        (
            "CATALOG_ID".to_owned(),
            graph_emulator::DEFAULT_CATALOG_ID.to_owned(),
        ),
        (
            "META_ACCESS_TOKEN".to_owned(),
            graph_emulator::DEFAULT_TOKEN.to_owned(),
        ),
        ("GRAPH_API_BASE_URL".to_owned(), emulator.url()),
    ];
    (emulator, env)
}

#[test]
fn doctor_checks_a_local_folder() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_emulator, env) = emulator_env(&runtime);
    let root = root_with_samples();
    let output = catalog_sync()
        .args(["doctor", "--root"])
        .arg(root.path())
        .envs(env.clone())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for check in [
        "configuration",
        "access token",
        "catalog 100000000000001",
        "landing folder",
        "Graph API version v27.0 (the built-in default)",
        "column mapping (COLUMN_MAPPING): none",
    ] {
        assert!(
            stdout.contains(&format!("ok   {check}")),
            "{check}: {stdout}"
        );
    }
    // The column mapping in force is shown entry by entry, and a bad one is named.
    for (spec, shown) in [
        (
            "sale_price=SalePrice; condition:=new",
            "ok   column mapping (COLUMN_MAPPING): sale_price <- column \"SalePrice\"; condition = \"new\" in every row",
        ),
        (
            "saleprise=Sale",
            "FAIL column mapping (COLUMN_MAPPING): column mapping entry \"saleprise=Sale\": \"saleprise\" is not a Meta field; did you mean sale_price?",
        ),
    ] {
        let output = catalog_sync()
            .args(["doctor", "--root"])
            .arg(root.path())
            .envs(env.clone())
            .env("COLUMN_MAPPING", spec)
            .output()
            .unwrap();
        let stdout = text(&output.stdout);
        assert!(stdout.contains(shown), "{spec}: {stdout}");
    }

    let empty: PathBuf = tempfile::tempdir().unwrap().keep();
    let output = catalog_sync()
        .args(["doctor", "--root"])
        .arg(&empty)
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL configuration: CATALOG_ID not set; set it to the numeric id"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL landing folder"), "{stdout}");
    assert!(
        stdout.contains("does not exist; create it (mkdir -p"),
        "{stdout}"
    );
    // Read-only: the probe files are gone.
    assert!(files_under(&empty).is_empty());
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn replay_and_poll_work_on_a_local_folder() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (emulator, env) = emulator_env(&runtime);
    let root = root_with_samples();
    let archive = root.path().join("landing/archive");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::rename(
        root.path().join("landing/data/sample.csv"),
        archive.join("sample.csv"),
    )
    .unwrap();
    // A path under the root works as well as a key.
    let output = catalog_sync()
        .arg("replay")
        .arg(archive.join("sample.csv"))
        .args(["data/home-goods-clean.csv", "--root"])
        .arg(root.path())
        .envs(env.clone())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("archive/sample.csv: copied to data/sample.csv; data/sample.csv: archived: 5 rows read, 5 sent"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\ndata/home-goods-clean.csv: archived: 20 rows read"),
        "{stdout}"
    );
    assert_eq!(emulator.items(graph_emulator::DEFAULT_CATALOG_ID).len(), 25);

    // The emulator finishes a batch on its second check.
    for round in 1..=2 {
        let output = catalog_sync()
            .args(["poll", "--root"])
            .arg(root.path())
            .envs(env.clone())
            .output()
            .unwrap();
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        let expected = if round == 1 {
            "2 checked: 0 finished, 0 canceled, 0 error, 2 still waiting"
        } else {
            "2 checked: 2 finished"
        };
        assert!(stdout.contains(expected), "round {round}: {stdout}");
    }
    let files = files_under(root.path());
    assert!(
        !files.iter().any(|f| f.starts_with("synced/pending/")),
        "{files:#?}"
    );
    assert_eq!(
        files
            .iter()
            .filter(|f| f.starts_with("synced/checked/"))
            .count(),
        2
    );

    let output = catalog_sync()
        .args(["replay", "rejected/x.csv", "--root"])
        .arg(root.path())
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).contains("could not be used at all"));
}
