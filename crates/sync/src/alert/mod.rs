//! Alerts: one message per problem event, readable in an email and parseable by a program.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use crate::adapters::log::LogAlerts;
pub use crate::ports::{Alert, AlertKind, Severity};

pub mod wording;

/// One product-level example in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The source file key, when known.
    pub file: Option<String>,
    /// The 1-based CSV line, when known.
    pub line: Option<u64>,
    /// The product id, when known.
    pub id: Option<String>,
    /// What Meta or the validator said.
    pub message: String,
}

/// Most samples shown in one alert.
pub const MAX_SAMPLES: usize = 20;
/// Longest subject SNS accepts for email.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// Cap for each of the text and JSON forms; both together stay far under SNS's 256 KB.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Longest single message quoted in a sample.
const MAX_SAMPLE_CHARS: usize = 300;

/// Builds an [`Alert`]: the facts go into both forms, so they cannot disagree.
#[derive(Debug, Clone)]
pub struct AlertBuilder {
    kind: AlertKind,
    headline: String,
    what_happened: String,
    facts: Vec<(String, String)>,
    samples: Vec<Sample>,
    samples_total: u64,
    keys: Vec<String>,
    next_steps: String,
}

impl AlertBuilder {
    /// Starts an alert of `kind`; `headline` completes the subject `catalog-sync: ...`.
    pub fn new(kind: AlertKind, headline: impl Into<String>) -> Self {
        AlertBuilder {
            kind,
            headline: headline.into(),
            what_happened: String::new(),
            facts: Vec::new(),
            samples: Vec::new(),
            samples_total: 0,
            keys: Vec::new(),
            next_steps: String::new(),
        }
    }

    /// One or two sentences: what happened.
    pub fn what_happened(mut self, text: impl Into<String>) -> Self {
        self.what_happened = text.into();
        self
    }

    /// A named fact (file, counts, handles).
    pub fn fact(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.facts.push((name.into(), value.to_string()));
        self
    }

    /// Offers a sample; only the first [`MAX_SAMPLES`] are kept, all are counted.
    pub fn sample(mut self, sample: Sample) -> Self {
        self.add_sample(sample);
        self
    }

    /// Sets how many cases there are in all, when more exist than were offered as samples.
    pub fn samples_total(mut self, total: u64) -> Self {
        self.samples_total = self.samples_total.max(total);
        self
    }

    /// Offers a sample by reference to the builder.
    pub fn add_sample(&mut self, mut sample: Sample) {
        self.samples_total += 1;
        if self.samples.len() < MAX_SAMPLES {
            sample.message = shorten(&sample.message, MAX_SAMPLE_CHARS);
            self.samples.push(sample);
        }
    }

    /// Where the full details are.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// What a person should do next.
    pub fn next_steps(mut self, text: impl Into<String>) -> Self {
        self.next_steps = text.into();
        self
    }

    /// Renders the subject, text and JSON forms within their limits.
    pub fn build(self) -> Alert {
        let subject = subject(&self.headline);
        let severity = self.kind.severity();
        let mut samples = self.samples;
        loop {
            let text = render_text(
                &self.what_happened,
                &self.facts,
                &samples,
                self.samples_total,
                &self.keys,
                &self.next_steps,
            );
            let document = json!({
                "source": "catalog-sync",
                "kind": self.kind,
                "severity": severity,
                "subject": subject,
                "what_happened": self.what_happened,
                "facts": self.facts.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "samples": samples,
                "samples_total": self.samples_total,
                "keys": self.keys,
                "next_steps": self.next_steps,
            });
            let fits = text.len() <= MAX_FORM_BYTES && document.to_string().len() <= MAX_FORM_BYTES;
            if fits || samples.is_empty() {
                return Alert {
                    kind: self.kind,
                    subject,
                    text: shorten_bytes(&text, MAX_FORM_BYTES),
                    document,
                };
            }
            samples.pop();
        }
    }
}

fn render_text(
    what_happened: &str,
    facts: &[(String, String)],
    samples: &[Sample],
    samples_total: u64,
    keys: &[String],
    next_steps: &str,
) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{what_happened}\n");
    for (name, value) in facts {
        let _ = writeln!(text, "{name}: {value}");
    }
    if !samples.is_empty() {
        let _ = writeln!(text, "\nExamples ({} of {samples_total}):", samples.len());
        for sample in samples {
            let mut place = Vec::new();
            if let Some(file) = &sample.file {
                place.push(file.clone());
            }
            if let Some(line) = sample.line {
                place.push(format!("line {line}"));
            }
            if let Some(id) = &sample.id {
                place.push(format!("id {id}"));
            }
            let _ = writeln!(text, "  - {}: {}", place.join(", "), sample.message);
        }
    }
    if !keys.is_empty() {
        let _ = writeln!(text, "\nFull details:");
        for key in keys {
            let _ = writeln!(text, "  {key}");
        }
    }
    if !next_steps.is_empty() {
        let _ = writeln!(text, "\nWhat to do: {next_steps}");
    }
    text
}

/// `catalog-sync: <headline>`, ASCII without control characters, at most 100 characters
/// (SNS rejects longer or non-ASCII email subjects).
fn subject(headline: &str) -> String {
    let clean: String = format!("catalog-sync: {headline}")
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    shorten(&clean, MAX_SUBJECT_CHARS)
}

/// At most `max` characters, ending in `...` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

fn shorten_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max.saturating_sub(3);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_short_ascii_and_prefixed() {
        let alert = AlertBuilder::new(
            AlertKind::RowsRejected,
            format!("3 rows rejected in données-été-{}.csv\n", "x".repeat(200)),
        )
        .build();
        assert!(
            alert
                .subject
                .starts_with("catalog-sync: 3 rows rejected in donn?es")
        );
        assert!(alert.subject.len() <= MAX_SUBJECT_CHARS);
        assert!(alert.subject.is_ascii());
        assert!(!alert.subject.contains('\n'));
    }

    #[test]
    fn severity_follows_the_kind() {
        assert_eq!(AlertKind::RowsRejected.severity(), Severity::Warning);
        assert_eq!(AlertKind::BatchWarnings.severity(), Severity::Warning);
        for kind in [
            AlertKind::FileRejected,
            AlertKind::SendFailed,
            AlertKind::TokenInvalid,
            AlertKind::BatchErrors,
            AlertKind::BatchStuck,
        ] {
            assert_eq!(kind.severity(), Severity::Error);
        }
    }

    #[test]
    fn at_most_twenty_samples_and_both_forms_stay_small_whatever_the_input() {
        let mut builder = AlertBuilder::new(AlertKind::BatchErrors, "errors")
            .what_happened("Meta rejected products.")
            .fact("File", "s3://landing/data/a.csv")
            .key("s3://synced/checked/2026/01/01/h.json")
            .next_steps("Fix the rows and export again.");
        for n in 0..10_000u64 {
            builder.add_sample(Sample {
                file: Some("data/a.csv".into()),
                line: Some(n + 2),
                id: Some(format!("SKU-{n}")),
                message: "é".repeat(5000),
            });
        }
        let alert = builder.build();
        assert_eq!(
            alert.document["samples"].as_array().unwrap().len(),
            MAX_SAMPLES
        );
        assert_eq!(alert.document["samples_total"], 10_000);
        assert!(alert.text.contains("Examples (20 of 10000):"));
        assert!(alert.text.contains("data/a.csv, line 2, id SKU-0: "));
        assert!(alert.sns_message().len() < 256 * 1024);
    }

    #[test]
    fn the_sns_message_carries_text_for_email_and_json_for_machines() {
        let alert = AlertBuilder::new(AlertKind::TokenInvalid, "token invalid")
            .what_happened("Meta refused the access token.")
            .build();
        let message: serde_json::Value = serde_json::from_str(&alert.sns_message()).unwrap();
        assert_eq!(message["default"], alert.text);
        assert_eq!(message["email"], alert.text);
        let doc: serde_json::Value =
            serde_json::from_str(message["sqs"].as_str().unwrap()).unwrap();
        assert_eq!(doc["kind"], "token_invalid");
        assert_eq!(doc["severity"], "error");
    }
}
