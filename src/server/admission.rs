//! Admission: the checks every connection passes before it is served,
//! whichever transport it asks for ([`handshake`](super::handshake) for
//! WebSocket, [`sse`](super::sse)).
//!
//! In order: the Origin allow-list (403; exact matches only), the access
//! token when auth is on (401, with no detail), the transport's own checks
//! (the encoding; the subscriptions an event stream asks for), readiness
//! (503 while the state is partial), and the connection caps (503 when the
//! server is full, 429 when this IP holds too many). Every refusal is an
//! HTTP status with a JSON body in the protocol's error shape, and is
//! counted by reason. "This IP" is the client's address: the TCP peer's, or
//! the one a trusted proxy forwarded ([`forwarded`](super::forwarded)); log
//! lines name the same.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::forwarded::Peer;
use super::limits::{self, ConnectionSlot};
use crate::auth::{Identity, token_from};
use crate::telemetry::{HANDSHAKE_REFUSALS, LogThrottle};

/// Refusal log lines, at most one per reason per second: an attack makes
/// thousands a second. `suppressed` on a line counts those held back since
/// the previous one; `tourcast_handshake_refusals_total` counts every one.
static ORIGIN_LOG: LogThrottle = LogThrottle::per_millis(1000);
static UNAUTHORIZED_LOG: LogThrottle = LogThrottle::per_millis(1000);
static CAPACITY_LOG: LogThrottle = LogThrottle::per_millis(1000);
static IP_LIMIT_LOG: LogThrottle = LogThrottle::per_millis(1000);

/// A refused connection's answer (boxed: a `Response` is large, and
/// refusals are the uncommon path).
pub type Refusal = Box<Response>;

/// A connection let in: who it is, and its place under the caps (held
/// until it ends).
pub struct Admitted {
    /// The client's address.
    pub peer: Peer,
    /// Who the client is and what it may see.
    pub identity: Identity,
    /// Its place under the connection caps.
    pub slot: ConnectionSlot,
}

/// Runs the admission checks; `transport_check` is the transport's own
/// (after the token, before readiness and the caps), and what it returns
/// comes back beside the admission.
pub fn admit<T>(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    tcp: SocketAddr,
    transport_check: impl FnOnce(&Identity) -> Result<T, Refusal>,
) -> Result<(Admitted, T), Refusal> {
    let peer = state.settings.trusted_proxies.peer(tcp, headers);
    if let Err(origin) = check_origin(headers, &state.settings.allowed_origins) {
        if let Some(suppressed) = ORIGIN_LOG.admit() {
            tracing::info!(%peer, origin, suppressed, "handshake refused: origin not allowed");
        }
        return Err(Box::new(refuse(
            "origin",
            StatusCode::FORBIDDEN,
            "forbidden",
            "origin not allowed",
        )));
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let token = token_from(authorization, params.get("token").map(String::as_str));
    let identity = match state.auth.authenticate(token.as_deref()) {
        Ok(identity) => identity,
        Err(error) => {
            // The reason stays in the log (never the token); the client learns nothing.
            if let Some(suppressed) = UNAUTHORIZED_LOG.admit() {
                tracing::info!(%peer, reason = %error, suppressed, "handshake refused: unauthorized");
            }
            return Err(Box::new(refuse(
                "unauthorized",
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid access token is required",
            )));
        }
    };
    let checked = transport_check(&identity)?;
    if !state.source.caught_up() {
        // Still replaying the stream (or never reached the broker): the
        // state is partial, and must not be served as current. Clients
        // back off and retry; a load balancer's /ready check says the same.
        return Err(Box::new(refuse_with_retry(
            "not_ready",
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "catching up with the event stream; retry shortly",
        )));
    }
    let slot = match state.connections.try_acquire(peer.client) {
        Ok(slot) => slot,
        Err(limits::Refusal::Full) => {
            if let Some(suppressed) = CAPACITY_LOG.admit() {
                tracing::warn!(%peer, suppressed, "handshake refused: connection limit reached");
            }
            return Err(Box::new(refuse(
                "capacity",
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "connection limit reached; retry later",
            )));
        }
        Err(limits::Refusal::TooManyFromIp) => {
            if let Some(suppressed) = IP_LIMIT_LOG.admit() {
                tracing::info!(
                    %peer,
                    suppressed,
                    "handshake refused: too many connections from this address"
                );
            }
            return Err(Box::new(refuse(
                "ip_limit",
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many connections from this address",
            )));
        }
    };
    Ok((
        Admitted {
            peer,
            identity,
            slot,
        },
        checked,
    ))
}

/// Checks the `Origin` header against the allow-list. Clients that send no
/// Origin are not browsers, which the allow-list exists to protect. With a
/// list set, only the listed origins pass: the `Host` header proves nothing
/// (a DNS-rebinding page sends Origin and Host both `evil.com`), so the
/// dashboard's own origin is listed too, through `PUBLIC_URL`. Two Origin
/// headers are refused: which one a proxy or the browser meant is unknowable.
fn check_origin<'h>(headers: &'h HeaderMap, allowed: &[String]) -> Result<(), &'h str> {
    if allowed.is_empty() {
        return Ok(());
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let Some(origin) = origins.next() else {
        return Ok(());
    };
    if origins.next().is_some() {
        return Err("<several Origin headers>");
    }
    let origin = origin.to_str().unwrap_or("<non-ascii>");
    let normalized = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(normalized)) {
        Ok(())
    } else {
        Err(origin)
    }
}

/// Like [`refuse`], telling the client when to try again.
pub fn refuse_with_retry(
    reason: &'static str,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    let mut response = refuse(reason, status, code, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A refused handshake: an HTTP status with a JSON body in the protocol's error shape.
pub fn refuse(reason: &'static str, status: StatusCode, code: &str, message: &str) -> Response {
    metrics::counter!(HANDSHAKE_REFUSALS, "reason" => reason).increment(1);
    (
        status,
        Json(json!({ "type": "error", "code": code, "message": message })),
    )
        .into_response()
}
