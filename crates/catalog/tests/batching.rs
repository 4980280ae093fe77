//! Mapping to requests and batching: limits, order, duplicates.

use catalog::{
    Batch, BatchLimits, Batcher, Field, Problem, Product, ProductTypeMapping, RowRef,
    form_encoded_len, validate_fields,
};
use proptest::prelude::*;
use serde_json::Value;

fn values(id: &str) -> [String; 10] {
    [
        id.to_owned(),
        format!("Title {id}"),
        "Description".to_owned(),
        "https://shop.example/p".to_owned(),
        "https://cdn.example/i.jpg".to_owned(),
        "in stock".to_owned(),
        "9.99 USD".to_owned(),
        "Acme".to_owned(),
        "new".to_owned(),
        "Home > Mugs".to_owned(),
    ]
}

/// The ten columns of the original contract, in its order.
const ORIGINAL: [Field; 10] = [
    Field::Id,
    Field::Title,
    Field::Description,
    Field::Link,
    Field::ImageLink,
    Field::Availability,
    Field::Price,
    Field::Brand,
    Field::Condition,
    Field::ProductType,
];

/// Checks a row of the original ten columns.
fn validate(fields: [&str; 10]) -> Result<Product<'_>, Vec<Problem>> {
    let pairs: Vec<(Field, &str)> = ORIGINAL.into_iter().zip(fields).collect();
    validate_fields(&pairs)
}

fn push_all(batcher: &mut Batcher, ids: &[&str]) -> (Vec<Batch>, Vec<catalog::Superseded>) {
    let mut batches = Vec::new();
    let mut superseded = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let owned = values(id);
        let fields: [&str; 10] = std::array::from_fn(|i| owned[i].as_str());
        let product = validate(fields).expect("valid");
        let row = RowRef {
            source: 0,
            line: index as u64 + 2,
        };
        let pushed = batcher.push(&product, row).expect("serialises");
        superseded.extend(pushed.superseded);
        batches.extend(pushed.batch);
    }
    batches.extend(batcher.finish());
    (batches, superseded)
}

fn ids_of(batch: &Batch) -> Vec<String> {
    let requests: Vec<Value> = serde_json::from_str(&batch.requests_json).expect("json");
    requests
        .iter()
        .map(|r| r["data"]["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn batch_size_must_be_between_1_and_5000() {
    for ok in ["1", "3000", " 5000 "] {
        assert!(BatchLimits::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["0", "5001", "-1", "abc", "", "3000.5"] {
        let err = BatchLimits::parse(bad).expect_err(bad);
        assert!(
            err.to_string()
                .starts_with("BATCH_SIZE must be a whole number from 1 to 5000")
        );
    }
    assert_eq!(BatchLimits::default().max_items(), 3000);
}

#[test]
fn a_request_is_an_update_with_every_field() {
    // Issue 14 changed the default on purpose: the category path goes to Meta's product_type;
    // the seed's mapping is kept as ProductTypeMapping::GoogleProductCategory.
    let mut batcher = Batcher::new(
        BatchLimits::default(),
        ProductTypeMapping::GoogleProductCategory,
    );
    let (batches, _) = push_all(&mut batcher, &["SKU-1"]);
    let requests: Value = serde_json::from_str(&batches[0].requests_json).unwrap();
    assert_eq!(
        requests,
        serde_json::json!([{
            "method": "UPDATE",
            "data": {
                "id": "SKU-1", "title": "Title SKU-1", "description": "Description",
                "availability": "in stock", "condition": "new", "price": "9.99 USD",
                "link": "https://shop.example/p", "image_link": "https://cdn.example/i.jpg",
                "brand": "Acme", "google_product_category": "Home > Mugs"
            }
        }])
    );
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default());
    let (default_batches, _) = push_all(&mut batcher, &["SKU-1"]);
    let default_requests: Value = serde_json::from_str(&default_batches[0].requests_json).unwrap();
    assert_eq!(default_requests[0]["data"]["product_type"], "Home > Mugs");
    assert!(
        default_requests[0]["data"]
            .get("google_product_category")
            .is_none()
    );
    let body: Value = serde_json::from_str(&batches[0].body_json()).unwrap();
    assert_eq!(body["item_type"], "PRODUCT_ITEM");
    assert_eq!(body["allow_upsert"], true);
    assert_eq!(body["requests"], requests);
}

#[test]
fn product_type_mapping_is_configurable() {
    for (mapping, gpc, pt) in [
        (ProductTypeMapping::GoogleProductCategory, true, false),
        (ProductTypeMapping::ProductType, false, true),
        (ProductTypeMapping::Both, true, true),
    ] {
        let mut batcher = Batcher::new(BatchLimits::default(), mapping);
        let (batches, _) = push_all(&mut batcher, &["A"]);
        let requests: Value = serde_json::from_str(&batches[0].requests_json).unwrap();
        let data = &requests[0]["data"];
        assert_eq!(
            data.get("google_product_category").is_some(),
            gpc,
            "{mapping}"
        );
        assert_eq!(data.get("product_type").is_some(), pt, "{mapping}");
    }
    assert_eq!("BOTH".parse(), Ok(ProductTypeMapping::Both));
    assert!("category".parse::<ProductTypeMapping>().is_err());
}

#[test]
fn an_empty_product_type_is_left_out_rather_than_clearing_the_category() {
    let mut owned = values("A");
    owned[9].clear(); // product_type
    let fields: [&str; 10] = std::array::from_fn(|i| owned[i].as_str());
    let product = validate(fields).unwrap();
    let mut out = Vec::new();
    catalog::write_request(&product, ProductTypeMapping::Both, &mut out).unwrap();
    let request: Value = serde_json::from_slice(&out).unwrap();
    assert!(request["data"].get("google_product_category").is_none());
    assert!(request["data"].get("product_type").is_none());
}

#[test]
fn batches_split_by_count_and_are_numbered() {
    let mut batcher = Batcher::new(BatchLimits::new(2).unwrap(), ProductTypeMapping::default());
    let (batches, _) = push_all(&mut batcher, &["a", "b", "c", "d", "e"]);
    assert_eq!(
        batches.iter().map(Batch::len).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert_eq!(
        batches.iter().map(|b| b.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(batches[2].rows, vec![RowRef { source: 0, line: 6 }]);
}

#[test]
fn a_duplicate_in_the_open_batch_replaces_the_earlier_row_in_place() {
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default());
    let (batches, superseded) = push_all(&mut batcher, &["a", "b", "a", "c"]);
    assert_eq!(batches.len(), 1);
    // Meta drops every copy of an id repeated in one call, so only the last copy is sent.
    assert_eq!(ids_of(&batches[0]), ["b", "a", "c"]);
    assert_eq!(
        batches[0].rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0].earlier.line, 2);
    assert_eq!(superseded[0].by.line, 4);
    assert!(!superseded[0].already_batched);
}

#[test]
fn a_duplicate_of_a_completed_batch_follows_in_a_later_batch() {
    let mut batcher = Batcher::new(BatchLimits::new(2).unwrap(), ProductTypeMapping::default());
    let (batches, superseded) = push_all(&mut batcher, &["a", "b", "c", "a"]);
    assert_eq!(ids_of(&batches[0]), ["a", "b"]);
    assert_eq!(ids_of(&batches[1]), ["c", "a"]);
    assert!(superseded[0].already_batched);
}

#[test]
fn the_byte_budget_splits_batches_before_the_limit() {
    let budget = 4096;
    let limits = BatchLimits::default().with_max_body_bytes(budget);
    let mut batcher = Batcher::new(limits, ProductTypeMapping::default());
    let ids: Vec<String> = (0..200).map(|i| format!("id-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (batches, _) = push_all(&mut batcher, &refs);
    assert!(batches.len() > 5);
    for batch in &batches {
        assert!(batch.form_body_len() <= budget, "{}", batch.form_body_len());
    }
    assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), 200);
}

#[test]
fn form_encoded_length_matches_a_real_encoder() {
    let sample = r#"[{"method":"UPDATE","data":{"id":"é ü/?&=+ 1"}}]"#;
    let encoded: String = url::form_urlencoded::byte_serialize(sample.as_bytes()).collect();
    assert_eq!(form_encoded_len(sample.as_bytes()), encoded.len());
}

/// Text without surrounding whitespace (trimmed on input) and non-empty.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(".{{1,{max}}}"))
        .expect("regex")
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty after trim", |s| !s.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_product_survives_the_mapping_intact(
        id in text(100), title in text(200), description in text(400), brand in text(100),
        product_type in text(300), cents in 0u64..10_000_000, currency in prop::sample::select(vec!["USD", "EUR", "IQD", "JPY"]),
    ) {
        let price = format!("{}.{:02} {currency}", cents / 100, cents % 100);
        let fields = [
            id.as_str(), title.as_str(), description.as_str(), "https://shop.example/p?q=\"x\"",
            "https://cdn.example/i.jpg", "in stock", price.as_str(), brand.as_str(), "new",
            product_type.as_str(),
        ];
        let product = validate(fields).expect("valid");
        let mut out = Vec::new();
        catalog::write_request(&product, ProductTypeMapping::Both, &mut out).unwrap();
        let request: Value = serde_json::from_slice(&out).unwrap();
        let data = &request["data"];
        prop_assert_eq!(data["id"].as_str(), Some(id.as_str()));
        prop_assert_eq!(data["title"].as_str(), Some(title.as_str()));
        prop_assert_eq!(data["description"].as_str(), Some(description.as_str()));
        prop_assert_eq!(data["brand"].as_str(), Some(brand.as_str()));
        prop_assert_eq!(data["price"].as_str(), Some(price.as_str()));
        prop_assert_eq!(data["google_product_category"].as_str(), Some(product_type.as_str()));
        prop_assert_eq!(data["product_type"].as_str(), Some(product_type.as_str()));
        prop_assert_eq!(data["link"].as_str(), Some("https://shop.example/p?q=\"x\""));
    }

    #[test]
    fn batches_respect_limits_and_hold_each_surviving_row_once_in_order(
        ids in prop::collection::vec(0u16..60, 1..400),
        max_items in 1usize..50,
        budget in 600usize..20_000,
    ) {
        let limits = BatchLimits::new(max_items).unwrap().with_max_body_bytes(budget);
        let mut batcher = Batcher::new(limits, ProductTypeMapping::default());
        let names: Vec<String> = ids.iter().map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (batches, superseded) = push_all(&mut batcher, &refs);

        let mut sent_lines = Vec::new();
        for (index, batch) in batches.iter().enumerate() {
            prop_assert!(!batch.is_empty());
            prop_assert!(batch.len() <= max_items);
            prop_assert!(batch.form_body_len() <= budget);
            prop_assert_eq!(batch.number as usize, index + 1);
            let ids = ids_of(batch);
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), ids.len(), "an id repeated within one batch");
            for (id, row) in ids.iter().zip(&batch.rows) {
                prop_assert_eq!(id, &names[row.line as usize - 2]);
            }
            sent_lines.extend(batch.rows.iter().map(|r| r.line));
        }
        // Every row is either sent or superseded (never both within a batch), in input order.
        let superseded_in_open: Vec<u64> = superseded
            .iter()
            .filter(|s| !s.already_batched)
            .map(|s| s.earlier.line)
            .collect();
        let mut expected: Vec<u64> = (2..ids.len() as u64 + 2)
            .filter(|line| !superseded_in_open.contains(line))
            .collect();
        expected.sort_unstable();
        prop_assert_eq!(&sent_lines, &expected);
        // The last row of every id is sent.
        for id in names.iter() {
            let last = names.iter().rposition(|n| n == id).unwrap() as u64 + 2;
            prop_assert!(sent_lines.contains(&last));
        }
    }
}

#[test]
fn a_delete_is_a_delete_request_and_the_last_row_of_an_id_wins() {
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default());
    let update = values("A");
    let update: [&str; 10] = std::array::from_fn(|i| update[i].as_str());
    let update = validate(update).expect("valid");
    let delete = validate_fields(&[(Field::Id, "A"), (Field::Method, "delete")]).expect("valid");
    let row = |line| RowRef { source: 0, line };
    let first = batcher.push(&update, row(2)).expect("push");
    assert!(first.superseded.is_none());
    let second = batcher.push(&delete, row(3)).expect("push");
    assert_eq!(second.superseded.expect("superseded").earlier.line, 2);
    let batch = batcher.finish().expect("batch");
    let requests: Value = serde_json::from_str(&batch.requests_json).unwrap();
    assert_eq!(
        requests,
        serde_json::json!([{"method": "DELETE", "data": {"id": "A"}}])
    );
    // And an update after a delete wins in turn.
    batcher.push(&delete, row(4)).expect("push");
    batcher.push(&update, row(5)).expect("push");
    let batch = batcher.finish().expect("batch");
    let requests: Value = serde_json::from_str(&batch.requests_json).unwrap();
    assert_eq!(requests[0]["method"], "UPDATE");
    assert_eq!(batch.len(), 1);
    assert!(batch.deletes.is_empty());
}

#[test]
fn a_batch_says_which_of_its_requests_are_deletes() {
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default());
    let row = |line| RowRef { source: 0, line };
    // Rows 2..=7: B is superseded by a later delete, so the batch holds A, C(del), D, B(del), E.
    let ids = ["A", "B", "C", "D", "B", "E"];
    let deletes = [false, false, true, false, true, false];
    for (n, (id, delete)) in ids.iter().zip(deletes).enumerate() {
        let line = n as u64 + 2;
        let owned = values(id);
        let product = if delete {
            validate_fields(&[(Field::Id, id), (Field::Method, "delete")])
        } else {
            validate(std::array::from_fn(|i| owned[i].as_str()))
        };
        batcher
            .push(&product.expect("valid"), row(line))
            .expect("push");
    }
    let batch = batcher.finish().expect("batch");
    let requests: Value = serde_json::from_str(&batch.requests_json).unwrap();
    let methods: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|request| request["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["UPDATE", "DELETE", "UPDATE", "DELETE", "UPDATE"]);
    assert_eq!(batch.deletes, [1, 3]);
    assert_eq!(batch.deletes_in(0..5), 2);
    assert_eq!(batch.deletes_in(0..2), 1);
    assert_eq!(batch.deletes_in(2..3), 0);
    assert_eq!(batch.deletes_in(3..5), 1);
    assert!(batch.is_delete_at(3) && !batch.is_delete_at(4));
}

/// Change detection in a test: a fixed map of id to the fingerprint Meta last took.
#[derive(Default)]
struct Remembered {
    taken: std::collections::HashMap<String, u64>,
    saw: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl catalog::KnownProducts for Remembered {
    fn saw(&mut self, id: &str) {
        self.saw.lock().expect("not poisoned").push(id.to_owned());
    }

    fn unchanged(&mut self, id: &str, fingerprint: u64) -> bool {
        // A valid row is seen too.
        self.saw(id);
        self.taken.get(id) == Some(&fingerprint)
    }
}

/// The fingerprints of everything a plain batcher sends for `ids`.
fn fingerprints_of(ids: &[&str]) -> std::collections::HashMap<String, u64> {
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default())
        .with_known(Box::new(Remembered::default()));
    let (batches, _) = push_all(&mut batcher, ids);
    batches
        .iter()
        .flat_map(|batch| batch.items.iter())
        .map(|item| (item.id.clone(), item.fingerprint))
        .collect()
}

#[test]
fn unchanged_products_are_not_batched_and_every_id_is_seen() {
    let taken = fingerprints_of(&["a", "b"]);
    let saw = std::sync::Arc::default();
    let known = Remembered {
        taken,
        saw: std::sync::Arc::clone(&saw),
    };
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default())
        .with_known(Box::new(known));
    let (batches, _) = push_all(&mut batcher, &["a", "b", "c"]);
    let sent: Vec<&str> = batches
        .iter()
        .flat_map(|batch| batch.items.iter().map(|item| item.id.as_str()))
        .collect();
    assert_eq!(sent, ["c"]);
    assert_eq!(*saw.lock().expect("not poisoned"), ["a", "b", "c"]);
}

#[test]
fn a_repeated_id_is_sent_even_when_its_last_row_is_unchanged() {
    // "a" changed on line 2 and went out in a full batch; line 4 brings it back as Meta had
    // it. Meta now holds line 2's version, so line 4 must go too: the last row wins.
    let taken = fingerprints_of(&["a"]);
    let limits = BatchLimits::new(1).expect("valid size");
    let mut batcher =
        Batcher::new(limits, ProductTypeMapping::default()).with_known(Box::new(Remembered {
            taken,
            saw: std::sync::Arc::default(),
        }));
    let changed = values("a").map(|v| v.replace("Title a", "Title a, new"));
    let fields: [&str; 10] = std::array::from_fn(|i| changed[i].as_str());
    let product = validate(fields).expect("valid");
    let first = batcher
        .push(&product, RowRef { source: 0, line: 2 })
        .expect("serialises");
    assert!(!first.unchanged);
    let (batches, superseded) = push_all(&mut batcher, &["b", "a"]);
    let sent: Vec<&str> = batches
        .iter()
        .flat_map(|batch| batch.items.iter().map(|item| item.id.as_str()))
        .collect();
    assert_eq!(sent, ["a", "b", "a"]);
    assert_eq!(superseded.len(), 1);
}

#[test]
fn each_item_carries_the_fingerprint_of_its_request_text() {
    let mut plain = Batcher::new(BatchLimits::default(), ProductTypeMapping::default());
    let (batches, _) = push_all(&mut plain, &["a"]);
    assert!(
        batches[0].items.is_empty(),
        "without change detection nothing is kept"
    );
    let mut batcher = Batcher::new(BatchLimits::default(), ProductTypeMapping::default())
        .with_known(Box::new(Remembered::default()));
    let (batches, _) = push_all(&mut batcher, &["a", "b"]);
    let deleted = batcher.push_delete("gone");
    assert!(deleted.batch.is_none());
    let last = batcher.finish().expect("the delete");
    let requests: Vec<Value> = batches
        .iter()
        .chain([&last])
        .flat_map(|batch| {
            serde_json::from_str::<Vec<Value>>(&batch.requests_json).expect("a JSON array")
        })
        .collect();
    let items: Vec<&catalog::BatchItem> = batches
        .iter()
        .chain([&last])
        .flat_map(|batch| batch.items.iter())
        .collect();
    assert_eq!(requests.len(), items.len());
    let is_delete: Vec<bool> = batches
        .iter()
        .chain([&last])
        .flat_map(|batch| (0..batch.len()).map(|at| batch.is_delete_at(at)))
        .collect();
    for ((request, item), delete) in requests.iter().zip(&items).zip(is_delete) {
        assert_eq!(request["data"]["id"], item.id.as_str());
        assert_eq!(request["method"] == "DELETE", delete);
    }
    let delete = r#"{"method":"DELETE","data":{"id":"gone"}}"#;
    assert_eq!(last.requests_json, format!("[{delete}]"));
    assert_eq!(items[2].fingerprint, catalog::fingerprint(delete));
    assert_eq!(last.rows[0].line, 0);
    assert_ne!(items[0].fingerprint, items[1].fingerprint);
    // The same product gives the same fingerprint in another batcher (another random seed).
    assert_eq!(fingerprints_of(&["a"])["a"], items[0].fingerprint);
}
