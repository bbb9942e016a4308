//! Authentication and per-tour permissions.
//!
//! Off unless a key is configured. With `JWT_SECRET` tokens are HS256; with
//! `JWT_PUBLIC_KEY` (PEM) they are RS256 or ES256, by the key's type. Exactly
//! one algorithm is accepted, so `alg: none` and HS/RS confusion (an HS256
//! token "signed" with the public key) are refused by construction. Tokens
//! come from `Authorization: Bearer …` or `?token=` (browsers cannot set
//! headers on a WebSocket). Refusals carry no detail; the reason is logged
//! at debug level, and the token itself never is.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, TimeZone as _, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::Value;

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// What a token allows: every tour, or a set of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissions {
    /// Every tour (no auth, or a `"*"` claim).
    All,
    /// Only these tours.
    Tours(BTreeSet<String>),
}

impl Permissions {
    /// Whether events and snapshots of `tour_id` may be sent.
    pub fn allows(&self, tour_id: &str) -> bool {
        match self {
            Permissions::All => true,
            Permissions::Tours(tours) => tours.contains(tour_id),
        }
    }
}

/// Which rooms a connection may join and publish to: its token's `rooms`
/// claim (a list, or `"*"`), or every room under `--rooms-open` without JWT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoomGrant {
    /// No room (no claim, or JWT off without `--rooms-open`).
    #[default]
    None,
    /// Every room.
    All,
    /// Only these rooms.
    Only(BTreeSet<String>),
}

impl RoomGrant {
    /// Whether `room` may be joined.
    pub fn allows(&self, room: &str) -> bool {
        match self {
            RoomGrant::None => false,
            RoomGrant::All => true,
            RoomGrant::Only(rooms) => rooms.contains(room),
        }
    }
}

/// Who a connection is and what it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`, for logs; `None` without auth.
    pub subject: Option<String>,
    /// Tours it may receive.
    pub permissions: Permissions,
    /// When its token expires; `None` without auth.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it may see admin channels (`stats`): its token carries the
    /// admin claim, or auth is off and the gateway runs with `--admin-open`.
    pub admin: bool,
    /// Rooms it may join.
    pub rooms: RoomGrant,
}

impl Identity {
    /// The identity of every connection when auth is off.
    pub fn anonymous() -> Self {
        Identity {
            subject: None,
            permissions: Permissions::All,
            expires_at: None,
            admin: false,
            rooms: RoomGrant::None,
        }
    }
}

/// Why a token was refused (logged at debug level, never sent to clients).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token in the header or query.
    #[error("no token")]
    Missing,
    /// The token failed verification.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The token verified but its claims are unusable.
    #[error("unusable claims: {0}")]
    Claims(String),
}

/// The configured key is unusable (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Both a secret and a public key were configured.
    #[error("set JWT_SECRET or JWT_PUBLIC_KEY, not both")]
    Both,
    /// The public key is neither an RSA nor an EC PEM key.
    #[error("JWT_PUBLIC_KEY is not an RSA or EC public key in PEM: {0}")]
    BadPem(String),
    /// The public key file could not be read.
    #[error("cannot read JWT_PUBLIC_KEY file {path}: {source}")]
    Unreadable {
        /// The path given.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// Settings of the verifier.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// HS256 shared secret.
    pub secret: Secret,
    /// RS256/ES256 public key: PEM text, or a path to a PEM file.
    pub public_key: Option<String>,
    /// Required `aud`, if any.
    pub audience: Option<String>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// The claim listing the tours a token may see (`["tour_paris"]` or `"*"`).
    pub tours_claim: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (`JWT_LEEWAY`).
    pub leeway: std::time::Duration,
    /// The claim that marks an admin token when it is `true` (`"admin"` when empty).
    pub admin_claim: String,
    /// With auth off, treat every connection as an admin (`--admin-open`):
    /// anyone who can reach the port then sees the `stats` channel.
    pub admin_open: bool,
    /// The claim listing the rooms a token may join (`"rooms"` when empty).
    pub rooms_claim: String,
    /// With auth off, let every connection join any room (`--rooms-open`):
    /// anyone who can reach the port may then read and post in any room,
    /// under a name (`clientId`) that nobody vouches for.
    pub rooms_open: bool,
}

/// Verifies tokens; `None` inside means auth is off.
pub struct Authenticator {
    verifier: Option<(DecodingKey, Validation)>,
    tours_claim: String,
    admin_claim: String,
    admin_open: bool,
    rooms_claim: String,
    rooms_open: bool,
    leeway_secs: i64,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: i64,
    /// Issued at: a token from the future is refused (a signer's broken
    /// clock, or a token minted ahead to outlive a revocation).
    iat: Option<i64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl Authenticator {
    /// Builds the verifier from configuration (auth off when no key is set).
    pub fn new(config: &AuthConfig) -> Result<Self, KeyError> {
        let public_key = config
            .public_key
            .as_deref()
            .filter(|k| !k.trim().is_empty());
        let verifier = match (config.secret.0.is_empty(), public_key) {
            (false, Some(_)) => return Err(KeyError::Both),
            (true, None) => None,
            (false, None) => Some((
                DecodingKey::from_secret(config.secret.0.as_bytes()),
                Algorithm::HS256,
            )),
            (true, Some(key)) => Some(public_key_of(key)?),
        };
        let verifier = verifier.map(|(key, algorithm)| {
            // One algorithm only: the token's own `alg` header never chooses.
            let mut validation = Validation::new(algorithm);
            validation.leeway = config.leeway.as_secs();
            // `nbf` is checked when present (jsonwebtoken skips it by default).
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp"]);
            match &config.audience {
                Some(audience) => validation.set_audience(&[audience]),
                None => validation.validate_aud = false,
            }
            if let Some(issuer) = &config.issuer {
                validation.set_issuer(&[issuer]);
            }
            (key, validation)
        });
        Ok(Authenticator {
            verifier,
            leeway_secs: i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX),
            tours_claim: if config.tours_claim.is_empty() {
                "tours".into()
            } else {
                config.tours_claim.clone()
            },
            admin_claim: if config.admin_claim.is_empty() {
                "admin".into()
            } else {
                config.admin_claim.clone()
            },
            admin_open: config.admin_open,
            rooms_claim: if config.rooms_claim.is_empty() {
                "rooms".into()
            } else {
                config.rooms_claim.clone()
            },
            rooms_open: config.rooms_open,
        })
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// The identity for a connection presenting `token`.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let Some((key, validation)) = &self.verifier else {
            return Ok(Identity {
                admin: self.admin_open,
                rooms: if self.rooms_open {
                    RoomGrant::All
                } else {
                    RoomGrant::None
                },
                ..Identity::anonymous()
            });
        };
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let claims = decode::<Claims>(token, key, validation)?.claims;
        if let Some(iat) = claims.iat
            && iat > Utc::now().timestamp().saturating_add(self.leeway_secs)
        {
            return Err(AuthError::Claims("iat is in the future".into()));
        }
        let expires_at = Utc
            .timestamp_opt(claims.exp, 0)
            .single()
            .ok_or_else(|| AuthError::Claims("exp out of range".into()))?;
        // No claim grants nothing (deny by default).
        let permissions = match named(&claims, &self.tours_claim, "tour ids")? {
            Named::All => Permissions::All,
            Named::Only(tours) => Permissions::Tours(tours),
            Named::Absent => Permissions::Tours(BTreeSet::new()),
        };
        // Only a literal `true` makes an admin: "true", 1 or "yes" do not.
        let admin = claims.rest.get(&self.admin_claim) == Some(&Value::Bool(true));
        let rooms = match named(&claims, &self.rooms_claim, "room names")? {
            Named::All => RoomGrant::All,
            Named::Only(rooms) => RoomGrant::Only(rooms),
            Named::Absent => RoomGrant::None,
        };
        Ok(Identity {
            rooms,
            // An empty `sub` names nobody: such a token has no notifications.
            subject: claims.sub.filter(|sub| !sub.is_empty()),
            permissions,
            expires_at: Some(expires_at),
            admin,
        })
    }
}

/// What a claim that names things (tours, rooms) grants.
enum Named {
    /// `"*"`, or a list holding `"*"`.
    All,
    /// A list of names.
    Only(BTreeSet<String>),
    /// No such claim.
    Absent,
}

/// Reads `claim` as `"*"` or a list of names; anything else is refused.
fn named(claims: &Claims, claim: &str, what: &str) -> Result<Named, AuthError> {
    match claims.rest.get(claim) {
        None => Ok(Named::Absent),
        Some(Value::String(star)) if star == "*" => Ok(Named::All),
        Some(Value::Array(items)) if items.iter().any(|i| i == "*") => Ok(Named::All),
        Some(Value::Array(items)) => Ok(Named::Only(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        )),
        Some(_) => Err(AuthError::Claims(format!(
            "`{claim}` must be \"*\" or a list of {what}"
        ))),
    }
}

fn public_key_of(key: &str) -> Result<(DecodingKey, Algorithm), KeyError> {
    let pem = if key.trim_start().starts_with("-----BEGIN") {
        key.to_string()
    } else {
        std::fs::read_to_string(key).map_err(|source| KeyError::Unreadable {
            path: key.to_string(),
            source,
        })?
    };
    if let Ok(rsa) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((rsa, Algorithm::RS256));
    }
    DecodingKey::from_ec_pem(pem.as_bytes())
        .map(|ec| (ec, Algorithm::ES256))
        .map_err(|e| KeyError::BadPem(e.to_string()))
}

/// The token a handshake presents: the `Authorization: Bearer` header, else `?token=`.
pub fn token_from(authorization: Option<&str>, query_token: Option<&str>) -> Option<String> {
    authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or(query_token)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn hs(secret: &str) -> Authenticator {
        Authenticator::new(&AuthConfig {
            secret: Secret(secret.into()),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn tours_claim_becomes_permissions() {
        let auth = hs("s3cret");
        let exp = Utc::now().timestamp() + 60;
        let id = auth
            .authenticate(Some(&token(
                json!({"sub": "u1", "exp": exp, "tours": ["tour_paris"]}),
                "s3cret",
            )))
            .unwrap();
        assert_eq!(id.subject.as_deref(), Some("u1"));
        assert!(id.permissions.allows("tour_paris") && !id.permissions.allows("tour_rome"));
        let all = auth
            .authenticate(Some(&token(json!({"exp": exp, "tours": "*"}), "s3cret")))
            .unwrap();
        assert_eq!(all.permissions, Permissions::All);
    }

    #[test]
    fn rooms_claim_becomes_a_room_grant() {
        let auth = hs("s3cret");
        let exp = Utc::now().timestamp() + 60;
        let grant = |claims: Value| {
            auth.authenticate(Some(&token(claims, "s3cret")))
                .map(|id| id.rooms)
        };
        let listed = grant(json!({"sub": "u1", "exp": exp, "rooms": ["support_42"]})).unwrap();
        assert!(listed.allows("support_42") && !listed.allows("support_43"));
        assert_eq!(
            grant(json!({"exp": exp, "rooms": "*"})).unwrap(),
            RoomGrant::All
        );
        assert_eq!(grant(json!({"exp": exp})).unwrap(), RoomGrant::None);
        assert!(grant(json!({"exp": exp, "rooms": 7})).is_err());
        // JWT off: no room unless the gateway runs with --rooms-open.
        let closed = Authenticator::new(&AuthConfig::default()).unwrap();
        assert_eq!(closed.authenticate(None).unwrap().rooms, RoomGrant::None);
        let open = Authenticator::new(&AuthConfig {
            rooms_open: true,
            ..AuthConfig::default()
        })
        .unwrap();
        assert_eq!(open.authenticate(None).unwrap().rooms, RoomGrant::All);
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "<redacted>");
    }

    #[test]
    fn bearer_header_wins_over_query() {
        assert_eq!(
            token_from(Some("Bearer abc"), Some("q")).as_deref(),
            Some("abc")
        );
        assert_eq!(token_from(None, Some("q")).as_deref(), Some("q"));
        assert_eq!(token_from(Some("Basic xyz"), None), None);
    }
}
