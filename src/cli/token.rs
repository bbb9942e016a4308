//! `tourcast token`: signs an access token to try authentication with, for
//! the gateway's HS256 secret or an RS256/ES256 key pair.

use chrono::Utc;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::auth::Secret;

/// `tourcast token`: issue a token to try authentication with.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// HS256 secret to sign with (the gateway's JWT_SECRET).
    #[arg(
        long,
        env = "JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "private_key"
    )]
    pub secret: Option<Secret>,
    /// PEM private key (RSA → RS256, EC P-256 → ES256), text or file path.
    #[arg(long)]
    pub private_key: Option<String>,
    /// Subject (`sub`): the user the token is for; its notifications
    /// channel is this user's.
    #[arg(long, default_value = "demo-user")]
    pub sub: String,
    /// Tours the token may see, comma-separated, or `*`.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub tours: Vec<String>,
    /// Lifetime, e.g. `15m`, `1h`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// Audience (`aud`), if the gateway requires one.
    #[arg(long)]
    pub audience: Option<String>,
    /// Issuer (`iss`), if the gateway requires one.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Name of the tours claim.
    #[arg(long, default_value = "tours")]
    pub tours_claim: String,
    /// Mark the token as an admin's (the `stats` channel): sets the admin
    /// claim to `true`.
    #[arg(long)]
    pub admin: bool,
    /// Name of the admin claim.
    #[arg(long, default_value = "admin")]
    pub admin_claim: String,
    /// Rooms the token may join, comma-separated, or `*` (none when absent).
    #[arg(long, value_delimiter = ',')]
    pub rooms: Vec<String>,
    /// Name of the rooms claim.
    #[arg(long, default_value = "rooms")]
    pub rooms_claim: String,
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Neither a secret nor a private key was given.
    #[error("give --secret (or JWT_SECRET) or --private-key")]
    NoKey,
    /// The private key could not be read or used.
    #[error("unusable private key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs a token for `args` (the `tourcast token` subcommand).
pub fn issue(args: &TokenArgs) -> Result<String, IssueError> {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let (key, algorithm) = match (&args.secret, &args.private_key) {
        (Some(secret), _) if !secret.0.is_empty() => (
            EncodingKey::from_secret(secret.0.as_bytes()),
            Algorithm::HS256,
        ),
        (_, Some(key)) => {
            let pem = if key.trim_start().starts_with("-----BEGIN") {
                key.clone()
            } else {
                std::fs::read_to_string(key).map_err(|e| IssueError::Key(e.to_string()))?
            };
            match EncodingKey::from_rsa_pem(pem.as_bytes()) {
                Ok(rsa) => (rsa, Algorithm::RS256),
                Err(_) => (
                    EncodingKey::from_ec_pem(pem.as_bytes())
                        .map_err(|e| IssueError::Key(e.to_string()))?,
                    Algorithm::ES256,
                ),
            }
        }
        _ => return Err(IssueError::NoKey),
    };
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), Value::String(args.sub.clone()));
    let exp = Utc::now().timestamp() + i64::try_from(args.ttl.as_secs()).unwrap_or(i64::MAX / 2);
    claims.insert("exp".into(), Value::from(exp));
    let tours = if args.tours.iter().any(|t| t == "*") {
        Value::String("*".into())
    } else {
        Value::from(args.tours.clone())
    };
    claims.insert(args.tours_claim.clone(), tours);
    if args.admin {
        claims.insert(args.admin_claim.clone(), Value::Bool(true));
    }
    if !args.rooms.is_empty() {
        let rooms = if args.rooms.iter().any(|r| r == "*") {
            Value::String("*".into())
        } else {
            Value::from(args.rooms.clone())
        };
        claims.insert(args.rooms_claim.clone(), rooms);
    }
    if let Some(audience) = &args.audience {
        claims.insert("aud".into(), Value::String(audience.clone()));
    }
    if let Some(issuer) = &args.issuer {
        claims.insert("iss".into(), Value::String(issuer.clone()));
    }
    Ok(encode(
        &Header::new(algorithm),
        &Value::Object(claims),
        &key,
    )?)
}
