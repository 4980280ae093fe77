//! The access token from AWS Secrets Manager.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use graph::AccessToken;

use crate::graph_api::{TokenError, TokenProvider};

/// Reads the token from one secret: either the plain token, or a JSON object with an
/// `access_token` (or `token`) field.
#[derive(Debug, Clone)]
pub struct SecretsManagerToken {
    client: Client,
    secret_arn: String,
}

impl SecretsManagerToken {
    /// The secret `secret_arn`, read through `client`.
    pub fn new(client: Client, secret_arn: impl Into<String>) -> Self {
        SecretsManagerToken {
            client,
            secret_arn: secret_arn.into(),
        }
    }
}

/// The token inside a secret string.
pub(crate) fn token_from_secret(secret: &str) -> Option<AccessToken> {
    let secret = secret.trim();
    if secret.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(secret).ok()?;
        let token = value
            .get("access_token")
            .or_else(|| value.get("token"))?
            .as_str()?;
        return Some(AccessToken::new(token.trim())).filter(|t| !t.expose_secret().is_empty());
    }
    (!secret.is_empty()).then(|| AccessToken::new(secret))
}

#[async_trait]
impl TokenProvider for SecretsManagerToken {
    async fn token(&self) -> Result<AccessToken, TokenError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_arn)
            .send()
            .await
            // The SDK's error names the secret and the reason; it never carries the value.
            .map_err(|err| TokenError(format!(
                "cannot read secret {}: {}; check ACCESS_TOKEN_SECRET_ARN and the function's secretsmanager:GetSecretValue permission",
                self.secret_arn,
                DisplayErrorContext(&err)
            )))?;
        out.secret_string()
            .and_then(token_from_secret)
            .ok_or_else(|| TokenError(format!(
                "secret {} holds no token; store the system-user access token as the secret's plain text (or as {{\"access_token\": \"...\"}})",
                self.secret_arn
            )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_secrets_both_work() {
        assert_eq!(
            token_from_secret(" EAAB123 \n").unwrap().expose_secret(),
            "EAAB123"
        );
        assert_eq!(
            token_from_secret(r#"{"access_token":"EAAB9"}"#)
                .unwrap()
                .expose_secret(),
            "EAAB9"
        );
        assert_eq!(
            token_from_secret(r#"{"token":"EAAB8"}"#)
                .unwrap()
                .expose_secret(),
            "EAAB8"
        );
        assert!(token_from_secret("").is_none());
        assert!(token_from_secret(r#"{"other":"x"}"#).is_none());
    }
}
