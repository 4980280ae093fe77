//! The access token from Secrets Manager (moto): read once, and read again after Meta refuses
//! it, so a rotated secret heals the sync without a redeploy.

use std::sync::Arc;
use std::time::Duration;

use graph::{GraphSettings, RetryPolicy};
use graph_emulator::{DEFAULT_CATALOG_ID, EmulatorConfig, GraphEmulator};
use sync::adapters::aws::SecretsManagerToken;
use sync::graph_api::{GraphCatalog, TokenProvider};
use sync::ports::CatalogApi;
use testkit::{MotoServer, unique_name};

const OLD: &str = "EAAB-old-token-0001-secret";
const NEW: &str = "EAAB-new-token-0002-secret";

fn requests(count: usize) -> String {
    let items: Vec<String> = (0..count)
        .map(|n| {
            format!(
                r#"{{"method":"UPDATE","data":{{"id":"R-{n}","title":"T","description":"D","availability":"in stock","condition":"new","price":"1.00 USD","link":"https://a.example/p","image_link":"https://a.example/i.jpg","brand":"B"}}}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_picked_up_after_meta_refuses_the_old_token() {
    let moto = MotoServer::shared();
    let arn = moto.create_secret(&unique_name("meta-token"), OLD).await;
    let emulator = GraphEmulator::start(EmulatorConfig {
        tokens: vec![OLD.to_owned(), NEW.to_owned()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let provider = Arc::new(SecretsManagerToken::new(moto.secrets_client(), arn.clone()));
    assert_eq!(provider.token().await.unwrap().expose_secret(), OLD);
    let settings = GraphSettings {
        base_url: emulator.url(),
        ..GraphSettings::default()
    };
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
        max_throttle_wait: Duration::from_secs(1),
    };
    let catalog = GraphCatalog::connect(settings, DEFAULT_CATALOG_ID, retry, provider)
        .await
        .unwrap();
    catalog
        .send_batch(&requests(2), None)
        .await
        .expect("the old token works at first");

    // The token is revoked on Meta's side and the secret rotated.
    emulator.revoke_token(OLD);
    moto.secrets_client()
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(NEW)
        .send()
        .await
        .unwrap();

    let chunks = catalog
        .send_batch(&requests(3), None)
        .await
        .expect("re-read the secret and retried");
    assert_eq!(chunks[0].item_count, 3);
    assert_eq!(emulator.items(DEFAULT_CATALOG_ID).len(), 3);
    let last = emulator.requests().into_iter().last().unwrap();
    assert!(
        !format!("{last:?}").contains(NEW),
        "tokens are redacted in introspection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_secret_means_the_token_error_is_returned_not_retried_forever() {
    let moto = MotoServer::shared();
    let arn = moto.create_secret(&unique_name("meta-token"), OLD).await;
    let emulator = GraphEmulator::start(EmulatorConfig {
        tokens: vec![OLD.to_owned()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let settings = GraphSettings {
        base_url: emulator.url(),
        ..GraphSettings::default()
    };
    let provider = Arc::new(SecretsManagerToken::new(moto.secrets_client(), arn));
    let catalog = GraphCatalog::connect(
        settings,
        DEFAULT_CATALOG_ID,
        RetryPolicy::default(),
        provider,
    )
    .await
    .unwrap();
    emulator.revoke_token(OLD);
    let error = catalog.preflight().await.expect_err("refused");
    assert_eq!(error.class(), graph::ErrorClass::TokenInvalid);
    assert!(!error.to_string().contains(OLD));
    assert_eq!(
        emulator.requests().len(),
        1,
        "one call; the unchanged secret is not a reason to retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_a_clear_error_naming_the_variable() {
    let moto = MotoServer::shared();
    let provider = SecretsManagerToken::new(
        moto.secrets_client(),
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf",
    );
    let error = provider.token().await.expect_err("no such secret");
    assert!(
        error.to_string().contains("ACCESS_TOKEN_SECRET_ARN"),
        "{error}"
    );
}
