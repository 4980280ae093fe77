//! The token never appears in an error's Debug or Display, nor in any captured log line, even
//! when the server echoes it back.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use graph::{
    AccessToken, AppSecret, ErrorClass, GraphClient, GraphError, GraphSettings, RetryPolicy,
};
use graph_emulator::{DEFAULT_CATALOG_ID, EmulatorConfig, Fault, GraphEmulator};
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

const TOKEN: &str = "EAAGsuperSecretToken0123456789abcdef";
const APP_SECRET: &str = "appSecretValue9876543210";

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Answers with whatever error the path asks for, quoting the presented token everywhere it can.
async fn echo(uri: Uri, headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let token = auth.strip_prefix("Bearer ").unwrap_or(&auth).to_owned();
    let path = uri.path();
    let envelope = |status: StatusCode, code: i64, transient: bool| {
        let lead = if code == 1 {
            "Please reduce the amount of data you're asking for; token"
        } else {
            "Invalid OAuth access token"
        };
        let body = json!({"error": {
            "message": format!("{lead} {token} (header was `{auth}`)"),
            "type": "OAuthException", "code": code, "is_transient": transient,
            "error_user_msg": format!("the token {token} cannot be used"),
            "fbtrace_id": token,
        }});
        (status, [("x-echo", token.clone())], axum::Json(body)).into_response()
    };
    if path.contains("/token/") || path.ends_with("/token") {
        envelope(StatusCode::UNAUTHORIZED, 190, false)
    } else if path.contains("transient") {
        envelope(StatusCode::SERVICE_UNAVAILABLE, 2, true)
    } else if path.contains("throttle") {
        envelope(StatusCode::BAD_REQUEST, 80014, false)
    } else if path.contains("invalid") {
        envelope(StatusCode::BAD_REQUEST, 100, false)
    } else if path.contains("too-large") {
        envelope(StatusCode::INTERNAL_SERVER_ERROR, 1, false)
    } else {
        (
            StatusCode::OK,
            format!("<html>Proxy says hello to {token} and {auth}</html>"),
        )
            .into_response()
    }
}

async fn echo_server() -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().fallback(echo)).await;
    });
    format!("http://{addr}")
}

fn client(base: &str) -> GraphClient {
    GraphClient::new(
        GraphSettings {
            base_url: base.to_owned(),
            app_secret: Some(AppSecret::new(APP_SECRET)),
            request_timeout: Duration::from_secs(5),
            ..GraphSettings::default()
        },
        AccessToken::new(TOKEN),
    )
    .unwrap()
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
        max_throttle_wait: Duration::from_secs(1),
    }
}

fn assert_clean(error: &GraphError, errors: &mut Vec<ErrorClass>) {
    for text in [
        format!("{error:?}"),
        format!("{error}"),
        error.what_to_do().to_owned(),
    ] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains(APP_SECRET), "app secret leaked: {text}");
    }
    errors.push(error.class());
}

// One thread, so the thread-local subscriber sees the client, the retry loop and both servers.
#[tokio::test(flavor = "current_thread")]
async fn the_token_never_leaks_into_errors_or_logs() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let base = echo_server().await;
    let c = client(&base);
    let mut classes = Vec::new();

    let e = c.catalog("token").await.unwrap_err();
    assert!(
        e.to_string().contains("Invalid OAuth access token ***"),
        "{e}"
    );
    assert_clean(&e, &mut classes);
    assert_clean(&c.catalog("html").await.unwrap_err(), &mut classes);
    assert_clean(&c.catalog("invalid").await.unwrap_err(), &mut classes);
    assert_clean(&c.catalog("too-large").await.unwrap_err(), &mut classes);
    let requests = json!([{"method": "UPDATE", "data": {"id": "1"}}]).to_string();
    assert_clean(
        &c.send_batch("transient", &requests, &quick(), None)
            .await
            .unwrap_err(),
        &mut classes,
    );
    assert_clean(
        &c.send_batch("throttle", &requests, &quick(), None)
            .await
            .unwrap_err(),
        &mut classes,
    );
    assert_clean(
        &c.send_batch(
            "too-large",
            &json!([{"a": 1}, {"b": 2}]).to_string(),
            &quick(),
            None,
        )
        .await
        .unwrap_err(),
        &mut classes,
    );
    assert_clean(
        &c.check_with_retry("transient", "handle", &quick(), None)
            .await
            .unwrap_err(),
        &mut classes,
    );

    // The emulator, with this token unknown, then a dropped connection and a timeout.
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let ce = client(&emu.url());
    assert_clean(
        &ce.catalog(DEFAULT_CATALOG_ID).await.unwrap_err(),
        &mut classes,
    );
    emu.add_token(TOKEN);
    emu.push_fault(Fault::DropConnection);
    assert_clean(
        &ce.catalog(DEFAULT_CATALOG_ID).await.unwrap_err(),
        &mut classes,
    );
    emu.push_fault(Fault::TokenExpired);
    assert_clean(
        &ce.send_batch(DEFAULT_CATALOG_ID, &requests, &quick(), None)
            .await
            .unwrap_err(),
        &mut classes,
    );
    assert!(!format!("{:?}", emu.requests()).contains(TOKEN));

    for class in [
        ErrorClass::TokenInvalid,
        ErrorClass::InvalidResponse,
        ErrorClass::InvalidRequest,
        ErrorClass::PayloadTooLarge,
        ErrorClass::Transient,
        ErrorClass::Throttled,
    ] {
        assert!(
            classes.contains(&class),
            "{class:?} not exercised: {classes:?}"
        );
    }
    assert!(!format!("{c:?}").contains(TOKEN));

    let logs = capture.text();
    assert!(
        logs.contains("retrying"),
        "retry attempts are logged:\n{logs}"
    );
    assert!(logs.contains("Graph API call failed"), "{logs}");
    assert!(
        logs.contains("***"),
        "echoed tokens show up scrubbed in logs"
    );
    assert!(!logs.contains(TOKEN), "token leaked into logs:\n{logs}");
    assert!(!logs.contains(APP_SECRET), "app secret leaked into logs");
}
