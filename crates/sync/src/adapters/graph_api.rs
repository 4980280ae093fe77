//! [`CatalogApi`] over the Graph API client, with the token re-read after Meta refuses it.

use std::sync::Arc;

use async_trait::async_trait;
use graph::{
    AccessToken, BatchStatus, CallCounts, CatalogInfo, ErrorClass, GraphClient, GraphError,
    PartialSend, RetryPolicy, SentChunk,
};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::ports::CatalogApi;
pub use crate::ports::{TokenError, TokenProvider};

/// A token given up front (`META_ACCESS_TOKEN`), never re-read.
#[derive(Debug, Clone)]
pub struct StaticToken(pub AccessToken);

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<AccessToken, TokenError> {
        Ok(self.0.clone())
    }
}

/// Meta's catalog through one [`GraphClient`].
///
/// The token is read once per container (at build time); after a token-invalid answer it is
/// read again, and if it changed (the secret was rotated) the call is retried once.
pub struct GraphCatalog {
    client: GraphClient,
    catalog_id: String,
    retry: RetryPolicy,
    provider: Arc<dyn TokenProvider>,
    current: Mutex<AccessToken>,
}

impl GraphCatalog {
    /// Reads the token and builds the client.
    pub async fn connect(
        settings: graph::GraphSettings,
        catalog_id: impl Into<String>,
        retry: RetryPolicy,
        provider: Arc<dyn TokenProvider>,
    ) -> Result<Self, ConnectError> {
        let token = provider.token().await.map_err(ConnectError::Token)?;
        let client = GraphClient::new(settings, token.clone()).map_err(ConnectError::Graph)?;
        Ok(GraphCatalog {
            client,
            catalog_id: catalog_id.into(),
            retry,
            provider,
            current: Mutex::new(token),
        })
    }

    /// Re-reads the token; true if it changed and the client now uses the new one.
    async fn refresh_token(&self) -> bool {
        let fresh = match self.provider.token().await {
            Ok(token) => token,
            Err(error) => {
                warn!(%error, "could not re-read the access token");
                return false;
            }
        };
        let mut current = self.current.lock().await;
        if fresh.expose_secret() == current.expose_secret() {
            return false;
        }
        info!("the access token changed since it was read; retrying with the new one");
        self.client.replace_token(fresh.clone());
        *current = fresh;
        true
    }

    /// Runs `call`, and once more after a token refresh if Meta refused the token.
    async fn with_fresh_token<T, F, Fut>(&self, call: F) -> Result<T, GraphError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, GraphError>>,
    {
        match call().await {
            Err(error)
                if error.class() == ErrorClass::TokenInvalid && self.refresh_token().await =>
            {
                call().await
            }
            other => other,
        }
    }
}

/// Building the catalog adapter failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The token could not be read.
    #[error("access token: {0}")]
    Token(TokenError),
    /// The client could not be built (bad settings).
    #[error(transparent)]
    Graph(GraphError),
}

#[async_trait]
impl CatalogApi for GraphCatalog {
    fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    async fn send_batch(
        &self,
        requests_json: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<SentChunk>, PartialSend> {
        let send = || {
            self.client
                .send_batch_keeping(&self.catalog_id, requests_json, &self.retry, deadline)
        };
        match send().await {
            // A refused token refuses the first call, so nothing was accepted yet.
            Err(partial)
                if partial.accepted.is_empty()
                    && partial.error.class() == ErrorClass::TokenInvalid
                    && self.refresh_token().await =>
            {
                send().await
            }
            other => other,
        }
    }

    async fn check_status(
        &self,
        handle: &str,
        deadline: Option<Instant>,
    ) -> Result<BatchStatus, GraphError> {
        self.with_fresh_token(|| {
            self.client
                .check_with_retry(&self.catalog_id, handle, &self.retry, deadline)
        })
        .await
    }

    async fn preflight(&self) -> Result<CatalogInfo, GraphError> {
        self.with_fresh_token(|| self.client.catalog(&self.catalog_id))
            .await
    }

    fn call_counts(&self) -> CallCounts {
        self.client.call_counts()
    }
}
