//! Response types, deserialized leniently because Meta's samples and real answers differ.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer to `items_batch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemsBatchResponse {
    /// Zero or one opaque handle; empty means Meta took nothing.
    #[serde(default, deserialize_with = "null_default")]
    pub handles: Vec<String>,
    /// Synchronous per-item problems, often absent.
    #[serde(default, deserialize_with = "null_default")]
    pub validation_status: Vec<ValidationStatus>,
}

/// Synchronous problems with one item of an `items_batch` call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationStatus {
    /// The product's retailer id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub retailer_id: String,
    /// Errors: the item was not saved.
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<Message>,
    /// Warnings: the item was saved but should be improved.
    #[serde(default, deserialize_with = "null_default")]
    pub warnings: Vec<Message>,
}

/// A bare `{"message": ...}` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Message {
    /// Meta's text.
    pub message: String,
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept both {"message": "..."} and a bare string.
        let v = Value::deserialize(d)?;
        Ok(Self {
            message: match &v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.get("message").map(text_of).unwrap_or_default(),
                other => other.to_string(),
            },
        })
    }
}

/// One element of `check_batch_request_status`'s `data` array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The handle this status is for.
    #[serde(default, deserialize_with = "lenient_string")]
    pub handle: String,
    /// Meta's status text, e.g. `finished` or `in progress`; see [`BatchStatus::state`].
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: String,
    /// How many errors the batch has in total (the `errors` list is only a sample).
    #[serde(default, deserialize_with = "lenient_u64")]
    pub errors_total_count: u64,
    /// A sample of errors; the items named were not saved.
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<ItemProblem>,
    /// How many warnings the batch has in total.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub warnings_total_count: u64,
    /// A sample of warnings.
    #[serde(default, deserialize_with = "null_default")]
    pub warnings: Vec<ItemProblem>,
    /// Retailer ids of requests with errors (filled because the client asks for them).
    #[serde(default, deserialize_with = "lenient_string_vec")]
    pub ids_of_invalid_requests: Vec<String>,
    /// The status object exactly as Meta sent it, for storing and for fields not modelled here.
    #[serde(default)]
    pub raw: Value,
}

impl BatchStatus {
    /// The status interpreted case-insensitively; unknown values count as still in progress.
    pub fn state(&self) -> BatchState {
        BatchState::from_status(&self.status)
    }

    /// True once Meta will not change this status any more.
    pub fn is_terminal(&self) -> bool {
        self.state().is_terminal()
    }

    /// Builds a status from Meta's `data[0]` object, keeping that object as `raw`.
    ///
    /// A total count Meta left out is not taken as zero: it becomes the most the answer shows
    /// (the sample's length, or the number of invalid ids), so errors are never hidden.
    pub fn from_value(v: Value) -> Result<Self, serde_json::Error> {
        let mut status: Self = serde_json::from_value(v.clone())?;
        let present = |key: &str| v.get(key).is_some_and(|c| !c.is_null());
        if !present("errors_total_count") {
            status.errors_total_count = status
                .errors
                .len()
                .max(status.ids_of_invalid_requests.len())
                as u64;
        }
        if !present("warnings_total_count") {
            status.warnings_total_count = status.warnings.len() as u64;
        }
        status.raw = v;
        Ok(status)
    }
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BatchState {
    /// Processed; items without errors were saved.
    Finished,
    /// Canceled; nothing more will happen.
    Canceled,
    /// Failed as a whole.
    Error,
    /// Anything else: scheduled, dispatched, started, in progress, or an unknown word.
    InProgress,
}

impl BatchState {
    /// Maps Meta's status text (any case, spaces or underscores) to a state.
    pub fn from_status(status: &str) -> Self {
        match status.trim().to_ascii_lowercase().as_str() {
            "finished" => Self::Finished,
            "canceled" | "cancelled" => Self::Canceled,
            "error" => Self::Error,
            _ => Self::InProgress,
        }
    }

    /// Finished, Canceled and Error are final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::InProgress)
    }
}

/// One error or warning about one request of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemProblem {
    /// 0-based index of the request in the batch, when Meta gives one.
    #[serde(default, deserialize_with = "lenient_u64_opt")]
    pub line: Option<u64>,
    /// The product's retailer id, when Meta gives one.
    #[serde(default, deserialize_with = "lenient_string_opt")]
    pub id: Option<String>,
    /// What is wrong.
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: String,
}

/// The preflight answer about a catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogInfo {
    /// The catalog id.
    #[serde(deserialize_with = "lenient_string")]
    pub id: String,
    /// The catalog's name.
    #[serde(default, deserialize_with = "lenient_string_opt")]
    pub name: Option<String>,
    /// How many products the catalog holds.
    #[serde(default, deserialize_with = "lenient_u64_opt")]
    pub product_count: Option<u64>,
}

/// Text of a JSON value: strings as themselves, numbers and others as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            // Whole floats such as 3.0 appear in some samples; negative or fractional ones are nonsense.
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(text_of(&Value::deserialize(d)?))
}

fn lenient_string_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok((!v.is_null()).then(|| text_of(&v)))
}

fn lenient_string_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items.iter().map(text_of).collect()),
        other => Err(de::Error::custom(format!(
            "expected a list of ids, got {other}"
        ))),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(number_of(&Value::deserialize(d)?).unwrap_or(0))
}

fn lenient_u64_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(number_of(&Value::deserialize(d)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_response_tolerates_missing_and_null() {
        let r: ItemsBatchResponse = serde_json::from_value(json!({})).unwrap();
        assert_eq!(r, ItemsBatchResponse::default());
        let r: ItemsBatchResponse =
            serde_json::from_value(json!({"handles": null, "validation_status": null})).unwrap();
        assert!(r.handles.is_empty());
        let r: ItemsBatchResponse = serde_json::from_value(json!({
            "handles": ["h1"],
            "validation_status": [{"retailer_id": 105, "errors": [{"message": "bad"}], "warnings": ["w"]}]
        }))
        .unwrap();
        assert_eq!(r.handles, ["h1"]);
        assert_eq!(r.validation_status[0].retailer_id, "105");
        assert_eq!(r.validation_status[0].errors[0].message, "bad");
        assert_eq!(r.validation_status[0].warnings[0].message, "w");
        let back: ItemsBatchResponse =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn status_tolerates_numbers_and_strings() {
        let v = json!({"handle": "H", "status": "Finished", "errors_total_count": "2",
            "errors": [{"line": 0, "id": "a", "message": "m"}, {"line": "3", "id": 105, "message": "n"}, {}],
            "warnings_total_count": 1, "warnings": null, "ids_of_invalid_requests": ["a", 105],
            "extra": true});
        let s = BatchStatus::from_value(v.clone()).unwrap();
        assert_eq!(s.errors_total_count, 2);
        assert_eq!(s.errors[0].line, Some(0));
        assert_eq!(s.errors[1].line, Some(3));
        assert_eq!(s.errors[1].id.as_deref(), Some("105"));
        assert_eq!(s.errors[2], ItemProblem::default());
        assert!(s.warnings.is_empty());
        assert_eq!(s.ids_of_invalid_requests, ["a", "105"]);
        assert_eq!(s.raw, v);
        assert_eq!(s.state(), BatchState::Finished);
        assert!(s.is_terminal());
    }

    #[test]
    fn missing_counts_are_never_read_as_zero() {
        let v = json!({"handle": "H", "status": "finished",
            "errors": [{"id": "a", "message": "m"}], "warnings": [{"message": "w"}, {"message": "x"}],
            "ids_of_invalid_requests": ["a", "b", "c"]});
        let s = BatchStatus::from_value(v).unwrap();
        assert_eq!((s.errors_total_count, s.warnings_total_count), (3, 2));
        let v = json!({"status": "finished", "errors_total_count": null, "errors": [{}]});
        assert_eq!(BatchStatus::from_value(v).unwrap().errors_total_count, 1);
        let v = json!({"status": "finished", "errors_total_count": 0, "errors": [{}]});
        assert_eq!(
            BatchStatus::from_value(v).unwrap().errors_total_count,
            0,
            "a count Meta gave is the truth"
        );
    }

    #[test]
    fn the_six_documented_statuses() {
        // Catalog Batch API guide, "check_batch_request_status": the status values.
        let cases = [
            ("Scheduled", BatchState::InProgress),
            ("Dispatched", BatchState::InProgress),
            ("Started", BatchState::InProgress),
            ("Finished", BatchState::Finished),
            ("Canceled", BatchState::Canceled),
            ("Error", BatchState::Error),
        ];
        for (text, state) in cases {
            assert_eq!(BatchState::from_status(text), state, "{text}");
        }
    }

    #[test]
    fn states_are_case_insensitive() {
        let cases = [
            ("finished", BatchState::Finished),
            ("FINISHED", BatchState::Finished),
            (" Finished ", BatchState::Finished),
            ("Canceled", BatchState::Canceled),
            ("cancelled", BatchState::Canceled),
            ("ERROR", BatchState::Error),
            ("in progress", BatchState::InProgress),
            ("IN_PROGRESS", BatchState::InProgress),
            ("Scheduled", BatchState::InProgress),
            ("", BatchState::InProgress),
            ("something new", BatchState::InProgress),
        ];
        for (text, state) in cases {
            assert_eq!(BatchState::from_status(text), state, "{text}");
            assert_eq!(state.is_terminal(), state != BatchState::InProgress);
        }
    }

    #[test]
    fn catalog_info_lenient() {
        let c: CatalogInfo =
            serde_json::from_value(json!({"id": 123, "product_count": "7"})).unwrap();
        assert_eq!(c.id, "123");
        assert_eq!(c.name, None);
        assert_eq!(c.product_count, Some(7));
        assert!(serde_json::from_value::<CatalogInfo>(json!({"name": "x"})).is_err());
    }
}
