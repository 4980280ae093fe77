//! The emulator's own rules, over real HTTP with a plain reqwest client.

use std::time::{Duration, Instant};

use graph_emulator::{
    AuthMode, BatchOutcome, DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, Endpoint, Fault,
    GraphEmulator, MAX_BODY_BYTES, RunningEmulator,
};
use serde_json::{Value, json};

const V: &str = "v25.0";
/// Every field of a batch status, as the product asks for them.
const ALL_STATUS_FIELDS: &str =
    "handle,status,errors,warnings,errors_total_count,warnings_total_count,ids_of_invalid_requests";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn start() -> RunningEmulator {
    GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn product(id: &str) -> Value {
    json!({"id": id, "title": format!("Product {id}"), "description": "A fine product",
           "availability": "in stock", "condition": "new", "price": "9.99 USD",
           "link": format!("https://shop.example/p/{id}"), "image_link": format!("https://shop.example/i/{id}.jpg"),
           "brand": "Acme", "google_product_category": "Apparel & Accessories"})
}

fn update(data: Value) -> Value {
    json!({"method": "UPDATE", "data": data})
}

async fn read(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends `requests` form-encoded with a Bearer token and upsert on.
async fn send(emu: &RunningEmulator, requests: &Value) -> Answer {
    send_with(emu, DEFAULT_CATALOG_ID, requests, true).await
}

async fn send_with(emu: &RunningEmulator, catalog: &str, requests: &Value, upsert: bool) -> Answer {
    let url = format!("{}/{V}/{catalog}/items_batch", emu.url());
    let text = requests.to_string();
    // `allow_upsert` defaults to true when absent, so "no upsert" must be said explicitly.
    let upsert = if upsert { "true" } else { "false" };
    let form = vec![
        ("item_type", "PRODUCT_ITEM"),
        ("requests", text.as_str()),
        ("allow_upsert", upsert),
    ];
    read(
        http()
            .post(url)
            .bearer_auth(DEFAULT_TOKEN)
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn status(emu: &RunningEmulator, handle: &str) -> Answer {
    let url = format!(
        "{}/{V}/{DEFAULT_CATALOG_ID}/check_batch_request_status",
        emu.url()
    );
    read(
        http()
            .get(url)
            .bearer_auth(DEFAULT_TOKEN)
            .query(&[
                ("handle", handle),
                ("fields", ALL_STATUS_FIELDS),
                ("load_ids_of_invalid_requests", "true"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Checks until a terminal status and returns its `data[0]`.
async fn final_status(emu: &RunningEmulator, handle: &str) -> Value {
    for _ in 0..10 {
        let a = status(emu, handle).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let data = a.body["data"][0].clone();
        let s = data["status"].as_str().unwrap().to_ascii_lowercase();
        if matches!(s.as_str(), "finished" | "canceled" | "error") {
            return data;
        }
    }
    panic!("batch {handle} never finished");
}

fn handle_of(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["handles"][0].as_str().unwrap().to_owned()
}

fn error_code(a: &Answer) -> i64 {
    a.body["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error code in {}", a.body))
}

#[tokio::test]
async fn form_body_upserts_and_status_progresses() {
    let emu = start().await;
    let a = send(&emu, &json!([update(product("1")), update(product("2"))])).await;
    let handle = handle_of(&a);
    assert_eq!(a.body["validation_status"], json!([]));

    // Default: one non-terminal check, then finished.
    let first = status(&emu, &handle).await;
    assert_eq!(first.body["data"][0]["status"], "Scheduled");
    assert_eq!(first.body["data"][0]["handle"], handle.as_str());
    let second = status(&emu, &handle).await;
    let data = &second.body["data"][0];
    assert_eq!(data["status"], "finished");
    assert_eq!(data["errors_total_count"], 0);
    assert_eq!(data["warnings_total_count"], 0);
    assert_eq!(data["ids_of_invalid_requests"], json!([]));

    let items = emu.items(DEFAULT_CATALOG_ID);
    assert_eq!(items.len(), 2);
    assert_eq!(items["1"]["title"], "Product 1");
    assert!(emu.items("unknown").is_empty());

    let recorded = emu.requests();
    assert_eq!(recorded[0].endpoint, Some(Endpoint::ItemsBatch));
    assert_eq!(recorded[0].auth, AuthMode::Bearer);
    assert_eq!(recorded[0].status, Some(200));
    assert_eq!(recorded[0].params["item_type"], "PRODUCT_ITEM");
    assert_eq!(
        recorded[0]
            .requests_json()
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        recorded[0]
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    assert_eq!(recorded[1].endpoint, Some(Endpoint::BatchStatus));
    assert!(recorded[1].query.contains("handle="));
}

#[tokio::test]
async fn json_body_and_access_token_param_are_accepted_and_redacted() {
    let emu = start().await;
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}/items_batch", emu.url());
    let body = json!({"item_type": "PRODUCT_ITEM", "allow_upsert": true,
                      "access_token": DEFAULT_TOKEN, "requests": [update(product("j1"))]});
    let a = read(http().post(&url).json(&body).send().await.unwrap()).await;
    let handle = handle_of(&a);
    final_status(&emu, &handle).await;
    assert!(emu.items(DEFAULT_CATALOG_ID).contains_key("j1"));

    // The token as a query parameter, with a form body.
    let requests = json!([update(product("q1"))]).to_string();
    let a = read(
        http()
            .post(format!("{url}?access_token={DEFAULT_TOKEN}"))
            .form(&[
                ("item_type", "PRODUCT_ITEM"),
                ("allow_upsert", "true"),
                ("requests", &requests),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    handle_of(&a);

    let recorded = emu.requests();
    assert_eq!(recorded[0].auth, AuthMode::AccessTokenParam);
    assert_eq!(recorded[0].params["access_token"], "[redacted]");
    assert_eq!(recorded[0].params["allow_upsert"], true);
    assert_eq!(recorded[0].requests_json().unwrap()[0]["data"]["id"], "j1");
    let last = recorded.last().unwrap();
    assert_eq!(last.auth, AuthMode::AccessTokenParam);
    assert!(
        last.query.contains("access_token=%5Bredacted%5D"),
        "{}",
        last.query
    );
    let dump = format!("{recorded:?}");
    assert!(
        !dump.contains(DEFAULT_TOKEN),
        "a token leaked into the recording"
    );
}

#[tokio::test]
async fn tokens_are_checked() {
    let emu = start().await;
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}", emu.url());
    let unknown = read(http().get(&url).bearer_auth("nope").send().await.unwrap()).await;
    assert_eq!(unknown.status, 401);
    assert_eq!(error_code(&unknown), 190);
    assert_eq!(unknown.body["error"]["type"], "OAuthException");

    let missing = read(http().get(&url).send().await.unwrap()).await;
    assert_eq!(missing.status, 400);
    assert_eq!(error_code(&missing), 104);
    assert_eq!(emu.requests()[1].auth, AuthMode::None);

    emu.add_token("second");
    let ok = read(http().get(&url).bearer_auth("second").send().await.unwrap()).await;
    assert_eq!(ok.status, 200);
    emu.revoke_token("second");
    let revoked = read(http().get(&url).bearer_auth("second").send().await.unwrap()).await;
    assert_eq!(error_code(&revoked), 190);
    assert_eq!(revoked.body["error"]["error_subcode"], 463);
    emu.add_token("second");
    let again = read(http().get(&url).bearer_auth("second").send().await.unwrap()).await;
    assert_eq!(again.status, 200);
}

#[tokio::test]
async fn products_edge_lists_what_the_catalog_holds() {
    let emu = start().await;
    send(&emu, &json!([update(product("1")), update(product("2"))])).await;
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}/products", emu.url());
    let listed = read(
        http()
            .get(&url)
            .bearer_auth(DEFAULT_TOKEN)
            .query(&[("fields", "retailer_id,title,no_such_field")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.status, 200);
    let data = listed.body["data"].as_array().unwrap();
    let ids: Vec<&str> = data
        .iter()
        .map(|p| p["retailer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["1", "2"]);
    assert_eq!(data[0]["title"], "Product 1");
    assert!(data[0].get("no_such_field").is_none());
    let meta_id = data[0]["id"].as_str().unwrap();
    assert!(meta_id.len() == 16 && meta_id.chars().all(|c| c.is_ascii_digit()));
    assert_ne!(data[0]["id"], data[1]["id"]);

    let default = read(
        http()
            .get(&url)
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(default.body["data"][0], json!({"id": meta_id}));
    let post = read(
        http()
            .post(&url)
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error_code(&post), 100);
    let unauthorized = read(http().get(&url).send().await.unwrap()).await;
    assert_eq!(unauthorized.status, 400);
}

#[tokio::test]
async fn catalog_endpoint() {
    let emu = start().await;
    send(&emu, &json!([update(product("1"))])).await;
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}", emu.url());
    let a = read(
        http()
            .get(&url)
            .bearer_auth(DEFAULT_TOKEN)
            .query(&[("fields", "id,name,product_count")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], DEFAULT_CATALOG_ID);
    assert_eq!(a.body["product_count"], 1);
    assert!(
        a.body["name"]
            .as_str()
            .unwrap()
            .contains(DEFAULT_CATALOG_ID)
    );

    let bad = read(
        http()
            .get(&url)
            .bearer_auth(DEFAULT_TOKEN)
            .query(&[("fields", "id,secret_field")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error_code(&bad), 100);

    let missing = read(
        http()
            .get(format!("{}/{V}/999", emu.url()))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(error_code(&missing), 100);
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );

    emu.add_catalog("999");
    let now = read(
        http()
            .get(format!("{}/{V}/999", emu.url()))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(now.status, 200);
    assert_eq!(now.body["id"], "999");
}

#[tokio::test]
async fn bad_calls_are_error_100() {
    let emu = start().await;
    let base = format!("{}/{V}/{DEFAULT_CATALOG_ID}", emu.url());
    let post = |form: Vec<(&'static str, String)>| {
        let url = format!("{base}/items_batch");
        async move {
            read(
                http()
                    .post(url)
                    .bearer_auth(DEFAULT_TOKEN)
                    .form(&form)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let no_type = post(vec![("requests", "[]".into())]).await;
    assert_eq!(error_code(&no_type), 100);
    assert!(
        no_type.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("item_type")
    );
    let other_type = post(vec![
        ("item_type", "HOTEL".into()),
        ("requests", "[]".into()),
    ])
    .await;
    assert_eq!(error_code(&other_type), 100);
    let no_requests = post(vec![("item_type", "PRODUCT_ITEM".into())]).await;
    assert_eq!(error_code(&no_requests), 100);
    let not_json = post(vec![
        ("item_type", "PRODUCT_ITEM".into()),
        ("requests", "[{".into()),
    ])
    .await;
    assert_eq!(error_code(&not_json), 100);
    let not_array = post(vec![
        ("item_type", "PRODUCT_ITEM".into()),
        ("requests", "{}".into()),
    ])
    .await;
    assert_eq!(error_code(&not_array), 100);
    let empty = post(vec![
        ("item_type", "PRODUCT_ITEM".into()),
        ("requests", "[]".into()),
    ])
    .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["handles"], json!([]));

    let bad_json_body = read(
        http()
            .post(format!("{base}/items_batch"))
            .bearer_auth(DEFAULT_TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error_code(&bad_json_body), 100);

    let wrong_method = read(
        http()
            .get(format!("{base}/items_batch"))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error_code(&wrong_method), 100);
    let bad_version = read(
        http()
            .get(format!("{}/latest/{DEFAULT_CATALOG_ID}", emu.url()))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error_code(&bad_version), 100);
    let unknown_path = read(
        http()
            .get(format!("{}/a/b/c/d", emu.url()))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown_path.status, 400);
    assert!(unknown_path.body["error"]["code"].is_i64());

    let unknown_handle = status(&emu, "no-such-handle").await;
    assert_eq!(error_code(&unknown_handle), 100);
    let no_handle = read(
        http()
            .get(format!("{base}/check_batch_request_status"))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error_code(&no_handle), 100);

    // A handle from another catalog is unknown here.
    emu.add_catalog("222");
    let other = send_with(&emu, "222", &json!([update(product("x"))]), true).await;
    let h = handle_of(&other);
    assert_eq!(error_code(&status(&emu, &h).await), 100);
}

#[tokio::test]
async fn more_than_5000_requests_is_rejected() {
    let emu = start().await;
    let requests: Vec<Value> = (0..5001)
        .map(|i| json!({"method": "DELETE", "data": {"id": format!("{i}")}}))
        .collect();
    let a = send(&emu, &Value::from(requests.clone())).await;
    assert_eq!(a.status, 400);
    assert_eq!(error_code(&a), 100);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("5000")
    );
    // Exactly 5000 is fine (each DELETE of an unknown id is an item error, not a call error).
    let a = send(&emu, &Value::from(requests[..5000].to_vec())).await;
    let handle = handle_of(&a);
    let data = final_status(&emu, &handle).await;
    assert_eq!(data["errors_total_count"], 5000);
    assert_eq!(
        data["errors"].as_array().unwrap().len(),
        100,
        "samples are capped"
    );
    assert_eq!(
        data["ids_of_invalid_requests"].as_array().unwrap().len(),
        5000
    );
}

#[tokio::test]
async fn body_over_30_mb_asks_to_reduce_data() {
    let emu = start().await;
    let mut data = product("big");
    data["description"] = Value::from("x".repeat(MAX_BODY_BYTES));
    let a = send(&emu, &json!([update(data)])).await;
    assert_eq!(error_code(&a), 1);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reduce the amount of data")
    );
    let recorded = emu.requests();
    assert!(recorded[0].body_bytes > MAX_BODY_BYTES);
    assert!(
        recorded[0].params.is_empty(),
        "an oversized body is not parsed"
    );

    // Just under the limit is accepted as a call; the item itself breaks the description rule.
    let mut data = product("almost");
    data["description"] = Value::from("x".repeat(MAX_BODY_BYTES - 4096));
    let a = send(&emu, &json!([update(data)])).await;
    let handle = handle_of(&a);
    let status = final_status(&emu, &handle).await;
    assert_eq!(status["errors_total_count"], 1);
}

#[tokio::test]
async fn field_rules_are_item_errors_with_line_and_id() {
    let emu = start().await;
    let mut bad_price = product("p1");
    bad_price["price"] = json!("$9.99");
    let mut bad_link = product("p2");
    bad_link["link"] = json!("shop.example/p2");
    let mut no_category = product("p3");
    no_category
        .as_object_mut()
        .unwrap()
        .remove("google_product_category");
    let mut bad_availability = product("p4");
    bad_availability["availability"] = json!("sold out");
    let a = send(
        &emu,
        &json!([
            update(bad_price),
            update(product("ok")),
            update(bad_link),
            update(no_category),
            update(bad_availability)
        ]),
    )
    .await;
    let handle = handle_of(&a);
    let data = final_status(&emu, &handle).await;
    assert_eq!(data["status"], "finished");
    assert_eq!(data["errors_total_count"], 3);
    let errors = data["errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 0);
    assert_eq!(errors[0]["id"], "p1");
    assert!(errors[0]["message"].as_str().unwrap().contains("price"));
    assert_eq!(errors[1]["line"], 2);
    assert_eq!(errors[2]["id"], "p4");
    assert_eq!(data["ids_of_invalid_requests"], json!(["p1", "p2", "p4"]));
    assert_eq!(data["warnings_total_count"], 1);
    assert_eq!(data["warnings"][0]["id"], "p3");
    assert_eq!(data["warnings"][0]["line"], 3);

    let items = emu.items(DEFAULT_CATALOG_ID);
    let ids: Vec<&str> = items.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        ["ok", "p3"],
        "invalid items are not saved, warned ones are"
    );

    // Without load_ids_of_invalid_requests the ids stay empty.
    let a = send(&emu, &json!([update(json!({"id": "p9", "price": "bad"}))])).await;
    let h = handle_of(&a);
    let url = format!(
        "{}/{V}/{DEFAULT_CATALOG_ID}/check_batch_request_status",
        emu.url()
    );
    for _ in 0..2 {
        let s = read(
            http()
                .get(&url)
                .bearer_auth(DEFAULT_TOKEN)
                .query(&[("handle", h.as_str()), ("fields", ALL_STATUS_FIELDS)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(s.body["data"][0]["ids_of_invalid_requests"], json!([]));
    }
}

/// Meta refuses every copy of an id repeated in one call while taking the call: the answer
/// carries a handle for the rest and `validation_status` errors for the copies, and the batch's
/// later verdict does not count them again.
#[tokio::test]
async fn duplicated_ids_are_refused_at_once_for_every_copy() {
    let emu = start().await;
    let a = send(
        &emu,
        &json!([
            update(product("d")),
            update(product("e")),
            update(product("d"))
        ]),
    )
    .await;
    assert_eq!(a.status, 200);
    let refused = a.body["validation_status"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "one entry per retailer id: {refused:?}");
    assert_eq!(refused[0]["retailer_id"], "d");
    let errors = refused[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "one error per copy");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("Duplicate retailer_id")
    );
    let handle = handle_of(&a);
    let data = final_status(&emu, &handle).await;
    assert_eq!(data["errors_total_count"], 0);
    let items = emu.items(DEFAULT_CATALOG_ID);
    assert!(!items.contains_key("d"));
    assert!(items.contains_key("e"));

    // A call in which every item is refused has no batch: no `handles` key at all.
    let a = send(&emu, &json!([update(product("x")), update(product("x"))])).await;
    assert_eq!(a.status, 200);
    assert!(a.body.get("handles").is_none(), "{}", a.body);
    assert_eq!(a.body["validation_status"][0]["retailer_id"], "x");
}

#[tokio::test]
async fn status_answers_only_the_fields_asked_for() {
    let emu = start().await;
    let handle = handle_of(&send(&emu, &json!([update(json!({"id": "p", "price": "bad"}))])).await);
    let url = format!(
        "{}/{V}/{DEFAULT_CATALOG_ID}/check_batch_request_status",
        emu.url()
    );
    let ask = |fields: Option<&'static str>| {
        let mut query = vec![("handle", handle.clone())];
        if let Some(fields) = fields {
            query.push(("fields", fields.to_owned()));
        }
        let request = http().get(&url).bearer_auth(DEFAULT_TOKEN).query(&query);
        async move { read(request.send().await.unwrap()).await }
    };
    // Without `fields`: the handle and the status, nothing else, so a missing count shows.
    let bare = ask(None).await;
    let keys: Vec<&String> = bare.body["data"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["handle", "status"]);
    let some = ask(Some("status,errors_total_count")).await;
    let keys: Vec<&String> = some.body["data"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["errors_total_count", "status"]);
    let unknown = ask(Some("status,nonsense")).await;
    assert_eq!(error_code(&unknown), 100);
}

#[tokio::test]
async fn allow_upsert_defaults_to_true_when_absent() {
    let emu = start().await;
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}/items_batch", emu.url());
    let text = json!([update(product("new"))]).to_string();
    let a = read(
        http()
            .post(url)
            .bearer_auth(DEFAULT_TOKEN)
            .form(&[("item_type", "PRODUCT_ITEM"), ("requests", text.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let data = final_status(&emu, &handle_of(&a)).await;
    assert_eq!(data["errors_total_count"], 0, "{data}");
    assert!(emu.items(DEFAULT_CATALOG_ID).contains_key("new"));
}

#[tokio::test]
async fn retired_versions_answer_2635() {
    let emu = start().await;
    for old in ["v24.0", "v2.5"] {
        let a = read(
            http()
                .get(format!("{}/{old}/{DEFAULT_CATALOG_ID}", emu.url()))
                .bearer_auth(DEFAULT_TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(error_code(&a), 2635, "{old}");
    }
    let current = read(
        http()
            .get(format!("{}/v27.0/{DEFAULT_CATALOG_ID}", emu.url()))
            .bearer_auth(DEFAULT_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(current.status, 200);
}

#[tokio::test]
async fn appsecret_proof_is_checked_when_the_emulator_has_a_secret() {
    use hmac::{Hmac, Mac};
    let emu = GraphEmulator::start(EmulatorConfig {
        app_secret: Some("app-secret-for-tests".into()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}", emu.url());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"app-secret-for-tests").unwrap();
    mac.update(DEFAULT_TOKEN.as_bytes());
    let proof = hex::encode(mac.finalize().into_bytes());
    let call = |proof: Option<String>| {
        let mut request = http().get(&url).bearer_auth(DEFAULT_TOKEN);
        if let Some(proof) = proof {
            request = request.query(&[("appsecret_proof", proof)]);
        }
        async move { read(request.send().await.unwrap()).await }
    };
    assert_eq!(call(Some(proof)).await.status, 200);
    let missing = call(None).await;
    assert_eq!(error_code(&missing), 100);
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("appsecret_proof")
    );
    let wrong = call(Some("00".repeat(32))).await;
    assert_eq!(error_code(&wrong), 100);
}

#[tokio::test]
async fn upsert_create_update_delete() {
    let emu = start().await;
    // UPDATE of an unknown id without allow_upsert is an item error.
    let a = send_with(
        &emu,
        DEFAULT_CATALOG_ID,
        &json!([update(product("u"))]),
        false,
    )
    .await;
    let data = final_status(&emu, &handle_of(&a)).await;
    assert_eq!(data["errors_total_count"], 1);
    assert!(
        data["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("allow_upsert")
    );
    assert!(emu.items(DEFAULT_CATALOG_ID).is_empty());

    // CREATE needs every required field.
    let a = send_with(
        &emu,
        DEFAULT_CATALOG_ID,
        &json!([{"method": "CREATE", "data": {"id": "c", "title": "only a title"}}]),
        false,
    )
    .await;
    let data = final_status(&emu, &handle_of(&a)).await;
    assert_eq!(data["errors_total_count"], 7);

    let a = send_with(
        &emu,
        DEFAULT_CATALOG_ID,
        &json!([{"method": "CREATE", "data": product("c")}]),
        false,
    )
    .await;
    final_status(&emu, &handle_of(&a)).await;
    assert_eq!(emu.items(DEFAULT_CATALOG_ID)["c"]["brand"], "Acme");

    // A partial UPDATE of a known id keeps the other fields.
    let a = send_with(
        &emu,
        DEFAULT_CATALOG_ID,
        &json!([update(json!({"id": "c", "price": "5.00 EUR"}))]),
        false,
    )
    .await;
    let data = final_status(&emu, &handle_of(&a)).await;
    assert_eq!(data["errors_total_count"], 0);
    let item = &emu.items(DEFAULT_CATALOG_ID)["c"];
    assert_eq!(item["price"], "5.00 EUR");
    assert_eq!(item["brand"], "Acme");

    let a = send_with(
        &emu,
        DEFAULT_CATALOG_ID,
        &json!([{"method": "DELETE", "data": {"id": "c"}}]),
        false,
    )
    .await;
    final_status(&emu, &handle_of(&a)).await;
    assert!(emu.items(DEFAULT_CATALOG_ID).is_empty());
}

#[tokio::test]
async fn outcomes_and_progression() {
    let emu = GraphEmulator::start(EmulatorConfig {
        checks_until_finished: 3,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let handle = handle_of(&send(&emu, &json!([update(product("1"))])).await);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(
            status(&emu, &handle).await.body["data"][0]["status"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The Catalog Batch API guide's order (issue 15 replaced the earlier mix of spellings).
    assert_eq!(seen, ["Scheduled", "Dispatched", "Started", "finished"]);
    // Terminal stays terminal.
    assert_eq!(
        status(&emu, &handle).await.body["data"][0]["status"],
        "finished"
    );

    emu.set_checks_until_finished(0);
    emu.push_outcome(BatchOutcome::Canceled);
    emu.push_outcome(BatchOutcome::Error);
    emu.push_outcome(BatchOutcome::NeverFinishes);
    let canceled = handle_of(&send(&emu, &json!([update(product("c"))])).await);
    let errored = handle_of(&send(&emu, &json!([update(product("e"))])).await);
    let stuck = handle_of(&send(&emu, &json!([update(product("s"))])).await);
    let finished = handle_of(&send(&emu, &json!([update(product("f"))])).await);

    assert_eq!(
        status(&emu, &canceled).await.body["data"][0]["status"],
        "canceled"
    );
    let e = status(&emu, &errored).await.body["data"][0].clone();
    assert_eq!(e["status"], "error");
    assert_eq!(e["errors_total_count"], 1);
    assert!(e["errors"][0].get("line").is_none());
    for _ in 0..5 {
        let s = status(&emu, &stuck).await.body["data"][0]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!["finished", "canceled", "error"].contains(&s.to_ascii_lowercase().as_str()));
    }
    assert_eq!(
        status(&emu, &finished).await.body["data"][0]["status"],
        "finished"
    );
    let ids: Vec<String> = emu.items(DEFAULT_CATALOG_ID).into_keys().collect();
    assert_eq!(ids, ["1", "f"], "batches that do not finish save nothing");
}

#[tokio::test]
async fn throttle_fault_shapes_and_headers() {
    let emu = start().await;
    emu.push_fault(Fault::Throttle {
        code: 80014,
        regain_access_minutes: Some(3),
        retry_after_secs: Some(30),
    });
    emu.push_fault(Fault::Throttle {
        code: 4,
        regain_access_minutes: None,
        retry_after_secs: None,
    });
    let a = send(&emu, &json!([update(product("1"))])).await;
    assert_eq!(a.status, 400);
    assert_eq!(error_code(&a), 80014);
    assert_eq!(a.body["error"]["is_transient"], false);
    assert_eq!(a.headers["retry-after"], "30");
    let usage: Value =
        serde_json::from_str(a.headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    let entry = &usage.as_object().unwrap().values().next().unwrap()[0];
    assert_eq!(entry["estimated_time_to_regain_access"], 3);

    let b = send(&emu, &json!([update(product("1"))])).await;
    assert_eq!(error_code(&b), 4);
    assert!(b.headers.get("retry-after").is_none());
    assert!(b.headers.get("x-business-use-case-usage").is_none());
    // The script is used up: the next call goes through.
    handle_of(&send(&emu, &json!([update(product("1"))])).await);
}

#[tokio::test]
async fn server_permission_payload_and_token_faults() {
    let emu = start().await;
    emu.push_fault(Fault::ServerError { status: 503 });
    emu.push_fault(Fault::PermissionDenied);
    emu.push_fault(Fault::PayloadTooLarge);
    let a = send(&emu, &json!([update(product("1"))])).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.body["error"]["is_transient"], true);
    let b = send(&emu, &json!([update(product("1"))])).await;
    assert_eq!(b.status, 403);
    assert_eq!(error_code(&b), 200);
    let c = send(&emu, &json!([update(product("1"))])).await;
    assert_eq!(error_code(&c), 1);
    assert!(
        c.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reduce the amount of data")
    );

    emu.push_fault(Fault::TokenExpired);
    let d = send(&emu, &json!([update(product("1"))])).await;
    assert_eq!(error_code(&d), 190);
    assert_eq!(d.body["error"]["error_subcode"], 463);
    // The token stays revoked.
    let e = send(&emu, &json!([update(product("1"))])).await;
    assert_eq!(e.body["error"]["error_subcode"], 463);
    assert!(emu.items(DEFAULT_CATALOG_ID).is_empty());
}

#[tokio::test]
async fn faults_can_target_one_endpoint_in_fifo_order() {
    let emu = start().await;
    emu.push_fault(Fault::ServerError { status: 500 }.on(Endpoint::BatchStatus));
    emu.push_fault(Fault::ServerError { status: 502 }.on(Endpoint::BatchStatus));
    let handle = handle_of(&send(&emu, &json!([update(product("1"))])).await);
    assert_eq!(status(&emu, &handle).await.status, 500);
    assert_eq!(status(&emu, &handle).await.status, 502);
    assert_eq!(status(&emu, &handle).await.status, 200);
}

#[tokio::test]
async fn slow_fault_and_latency_delay_the_answer() {
    let emu = start().await;
    emu.push_fault(Fault::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    handle_of(&send(&emu, &json!([update(product("1"))])).await);
    assert!(started.elapsed() >= Duration::from_millis(300));

    emu.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    handle_of(&send(&emu, &json!([update(product("2"))])).await);
    assert!(started.elapsed() >= Duration::from_millis(200));
    emu.set_latency(Duration::ZERO);

    let slow = GraphEmulator::start(EmulatorConfig {
        latency: Duration::from_millis(150),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    handle_of(&send(&slow, &json!([update(product("3"))])).await);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn drop_connection_gives_no_http_answer() {
    let emu = start().await;
    emu.push_fault(Fault::DropConnection);
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}/items_batch", emu.url());
    let result = http()
        .post(&url)
        .bearer_auth(DEFAULT_TOKEN)
        .form(&[("item_type", "PRODUCT_ITEM"), ("requests", "[]")])
        .send()
        .await;
    let err = result.expect_err("a dropped connection must not produce an HTTP answer");
    assert!(err.status().is_none());
    assert_eq!(emu.requests()[0].status, None);
    // The server keeps serving new connections.
    handle_of(&send(&emu, &json!([update(product("1"))])).await);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let emu = start().await;
    let url = format!("{}/{V}/{DEFAULT_CATALOG_ID}", emu.url());
    let clone = emu.clone();
    clone.shutdown().await;
    let err = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .expect_err("the server is stopped");
    assert!(err.is_connect() || err.is_request(), "{err}");
    drop(emu);
}

#[test]
fn config_debug_hides_tokens() {
    let config = EmulatorConfig {
        tokens: vec!["very-secret".into()],
        ..EmulatorConfig::default()
    };
    let text = format!("{config:?}");
    assert!(!text.contains("very-secret"), "{text}");
    assert_eq!(EmulatorConfig::default().checks_until_finished, 1);
    assert_eq!(EmulatorConfig::default().tokens, [DEFAULT_TOKEN]);
    assert_eq!(EmulatorConfig::default().catalogs, [DEFAULT_CATALOG_ID]);
}

#[test]
fn binary_serves_on_the_printed_url() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_graph-emulator"))
        .args(["--port", "0", "--catalog", "42", "--token", "cli-token"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        read(
            http()
                .get(format!("{url}/{V}/42"))
                .bearer_auth("cli-token")
                .send()
                .await
                .unwrap(),
        )
        .await
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["id"], "42");
}
