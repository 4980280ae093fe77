//! `catalog-sync state [ID...]`: what change detection remembers of the catalog, on S3 or
//! (with --root) in a local folder.

use std::path::PathBuf;

use sync::Requirements;
use sync::state::{ProductEntry, StateStore, StateSummary};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::EXIT_OK;
use crate::setup::{self, CatalogChoice, Storage};

/// `catalog-sync state [--root DIR [--emulator]] [ID...]`.
pub fn state(root: Option<PathBuf>, emulator: bool, ids: Vec<String>) -> anyhow::Result<u8> {
    let storage = Storage::from_root(root);
    let runtime = setup::start_on(&storage, "state", "warn")?;
    runtime.block_on(async {
        let wired = setup::wire(
            storage,
            CatalogChoice::from_flag(emulator),
            Requirements::PollFunction,
        )
        .await?;
        let catalog_id = wired.services.catalog.catalog_id().to_owned();
        let store = StateStore::new(
            wired.services.store.as_ref(),
            wired.synced_bucket(),
            &catalog_id,
        );
        let loaded = store.load().await?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let resend_after = wired.config.changes.resend_after;
        println!("state of catalog {catalog_id}: {}", store.location());
        if let Some(why) = &loaded.unusable {
            println!(
                "  it cannot be used ({why}); the next sync starts it over and sends every product"
            );
        }
        if ids.is_empty() {
            for line in summary_lines(
                &loaded.state.summary(now, resend_after),
                &humantime::format_duration(resend_after).to_string(),
            ) {
                println!("  {line}");
            }
        }
        for id in &ids {
            println!("{}", entry_line(id, loaded.state.entry(id).as_ref()));
        }
        Ok(EXIT_OK)
    })
}

/// The counts of `catalog-sync state`.
fn summary_lines(summary: &StateSummary, resend_after: &str) -> Vec<String> {
    vec![
        format!("{} products remembered", summary.remembered),
        format!("{} confirmed by Meta", summary.confirmed),
        format!("{} waiting for Meta's verdict", summary.waiting_for_verdict),
        format!(
            "{} refused by Meta (sent again on their next appearance)",
            summary.refused
        ),
        format!("{} deletes waiting for Meta's verdict", summary.deleting),
        format!(
            "{} due for a resend (unchanged for {resend_after} or more; RESEND_AFTER)",
            summary.due_for_resend
        ),
    ]
}

/// One product of `catalog-sync state ID...`.
fn entry_line(id: &str, entry: Option<&ProductEntry>) -> String {
    let Some(entry) = entry else {
        return format!(
            "{id}: not remembered (never sent, deleted, or sent before catalog-sync kept a state); it is sent on its next appearance"
        );
    };
    let sent = match &entry.batch {
        Some(batch) => {
            let at = OffsetDateTime::from_unix_timestamp(batch.sent_at)
                .ok()
                .and_then(|at| at.format(&Rfc3339).ok())
                .unwrap_or_else(|| batch.sent_at.to_string());
            format!("last sent {at} in {}", batch.key)
        }
        None => "last send unknown".to_owned(),
    };
    format!(
        "{id}: {}; {sent}; fingerprint {}",
        entry.standing.name(),
        entry.fingerprint
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync::state::{SentBatch, Standing};

    #[test]
    fn lines_name_the_standing_the_batch_and_the_fingerprint() {
        let entry = ProductEntry {
            id: "SKU-1".into(),
            fingerprint: "00000000000000ff".into(),
            standing: Standing::Refused,
            batch: Some(SentBatch {
                key: "synced/2026/12/02/run/batch-0001.json".into(),
                sent_at: 1_764_633_600,
            }),
        };
        let line = entry_line("SKU-1", Some(&entry));
        assert_eq!(
            line,
            "SKU-1: refused by Meta (sent again next time); last sent 2025-12-02T00:00:00Z in synced/2026/12/02/run/batch-0001.json; fingerprint 00000000000000ff"
        );
        assert!(entry_line("SKU-2", None).contains("not remembered"));
        let lines = summary_lines(
            &StateSummary {
                remembered: 3,
                refused: 1,
                ..StateSummary::default()
            },
            "7days",
        );
        assert_eq!(lines[0], "3 products remembered");
        assert!(lines[5].contains("7days"));
    }
}
