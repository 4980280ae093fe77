//! GraphClient against a started GraphEmulator (and a few tiny servers) over real HTTP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use graph::{
    AccessToken, AppSecret, BatchState, ErrorClass, GraphClient, GraphError, GraphSettings,
    RetryPolicy,
};
use graph_emulator::{
    AuthMode, BatchOutcome, DEFAULT_CATALOG_ID, DEFAULT_TOKEN, EmulatorConfig, Endpoint, Fault,
    GraphEmulator, RunningEmulator,
};
use serde_json::{Value, json};

fn settings(base: &str) -> GraphSettings {
    GraphSettings {
        base_url: base.to_owned(),
        ..GraphSettings::default()
    }
}

fn client_for(emu: &RunningEmulator) -> GraphClient {
    GraphClient::new(settings(&emu.url()), AccessToken::new(DEFAULT_TOKEN)).unwrap()
}

async fn start() -> (RunningEmulator, GraphClient) {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let client = client_for(&emu);
    (emu, client)
}

fn product(id: &str) -> Value {
    json!({"id": id, "title": format!("Product {id}"), "description": "A fine product",
           "availability": "in stock", "condition": "new", "price": "9.99 USD",
           "link": format!("https://shop.example/p/{id}"), "image_link": format!("https://shop.example/i/{id}.jpg"),
           "brand": "Acme", "google_product_category": "Apparel & Accessories"})
}

fn batch(ids: &[&str]) -> String {
    Value::from(
        ids.iter()
            .map(|id| json!({"method": "UPDATE", "data": product(id)}))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// Short waits so retry tests over real HTTP stay fast.
fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_throttle_wait: Duration::from_secs(5),
    }
}

/// A server of the test's own answering every request with `status`, `content_type` and `body`.
async fn tiny_server(status: u16, content_type: &'static str, body: &'static str) -> String {
    let app = Router::new().fallback(move || async move {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response()
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn send_check_and_preflight() {
    let (emu, client) = start().await;
    let info = client.catalog(DEFAULT_CATALOG_ID).await.unwrap();
    assert_eq!(info.id, DEFAULT_CATALOG_ID);
    assert_eq!(info.product_count, Some(0));
    assert!(info.name.is_some());

    let requests = batch(&["1", "2"]);
    let response = client
        .items_batch(DEFAULT_CATALOG_ID, &requests)
        .await
        .unwrap();
    assert_eq!(response.handles.len(), 1);
    let handle = &response.handles[0];

    let first = client
        .check_batch_request_status(DEFAULT_CATALOG_ID, handle)
        .await
        .unwrap();
    assert_eq!(first.state(), BatchState::InProgress);
    assert!(!first.is_terminal());
    let done = client
        .check_with_retry(DEFAULT_CATALOG_ID, handle, &quick_retry(), None)
        .await
        .unwrap();
    assert_eq!(done.state(), BatchState::Finished);
    assert_eq!(&done.handle, handle);
    assert_eq!(done.errors_total_count, 0);
    assert_eq!(done.raw["status"], "finished");
    assert_eq!(
        client
            .catalog(DEFAULT_CATALOG_ID)
            .await
            .unwrap()
            .product_count,
        Some(2)
    );

    // What went over the wire: the documented form, token only in the header.
    let sent = &emu.requests()[1];
    assert_eq!(sent.endpoint, Some(Endpoint::ItemsBatch));
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.path,
        format!("/v27.0/{DEFAULT_CATALOG_ID}/items_batch")
    );
    assert_eq!(sent.auth, AuthMode::Bearer);
    assert!(
        sent.content_type
            .as_deref()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    assert_eq!(sent.params["item_type"], "PRODUCT_ITEM");
    assert_eq!(sent.params["allow_upsert"], "true");
    assert_eq!(
        sent.params["requests"],
        requests.as_str(),
        "requests text is sent as given"
    );
    assert!(sent.query.is_empty());
    assert!(!sent.params.contains_key("access_token"));
    assert!(!sent.params.contains_key("appsecret_proof"));
    let check = &emu.requests()[2];
    assert!(
        check.query.contains("load_ids_of_invalid_requests=true"),
        "{}",
        check.query
    );
    assert_eq!(
        check.params["fields"],
        graph::BATCH_STATUS_FIELDS,
        "the status check names the fields it reads, counts included"
    );
    for field in [
        "errors_total_count",
        "warnings_total_count",
        "ids_of_invalid_requests",
    ] {
        assert!(graph::BATCH_STATUS_FIELDS.contains(field), "{field}");
    }
    let preflight = &emu.requests()[0];
    assert_eq!(preflight.params["fields"], "id,name,product_count");
}

#[tokio::test]
async fn item_errors_come_back_in_the_status() {
    let (_emu, client) = start().await;
    let mut bad = product("bad");
    bad["price"] = json!("9,99 €");
    let requests =
        json!([{"method": "UPDATE", "data": bad}, {"method": "UPDATE", "data": product("good")}])
            .to_string();
    let chunks = client
        .send_batch(DEFAULT_CATALOG_ID, &requests, &quick_retry(), None)
        .await
        .unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].item_count, 2);
    assert_eq!(chunks[0].requests_json, requests);
    let handle = &chunks[0].response.handles[0];
    let mut status = client
        .check_batch_request_status(DEFAULT_CATALOG_ID, handle)
        .await
        .unwrap();
    while !status.is_terminal() {
        status = client
            .check_batch_request_status(DEFAULT_CATALOG_ID, handle)
            .await
            .unwrap();
    }
    assert_eq!(status.errors_total_count, 1);
    assert_eq!(status.errors[0].line, Some(0));
    assert_eq!(status.errors[0].id.as_deref(), Some("bad"));
    assert!(status.errors[0].message.contains("price"));
    assert_eq!(status.ids_of_invalid_requests, ["bad"]);
}

#[tokio::test]
async fn appsecret_proof_is_sent_when_configured() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let client = GraphClient::new(
        GraphSettings {
            app_secret: Some(AppSecret::new("app-secret")),
            ..settings(&emu.url())
        },
        AccessToken::new(DEFAULT_TOKEN),
    )
    .unwrap();
    let expected = AppSecret::new("app-secret").proof(&AccessToken::new(DEFAULT_TOKEN));
    assert_eq!(expected.len(), 64);
    let handle = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["1"]))
        .await
        .unwrap()
        .handles[0]
        .clone();
    client
        .check_batch_request_status(DEFAULT_CATALOG_ID, &handle)
        .await
        .unwrap();
    client.catalog(DEFAULT_CATALOG_ID).await.unwrap();
    for request in emu.requests() {
        assert_eq!(
            request.params["appsecret_proof"],
            expected.as_str(),
            "{}",
            request.path
        );
    }
}

#[tokio::test]
async fn throttled_with_usage_header() {
    let (emu, client) = start().await;
    emu.push_fault(Fault::Throttle {
        code: 80014,
        regain_access_minutes: Some(2),
        retry_after_secs: Some(5),
    });
    let err = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["1"]))
        .await
        .unwrap_err();
    match &err {
        GraphError::Throttled {
            code,
            retry_after,
            message,
        } => {
            assert_eq!(*code, Some(80014));
            // The usage header wins over Retry-After.
            assert_eq!(*retry_after, Some(Duration::from_secs(120)));
            assert!(message.contains("too many calls"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    let usage = client.last_usage().unwrap();
    assert_eq!(usage.regain_access, Some(Duration::from_secs(120)));
    assert_eq!(usage.max_percent(), Some(100.0));

    // Waiting 2 minutes would pass a 30 s deadline: send_batch returns at once.
    emu.push_fault(Fault::Throttle {
        code: 80014,
        regain_access_minutes: Some(2),
        retry_after_secs: None,
    });
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let err = client
        .send_batch(
            DEFAULT_CATALOG_ID,
            &batch(&["1"]),
            &RetryPolicy::default(),
            Some(deadline),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Throttled);
    // Waiting would take the 2 minutes Meta asked for: any bound well below that tells the two
    // apart without depending on how fast this machine is right now.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn throttled_with_retry_after_is_waited_out() {
    let (emu, client) = start().await;
    emu.push_fault(Fault::Throttle {
        code: 4,
        regain_access_minutes: None,
        retry_after_secs: Some(1),
    });
    let started = Instant::now();
    let chunks = client
        .send_batch(DEFAULT_CATALOG_ID, &batch(&["1"]), &quick_retry(), None)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(chunks.len(), 1);
    let calls = emu
        .requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::ItemsBatch))
        .count();
    assert_eq!(calls, 2);

    emu.push_fault(Fault::Throttle {
        code: 17,
        regain_access_minutes: None,
        retry_after_secs: Some(9),
    });
    let err = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["1"]))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(9)));
}

#[tokio::test]
async fn every_attempt_is_counted_with_its_failures_and_throttles() {
    let (emu, client) = start().await;
    let before = client.call_counts();
    emu.push_fault(Fault::Throttle {
        code: 80014,
        regain_access_minutes: None,
        retry_after_secs: Some(0),
    });
    emu.push_fault(Fault::ServerError { status: 503 });
    let chunks = client
        .send_batch(DEFAULT_CATALOG_ID, &batch(&["1"]), &quick_retry(), None)
        .await
        .unwrap();
    let handle = chunks[0].response.handles[0].clone();
    client
        .check_batch_request_status(DEFAULT_CATALOG_ID, &handle)
        .await
        .unwrap();
    // An empty handle is refused before anything is asked of Meta: not a call.
    client
        .check_batch_request_status(DEFAULT_CATALOG_ID, " ")
        .await
        .unwrap_err();
    let counts = client.call_counts().since(before);
    let answered = emu.requests().len() as u64;
    assert_eq!(counts.calls, answered, "{counts:?}");
    assert_eq!(
        counts,
        graph::CallCounts {
            calls: 4,
            failed: 2,
            throttled: 1
        }
    );
    // Clones share the tally: the function's adapter and the CLI read one client.
    assert_eq!(client.clone().call_counts(), client.call_counts());
}

#[tokio::test]
async fn token_invalid_and_expired() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let client = GraphClient::new(settings(&emu.url()), AccessToken::new("wrong")).unwrap();
    let err = client.catalog(DEFAULT_CATALOG_ID).await.unwrap_err();
    assert!(
        matches!(err, GraphError::TokenInvalid { code: 190, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.what_to_do().contains("token"));

    // A rotated secret fixes every clone.
    let clone = client.clone();
    client.replace_token(AccessToken::new(DEFAULT_TOKEN));
    clone.catalog(DEFAULT_CATALOG_ID).await.unwrap();

    emu.push_fault(Fault::TokenExpired);
    let started = Instant::now();
    let err = client
        .send_batch(DEFAULT_CATALOG_ID, &batch(&["1"]), &quick_retry(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::TokenInvalid {
                code: 190,
                subcode: Some(463),
                ..
            }
        ),
        "{err:?}"
    );
    // Not retried and not waited for: the policy's longest wait (5 s for a throttle) is the
    // bound, so a busy machine cannot fail it; the request count below is the exact check.
    assert!(started.elapsed() < quick_retry().max_throttle_wait);
    assert_eq!(
        emu.requests()
            .iter()
            .filter(|r| r.endpoint == Some(Endpoint::ItemsBatch))
            .count(),
        1,
        "no retry"
    );
    // Revoked from then on.
    let err = client.catalog(DEFAULT_CATALOG_ID).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::TokenInvalid);
}

#[tokio::test]
async fn permission_denied() {
    let (emu, client) = start().await;
    emu.push_fault(Fault::PermissionDenied);
    let err = client
        .check_with_retry(DEFAULT_CATALOG_ID, "h", &quick_retry(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphError::Permission { code: 200, .. }),
        "{err:?}"
    );
    assert_eq!(emu.requests().len(), 1, "no retry");
    assert!(err.what_to_do().contains("catalog_management"));
}

#[tokio::test]
async fn transient_5xx_is_retried() {
    let (emu, client) = start().await;
    emu.push_fault(Fault::ServerError { status: 503 });
    let err = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["1"]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::Transient {
                status: Some(503),
                code: Some(2),
                ..
            }
        ),
        "{err:?}"
    );

    emu.push_fault(Fault::ServerError { status: 500 });
    emu.push_fault(Fault::ServerError { status: 502 });
    let chunks = client
        .send_batch(DEFAULT_CATALOG_ID, &batch(&["1"]), &quick_retry(), None)
        .await
        .unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        emu.requests()
            .iter()
            .filter(|r| r.status == Some(200))
            .count(),
        1
    );

    // Attempts run out.
    for _ in 0..4 {
        emu.push_fault(Fault::ServerError { status: 500 }.on(Endpoint::BatchStatus));
    }
    let err = client
        .check_with_retry(
            DEFAULT_CATALOG_ID,
            &chunks[0].response.handles[0],
            &quick_retry(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn dropped_connection_is_transient_and_retried() {
    let (emu, client) = start().await;
    emu.push_fault(Fault::DropConnection);
    let err = client.catalog(DEFAULT_CATALOG_ID).await.unwrap_err();
    assert!(
        matches!(err, GraphError::Transient { status: None, .. }),
        "{err:?}"
    );

    emu.push_fault(Fault::DropConnection);
    let chunks = client
        .send_batch(DEFAULT_CATALOG_ID, &batch(&["1"]), &quick_retry(), None)
        .await
        .unwrap();
    assert_eq!(chunks.len(), 1);
}

/// A client of the emulator whose requests each give up after `request_timeout`.
fn client_with_timeout(emu: &RunningEmulator, request_timeout: Duration) -> GraphClient {
    GraphClient::new(
        GraphSettings {
            request_timeout,
            ..settings(&emu.url())
        },
        AccessToken::new(DEFAULT_TOKEN),
    )
    .unwrap()
}

#[tokio::test]
async fn slow_answer_hits_the_request_timeout() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let client = client_with_timeout(&emu, Duration::from_millis(300));
    // The answer would come after a minute: failing well before proves the timeout, however
    // slowly this machine runs the 300 ms.
    emu.push_fault(Fault::Slow(Duration::from_secs(60)));
    let started = Instant::now();
    let err = client.catalog(DEFAULT_CATALOG_ID).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    match &err {
        GraphError::Transient {
            status: None,
            message,
            ..
        } => {
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A slow answer within the timeout is fine (a timeout far above the delay, so the outcome
    // does not hang on scheduling).
    let patient = client_with_timeout(&emu, Duration::from_secs(60));
    emu.push_fault(Fault::Slow(Duration::from_millis(500)));
    patient.catalog(DEFAULT_CATALOG_ID).await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = GraphClient::new(
        settings(&format!("http://{addr}")),
        AccessToken::new("test-token-0123456789"),
    )
    .unwrap();
    let err = client.catalog("1").await.unwrap_err();
    assert!(
        matches!(err, GraphError::Transient { status: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_requests() {
    let (_emu, client) = start().await;
    let err = client.catalog("404404").await.unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::InvalidRequest {
                status: Some(400),
                code: Some(100),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not exist"));
    let err = client
        .check_with_retry(DEFAULT_CATALOG_ID, "unknown-handle", &quick_retry(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    // Refused before sending.
    let err = client
        .send_batch(DEFAULT_CATALOG_ID, "not json", &quick_retry(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    let err = client
        .send_batch(DEFAULT_CATALOG_ID, "[]", &quick_retry(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    let err = client
        .check_batch_request_status(DEFAULT_CATALOG_ID, " ")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    let too_many: Vec<Value> = (0..5001)
        .map(|i| json!({"method": "DELETE", "data": {"id": i.to_string()}}))
        .collect();
    let err = client
        .items_batch(DEFAULT_CATALOG_ID, &Value::from(too_many).to_string())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("5000"), "{err}");
}

#[tokio::test]
async fn payload_too_large_splits_into_two_accepted_chunks() {
    let (emu, client) = start().await;
    emu.push_fault(Fault::PayloadTooLarge.on(Endpoint::ItemsBatch));
    let requests = batch(&["a", "b", "c", "d", "e"]);
    let chunks = client
        .send_batch(DEFAULT_CATALOG_ID, &requests, &quick_retry(), None)
        .await
        .unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!((chunks[0].item_count, chunks[1].item_count), (2, 3));
    assert!(chunks.iter().all(|c| c.response.handles.len() == 1));
    let first: Vec<Value> = serde_json::from_str(&chunks[0].requests_json).unwrap();
    let second: Vec<Value> = serde_json::from_str(&chunks[1].requests_json).unwrap();
    let ids: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|r| r["data"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"], "order is kept");
    assert_eq!(emu.items(DEFAULT_CATALOG_ID).len(), 5);
    let calls: Vec<Option<u16>> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(calls, [Some(500), Some(200), Some(200)]);
}

#[tokio::test]
async fn payload_too_large_recurses_until_it_fits_and_fails_on_one_request() {
    let (emu, client) = start().await;
    // The whole batch and its first half are too large: a, b | c, d -> a | b | c, d.
    emu.push_fault(Fault::PayloadTooLarge);
    emu.push_fault(Fault::PayloadTooLarge);
    let chunks = client
        .send_batch(
            DEFAULT_CATALOG_ID,
            &batch(&["a", "b", "c", "d"]),
            &quick_retry(),
            None,
        )
        .await
        .unwrap();
    let counts: Vec<usize> = chunks.iter().map(|c| c.item_count).collect();
    assert_eq!(counts, [1, 1, 2]);

    emu.push_fault(Fault::PayloadTooLarge);
    let err = client
        .send_batch(
            DEFAULT_CATALOG_ID,
            &batch(&["lonely"]),
            &quick_retry(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    assert!(err.to_string().contains("lonely"), "{err}");
}

#[tokio::test]
async fn a_real_body_over_30_mb_is_split() {
    let (emu, client) = start().await;
    // Two requests of about 15.7 MB each: together over the emulator's 30 MB limit, each under it.
    let big = "x".repeat(15 * 1024 * 1024);
    let requests = Value::from(
        ["big1", "big2"]
            .iter()
            .map(|id| {
                let mut data = product(id);
                data["description"] = Value::from(big.as_str());
                json!({"method": "UPDATE", "data": data})
            })
            .collect::<Vec<_>>(),
    )
    .to_string();
    let chunks = client
        .send_batch(DEFAULT_CATALOG_ID, &requests, &quick_retry(), None)
        .await
        .unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(emu.requests().len(), 3);
    assert_eq!(emu.requests()[0].status, Some(500));
}

#[tokio::test]
async fn non_json_bodies_are_invalid_responses() {
    let html = "<html><body>Welcome to our proxy\n\t page</body></html>";
    let base = tiny_server(200, "text/html", html).await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client.catalog("1").await.unwrap_err();
    match &err {
        GraphError::InvalidResponse { status, detail } => {
            assert_eq!(*status, 200);
            assert!(detail.contains("Welcome to our proxy page"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(err.what_to_do().contains("GRAPH_API_BASE_URL"));

    let base = tiny_server(404, "text/html", "<h1>Not Found</h1>").await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client.items_batch("1", "[]").await.unwrap_err();
    assert!(
        matches!(err, GraphError::InvalidResponse { status: 404, .. }),
        "{err:?}"
    );

    // A gateway's HTML error page is still a temporary failure.
    let base = tiny_server(502, "text/html", "<h1>Bad Gateway</h1>").await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client.catalog("1").await.unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::Transient {
                status: Some(502),
                ..
            }
        ),
        "{err:?}"
    );

    // A long body is cut to a short excerpt.
    let long: &'static str = Box::leak("y".repeat(100_000).into_boxed_str());
    let base = tiny_server(200, "text/plain", long).await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client.catalog("1").await.unwrap_err();
    assert!(err.to_string().len() < 400, "{}", err.to_string().len());
}

#[tokio::test]
async fn error_envelope_with_http_200_is_an_error() {
    let body = r#"{"error": {"message": "(#80004) too many calls", "type": "OAuthException", "code": 80004}}"#;
    let base = tiny_server(200, "application/json", body).await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client.items_batch("1", "[]").await.unwrap_err();
    assert!(
        matches!(
            err,
            GraphError::Throttled {
                code: Some(80004),
                ..
            }
        ),
        "{err:?}"
    );

    // JSON of the wrong shape.
    let base = tiny_server(200, "application/json", r#"{"data": []}"#).await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client
        .check_batch_request_status("1", "h")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphError::InvalidResponse { status: 200, .. }),
        "{err:?}"
    );
    let base = tiny_server(200, "application/json", r#"{"handles": "not a list"}"#).await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client.items_batch("1", "[]").await.unwrap_err();
    assert!(matches!(err, GraphError::InvalidResponse { .. }), "{err:?}");

    // HTTP 429 without a Graph body.
    let base = tiny_server(429, "text/plain", "slow down").await;
    let client =
        GraphClient::new(settings(&base), AccessToken::new("test-token-0123456789")).unwrap();
    let err = client.catalog("1").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Throttled);
}

#[tokio::test]
async fn never_finishing_batch_stays_in_progress() {
    let (emu, client) = start().await;
    emu.push_outcome(BatchOutcome::NeverFinishes);
    emu.push_outcome(BatchOutcome::Error);
    let stuck = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["1"]))
        .await
        .unwrap()
        .handles[0]
        .clone();
    let failed = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["2"]))
        .await
        .unwrap()
        .handles[0]
        .clone();
    for _ in 0..3 {
        let s = client
            .check_batch_request_status(DEFAULT_CATALOG_ID, &stuck)
            .await
            .unwrap();
        assert_eq!(s.state(), BatchState::InProgress, "{}", s.status);
    }
    let mut s = client
        .check_batch_request_status(DEFAULT_CATALOG_ID, &failed)
        .await
        .unwrap();
    while !s.is_terminal() {
        s = client
            .check_batch_request_status(DEFAULT_CATALOG_ID, &failed)
            .await
            .unwrap();
    }
    assert_eq!(s.state(), BatchState::Error);
    assert_eq!(s.errors_total_count, 1);
    assert_eq!(s.errors[0].line, None);
}

/// The emulator verifies `appsecret_proof` when it knows the app secret: the client's proof
/// passes, and a client with the wrong secret is refused as an invalid request.
#[tokio::test]
async fn appsecret_proof_is_accepted_by_a_verifying_emulator() {
    let emu = GraphEmulator::start(EmulatorConfig {
        app_secret: Some("app-secret".into()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let with_secret = |secret: &str| {
        GraphClient::new(
            GraphSettings {
                app_secret: Some(AppSecret::new(secret)),
                ..settings(&emu.url())
            },
            AccessToken::new(DEFAULT_TOKEN),
        )
        .unwrap()
    };
    let good = with_secret("app-secret");
    let handle = good
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["1"]))
        .await
        .unwrap()
        .handles[0]
        .clone();
    good.check_batch_request_status(DEFAULT_CATALOG_ID, &handle)
        .await
        .unwrap();
    let err = with_secret("another-secret")
        .catalog(DEFAULT_CATALOG_ID)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidRequest, "{err}");
    assert!(err.to_string().contains("appsecret_proof"), "{err}");
    assert!(!err.to_string().contains("another-secret"), "{err}");
}

/// A version Meta retired answers code 2635: its own class, not retried, and the advice names
/// `GRAPH_API_VERSION`.
#[tokio::test]
async fn a_retired_version_stops_with_advice_to_change_it() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let client = GraphClient::new(
        GraphSettings {
            api_version: "v24.0".into(),
            ..settings(&emu.url())
        },
        AccessToken::new(DEFAULT_TOKEN),
    )
    .unwrap();
    let err = client
        .send_batch(DEFAULT_CATALOG_ID, &batch(&["1"]), &quick_retry(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::VersionUnavailable, "{err}");
    assert!(err.what_to_do().contains("GRAPH_API_VERSION"));
    let sends = emu
        .requests()
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::ItemsBatch))
        .count();
    assert_eq!(sends, 1, "a retired version is not retried");
}

/// Items Meta refuses while taking the call come back in `validation_status`, beside the handle
/// of the rest; a call where every item is refused has no `handles` key, read as no handle.
#[tokio::test]
async fn synchronous_refusals_are_read_from_the_answer() {
    let (_emu, client) = start().await;
    let answer = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["d", "ok", "d"]))
        .await
        .unwrap();
    assert_eq!(answer.handles.len(), 1);
    assert_eq!(answer.validation_status.len(), 1);
    assert_eq!(answer.validation_status[0].retailer_id, "d");
    assert_eq!(answer.validation_status[0].errors.len(), 2);
    let answer = client
        .items_batch(DEFAULT_CATALOG_ID, &batch(&["x", "x"]))
        .await
        .unwrap();
    assert!(answer.handles.is_empty());
    assert_eq!(answer.validation_status[0].retailer_id, "x");
}
