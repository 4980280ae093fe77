//! Meta's item rules, applied to one `items_batch` call. Pure: no I/O, no locking.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

/// Fields every new product must carry.
pub(crate) const REQUIRED_FIELDS: [&str; 9] = [
    "id",
    "title",
    "description",
    "availability",
    "condition",
    "price",
    "link",
    "image_link",
    "brand",
];
/// Accepted `availability` values.
const AVAILABILITY: [&str; 5] = [
    "in stock",
    "out of stock",
    "preorder",
    "available for order",
    "discontinued",
];
/// Accepted `condition` values.
const CONDITION: [&str; 3] = ["new", "refurbished", "used"];

/// The products of one catalog: retailer id to fields (the `id` field included).
pub(crate) type Items = BTreeMap<String, Map<String, Value>>;

/// One error or warning about one request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) line: Option<usize>,
    pub(crate) id: Option<String>,
    pub(crate) message: String,
}

impl Problem {
    fn at(line: usize, id: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            id: id.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The JSON shape of `check_batch_request_status` samples.
    pub(crate) fn to_json(&self) -> Value {
        let mut obj = Map::new();
        if let Some(line) = self.line {
            obj.insert("line".into(), Value::from(line));
        }
        if let Some(id) = &self.id {
            obj.insert("id".into(), Value::from(id.clone()));
        }
        obj.insert("message".into(), Value::from(self.message.clone()));
        Value::Object(obj)
    }
}

/// A change to apply when the batch is saved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Store these fields as the product (already merged with any existing fields).
    Put(String, Map<String, Value>),
    /// Remove the product.
    Delete(String),
}

impl Change {
    /// The retailer id the change is about.
    pub(crate) fn id(&self) -> &str {
        match self {
            Change::Put(id, _) | Change::Delete(id) => id,
        }
    }
}

/// Everything one batch produces.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BatchResult {
    /// Problems Meta finds while taking the call (it answers them in `validation_status`);
    /// those items are not part of the batch at all.
    pub(crate) refused: Vec<Problem>,
    pub(crate) changes: Vec<Change>,
    pub(crate) errors: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
    pub(crate) invalid_ids: Vec<String>,
}

/// Validates `requests` against `items` and plans the changes; nothing is applied here.
pub(crate) fn process(items: &Items, requests: &[Value], allow_upsert: bool) -> BatchResult {
    let mut result = BatchResult::default();
    let ids: Vec<Option<String>> = requests.iter().map(request_id).collect();
    let mut lines_by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (line, id) in ids.iter().enumerate() {
        if let Some(id) = id {
            lines_by_id.entry(id.as_str()).or_default().push(line);
        }
    }
    for (line, (request, id)) in requests.iter().zip(&ids).enumerate() {
        let id = id.as_deref();
        if let Some(lines) = id.and_then(|id| lines_by_id.get(id))
            && lines.len() > 1
        {
            // Meta refuses these while taking the call ("Duplicate retailer_id in batch api
            // call"), in `validation_status`, not in the batch's later verdict.
            let list: Vec<String> = lines.iter().map(usize::to_string).collect();
            result.refused.push(Problem::at(
                line,
                id,
                format!(
                    "Duplicate retailer_id in batch api call (requests {}): every copy is ignored; send each id once",
                    list.join(", ")
                ),
            ));
            continue;
        }
        let errors = match plan(items, request, id, allow_upsert) {
            Ok((change, warnings)) => {
                result
                    .warnings
                    .extend(warnings.into_iter().map(|w| Problem::at(line, id, w)));
                result.changes.push(change);
                continue;
            }
            Err(problems) => problems,
        };
        if let Some(id) = id {
            result.invalid_ids.push(id.to_owned());
        }
        result
            .errors
            .extend(errors.into_iter().map(|e| Problem::at(line, id, e)));
    }
    result
}

/// Applies planned changes.
pub(crate) fn apply(items: &mut Items, changes: Vec<Change>) {
    for change in changes {
        match change {
            Change::Put(id, fields) => {
                items.insert(id, fields);
            }
            Change::Delete(id) => {
                items.remove(&id);
            }
        }
    }
}

/// The retailer id of a request, when it has a usable one.
fn request_id(request: &Value) -> Option<String> {
    match request.get("data")?.get("id")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Plans one request: the change plus its warnings, or every reason it is rejected.
fn plan(
    items: &Items,
    request: &Value,
    id: Option<&str>,
    allow_upsert: bool,
) -> Result<(Change, Vec<String>), Vec<String>> {
    let Some(obj) = request.as_object() else {
        return Err(vec![
            "each request must be an object with method and data".into(),
        ]);
    };
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.to_ascii_uppercase(),
        Some(_) => {
            return Err(vec![
                "method must be a string: CREATE, UPDATE or DELETE".into(),
            ]);
        }
        None => return Err(vec!["missing method: use CREATE, UPDATE or DELETE".into()]),
    };
    let Some(data) = obj.get("data").and_then(Value::as_object) else {
        return Err(vec!["missing data object".into()]);
    };
    let Some(id) = id else {
        return Err(vec![
            "data.id is required: the product's retailer id".into(),
        ]);
    };
    let mut errors = Vec::new();
    if id.chars().count() > 100 {
        errors.push(format!(
            "id is longer than 100 characters ({})",
            id.chars().count()
        ));
    }
    let existing = items.get(id);
    match method.as_str() {
        "DELETE" => {
            if existing.is_none() {
                errors.push(format!("no product with retailer id {id} to delete"));
            }
            return if errors.is_empty() {
                Ok((Change::Delete(id.to_owned()), Vec::new()))
            } else {
                Err(errors)
            };
        }
        "CREATE" => {
            if existing.is_some() {
                errors.push(format!(
                    "a product with retailer id {id} already exists; use UPDATE to change it"
                ));
            }
        }
        "UPDATE" => {
            if existing.is_none() && !allow_upsert {
                errors.push(format!(
                    "no product with retailer id {id}; send allow_upsert=true or use CREATE to add it"
                ));
            }
        }
        other => {
            errors.push(format!(
                "unknown method {other}: use CREATE, UPDATE or DELETE"
            ));
            return Err(errors);
        }
    }
    let mut fields = existing.cloned().unwrap_or_default();
    for (name, value) in data {
        if name == "id" {
            continue;
        }
        match check_field(name, value) {
            Err(message) => errors.push(message),
            // An empty string clears an optional field.
            Ok(()) if value.as_str().is_some_and(str::is_empty) => {
                fields.remove(name);
            }
            Ok(()) => {
                fields.insert(name.clone(), value.clone());
            }
        }
    }
    fields.insert("id".into(), Value::from(id.to_owned()));
    if existing.is_none() {
        // Judge presence on what was sent, so an invalid value is reported once, not twice.
        for required in REQUIRED_FIELDS {
            if !data.contains_key(required) && !fields.contains_key(required) {
                errors.push(format!(
                    "missing required field {required} for a new product"
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut warnings = Vec::new();
    let has_category = fields
        .get("google_product_category")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty());
    if !has_category {
        warnings.push(
            "missing google_product_category: add a Google product category so the product can be classified".into(),
        );
    }
    Ok((Change::Put(id.to_owned(), fields), warnings))
}

/// Checks one field of `data` (not `id`); unknown fields are accepted as they are.
fn check_field(name: &str, value: &Value) -> Result<(), String> {
    let limit = match name {
        "title" => Some(200),
        "description" => Some(9999),
        "brand" => Some(100),
        "product_type" => Some(750),
        "availability"
        | "condition"
        | "price"
        | "link"
        | "image_link"
        | "google_product_category" => None,
        _ => return Ok(()),
    };
    let Some(text) = value.as_str() else {
        return Err(format!("{name} must be a string"));
    };
    let required = REQUIRED_FIELDS.contains(&name);
    if text.is_empty() {
        return if required {
            Err(format!("{name} cannot be empty"))
        } else {
            Ok(())
        };
    }
    if let Some(limit) = limit {
        let count = text.chars().count();
        if count > limit {
            return Err(format!(
                "{name} is longer than {limit} characters ({count})"
            ));
        }
    }
    match name {
        "availability" if !AVAILABILITY.contains(&text) => Err(format!(
            "availability `{}` is not one of: {}",
            short(text),
            AVAILABILITY.join(", ")
        )),
        "condition" if !CONDITION.contains(&text) => Err(format!(
            "condition `{}` is not one of: {}",
            short(text),
            CONDITION.join(", ")
        )),
        "price" if !is_price(text) => Err(format!(
            "price `{}` must be a number with `.` as decimal separator, one space and an ISO 4217 code, e.g. 9.99 USD",
            short(text)
        )),
        "link" | "image_link" if !is_http_url(text) => Err(format!(
            "{name} `{}` is not an absolute http(s) URL",
            short(text)
        )),
        _ => Ok(()),
    }
}

/// `9.99 USD`: digits, optionally `.` and digits, one space, three upper-case letters.
fn is_price(text: &str) -> bool {
    let Some((number, code)) = text.split_once(' ') else {
        return false;
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole)
        && fraction.is_none_or(digits)
        && code.len() == 3
        && code.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Values are echoed in messages; keep the echo bounded.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full(id: &str) -> Value {
        json!({"id": id, "title": "T", "description": "D", "availability": "in stock",
               "condition": "new", "price": "9.99 USD", "link": "https://shop.example/p",
               "image_link": "http://shop.example/p.jpg", "brand": "B",
               "google_product_category": "123"})
    }

    fn req(method: &str, data: Value) -> Value {
        json!({"method": method, "data": data})
    }

    #[test]
    fn prices() {
        for good in ["9.99 USD", "0 EUR", "25000 IQD", "1.5 GBP"] {
            assert!(is_price(good), "{good}");
        }
        for bad in [
            "9,99 USD",
            "$9.99 USD",
            "9.99USD",
            "9.99  USD",
            "9.99 usd",
            "9.99 US",
            "1,000.00 USD",
            ".5 USD",
            "5. USD",
            "-1 USD",
            "9.99 USDX",
            "9.99",
            "",
        ] {
            assert!(!is_price(bad), "{bad}");
        }
    }

    #[test]
    fn create_update_delete() {
        let mut items = Items::new();
        let r = process(&items, &[req("CREATE", full("a"))], false);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        apply(&mut items, r.changes);
        assert_eq!(items["a"]["title"], "T");

        let r = process(
            &items,
            &[req(
                "UPDATE",
                json!({"id": "a", "title": "T2", "product_type": ""}),
            )],
            false,
        );
        assert!(r.errors.is_empty());
        apply(&mut items, r.changes);
        assert_eq!(items["a"]["title"], "T2");
        assert_eq!(items["a"]["brand"], "B");

        // Clearing an optional field removes it.
        let r = process(
            &items,
            &[req(
                "UPDATE",
                json!({"id": "a", "google_product_category": ""}),
            )],
            false,
        );
        assert_eq!(r.warnings.len(), 1);
        apply(&mut items, r.changes);
        assert!(!items["a"].contains_key("google_product_category"));

        let r = process(&items, &[req("DELETE", json!({"id": "a"}))], false);
        apply(&mut items, r.changes);
        assert!(items.is_empty());

        let r = process(&items, &[req("DELETE", json!({"id": "a"}))], false);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.invalid_ids, ["a"]);
    }

    #[test]
    fn upsert_needs_allow_upsert_and_required_fields() {
        let items = Items::new();
        let r = process(&items, &[req("UPDATE", full("a"))], false);
        assert!(r.errors[0].message.contains("allow_upsert"));
        let r = process(&items, &[req("UPDATE", full("a"))], true);
        assert!(r.errors.is_empty());
        assert_eq!(r.changes.len(), 1);
        let r = process(
            &items,
            &[req("UPDATE", json!({"id": "b", "title": "x"}))],
            true,
        );
        assert!(
            r.errors
                .iter()
                .any(|e| e.message.contains("missing required field price"))
        );
    }

    #[test]
    fn create_on_existing_is_an_error() {
        let mut items = Items::new();
        let created = process(&items, &[req("CREATE", full("a"))], false);
        apply(&mut items, created.changes);
        let r = process(&items, &[req("CREATE", full("a"))], false);
        assert!(r.errors[0].message.contains("already exists"));
    }

    #[test]
    fn field_rules_each_reported() {
        let mut data = full("x");
        data["title"] = json!("t".repeat(201));
        data["description"] = json!("d".repeat(10_000));
        data["brand"] = json!("b".repeat(101));
        data["product_type"] = json!("p".repeat(751));
        data["availability"] = json!("In Stock");
        data["condition"] = json!("broken");
        data["price"] = json!("$5");
        data["link"] = json!("ftp://x");
        data["image_link"] = json!("not a url");
        let r = process(&Items::new(), &[req("CREATE", data)], false);
        let fields = [
            "title",
            "description",
            "brand",
            "product_type",
            "availability",
            "condition",
            "price",
            "link",
            "image_link",
        ];
        assert_eq!(r.errors.len(), fields.len(), "{:#?}", r.errors);
        for f in fields {
            assert!(r.errors.iter().any(|e| e.message.starts_with(f)), "{f}");
        }
        assert!(
            r.errors
                .iter()
                .all(|e| e.line == Some(0) && e.id.as_deref() == Some("x"))
        );
        assert_eq!(r.invalid_ids, ["x"]);
        assert!(r.changes.is_empty());

        let long_id = "i".repeat(101);
        let r = process(&Items::new(), &[req("CREATE", full(&long_id))], false);
        assert!(r.errors[0].message.contains("id is longer than 100"));
        let r = process(
            &Items::new(),
            &[req("CREATE", json!({"id": "y", "title": 5}))],
            false,
        );
        assert!(
            r.errors
                .iter()
                .any(|e| e.message == "title must be a string")
        );
        let r = process(
            &Items::new(),
            &[req("UPDATE", json!({"id": "y", "title": ""}))],
            true,
        );
        assert!(
            r.errors
                .iter()
                .any(|e| e.message == "title cannot be empty")
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let mut data = full("x");
        data["title"] = json!("é".repeat(200));
        let r = process(&Items::new(), &[req("CREATE", data)], false);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    #[test]
    fn duplicates_reject_every_copy() {
        let requests = [
            req("UPDATE", full("d")),
            req("UPDATE", full("ok")),
            req("UPDATE", full("d")),
        ];
        let r = process(&Items::new(), &requests, true);
        // Refused while the call is taken (issue 15), so not in the batch's verdict.
        assert_eq!(r.refused.len(), 2);
        assert_eq!(r.refused[0].line, Some(0));
        assert_eq!(r.refused[1].line, Some(2));
        assert!(r.refused[0].message.contains("requests 0, 2"));
        assert!(r.errors.is_empty() && r.invalid_ids.is_empty());
        assert_eq!(r.changes.len(), 1);
    }

    #[test]
    fn malformed_requests_are_item_errors() {
        let requests = [
            json!("text"),
            json!({"data": {"id": "a"}}),
            json!({"method": "PATCH", "data": {"id": "b"}}),
            json!({"method": "UPDATE"}),
            json!({"method": "UPDATE", "data": {"title": "no id"}}),
            json!({"method": 7, "data": {"id": "c"}}),
        ];
        let r = process(&Items::new(), &requests, true);
        let lines: Vec<Option<usize>> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, (0..6).map(Some).collect::<Vec<_>>());
        assert_eq!(r.invalid_ids, ["a", "b", "c"]);
    }

    #[test]
    fn warning_for_missing_category() {
        let mut data = full("w");
        data.as_object_mut()
            .unwrap()
            .remove("google_product_category");
        let r = process(&Items::new(), &[req("CREATE", data)], false);
        assert!(r.errors.is_empty());
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].id.as_deref(), Some("w"));
        assert!(r.warnings[0].message.contains("google_product_category"));
        let shape = r.warnings[0].to_json();
        assert_eq!(shape["line"], 0);
    }

    #[test]
    fn numeric_ids_are_accepted_as_text() {
        let mut data = full("x");
        data["id"] = json!(105);
        let r = process(&Items::new(), &[req("CREATE", data)], false);
        assert!(r.errors.is_empty());
        let mut items = Items::new();
        apply(&mut items, r.changes);
        assert_eq!(items["105"]["id"], "105");
    }
}
