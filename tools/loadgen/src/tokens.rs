//! Access tokens for a gateway with `--jwt-secret`: HS256, claims `sub`,
//! `exp`, `tours: "*"` and, for admins, `admin: true`, presented as
//! `?token=` (as browsers do).

use std::time::Duration;

use anyhow::{Context as _, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

/// How long the tokens live: longer than any bounded run.
const LIFETIME: Duration = Duration::from_secs(3600);

/// Signs tokens with the gateway's HS256 secret.
pub(crate) struct Tokens {
    key: EncodingKey,
}

impl Tokens {
    pub(crate) fn new(secret: &str) -> Self {
        Tokens {
            key: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for user `sub`, allowed every tour; an admin's if `admin`.
    pub(crate) fn sign(&self, sub: &str, admin: bool) -> Result<String> {
        let exp = chrono::Utc::now().timestamp() + LIFETIME.as_secs() as i64;
        let mut claims = json!({"sub": sub, "exp": exp, "tours": "*"});
        if admin {
            claims["admin"] = json!(true);
        }
        encode(&Header::new(Algorithm::HS256), &claims, &self.key).context("signing a token")
    }
}

/// `url` with the token in its query. HS256 tokens are URL-safe base64
/// and dots, so they need no escaping.
pub(crate) fn with_token(url: &str, token: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[test]
    fn tokens_carry_the_user_every_tour_and_the_admin_claim_only_when_asked() {
        let tokens = Tokens::new("s3cret");
        let decoding = DecodingKey::from_secret(b"s3cret");
        let validation = Validation::new(Algorithm::HS256);
        let user = decode::<serde_json::Value>(
            &tokens.sign("alice", false).unwrap(),
            &decoding,
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(user["sub"], "alice");
        assert_eq!(user["tours"], "*");
        assert!(user.get("admin").is_none());
        let admin = decode::<serde_json::Value>(
            &tokens.sign("root", true).unwrap(),
            &decoding,
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(admin["admin"], true);
    }

    #[test]
    fn the_token_goes_in_the_query() {
        assert_eq!(
            with_token("ws://127.0.0.1:1/ws", "a.b.c"),
            "ws://127.0.0.1:1/ws?token=a.b.c"
        );
        assert_eq!(
            with_token("ws://127.0.0.1:1/ws?format=json", "a.b.c"),
            "ws://127.0.0.1:1/ws?format=json&token=a.b.c"
        );
    }
}
