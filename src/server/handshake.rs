//! The WebSocket handshake: everything decided before the upgrade.
//!
//! In order: the Origin allow-list (403; exact matches only), the access token when auth is on
//! (401, with no detail), the encoding (subprotocol `tourcast.v1.json` /
//! `tourcast.v1.proto`, or `?encoding=`; 400 when unsupported), and the
//! connection caps (503 when the server is full, 429 when this IP holds too
//! many). Only then is the connection upgraded, with buffers sized for small
//! messages. Every refusal is counted by reason. "This IP" is the client's
//! address: the TCP peer's, or the one a trusted proxy forwarded
//! ([`forwarded`](super::forwarded)); log lines name the same.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::connection::Handler;
use super::limits::Refusal;
use crate::auth::token_from;
use crate::protocol::codec::Encoding;
use crate::telemetry::{HANDSHAKE_REFUSALS, LogThrottle};

/// Subprotocol naming the JSON encoding.
pub const JSON_SUBPROTOCOL: &str = "tourcast.v1.json";
/// Subprotocol naming the protobuf encoding.
pub const PROTO_SUBPROTOCOL: &str = "tourcast.v1.proto";

/// tungstenite's default read buffer is 128 KiB per connection, far more
/// than client messages need; this keeps idle connections small. It is
/// allocated and zero-filled on the first read, so every byte is resident:
/// 4 KiB measured 3 KiB more per idle connection than 1 KiB (BENCHMARKS.md).
/// Client messages are ~100 bytes; a larger frame grows the buffer to fit
/// (bounded by the frame limit).
const READ_BUFFER_BYTES: usize = 1024;
/// Outgoing frames are batched up to this size before a write.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// Refusal log lines, at most one per reason per second: an attack makes
/// thousands a second. `suppressed` on a line counts those held back since
/// the previous one; `tourcast_handshake_refusals_total` counts every one.
static ORIGIN_LOG: LogThrottle = LogThrottle::per_millis(1000);
static UNAUTHORIZED_LOG: LogThrottle = LogThrottle::per_millis(1000);
static CAPACITY_LOG: LogThrottle = LogThrottle::per_millis(1000);
static IP_LIMIT_LOG: LogThrottle = LogThrottle::per_millis(1000);

/// `GET /ws`: the WebSocket endpoint.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    ConnectInfo(tcp): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
) -> Response {
    accept(ws, &headers, &params, tcp, state)
}

/// `GET /`: the WebSocket endpoint for old clients, or a landing page for browsers.
pub async fn upgrade_or_index(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    ConnectInfo(tcp): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
) -> Response {
    match ws {
        Ok(ws) => accept(ws, &headers, &params, tcp, state),
        Err(_) => super::dashboard::index_response(&headers),
    }
}

fn accept(
    ws: WebSocketUpgrade,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    tcp: SocketAddr,
    state: AppState,
) -> Response {
    let peer = state.settings.trusted_proxies.peer(tcp, headers);
    if let Err(origin) = check_origin(headers, &state.settings.allowed_origins) {
        if let Some(suppressed) = ORIGIN_LOG.admit() {
            tracing::info!(%peer, origin, suppressed, "handshake refused: origin not allowed");
        }
        return refuse(
            "origin",
            StatusCode::FORBIDDEN,
            "forbidden",
            "origin not allowed",
        );
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
            return refuse(
                "unauthorized",
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid access token is required",
            );
        }
    };
    let (encoding, subprotocol) = match negotiate(&ws, params) {
        Ok(choice) => choice,
        Err(message) => {
            return refuse(
                "encoding",
                StatusCode::BAD_REQUEST,
                "unsupported_encoding",
                &message,
            );
        }
    };
    if !state.source.caught_up() {
        // Still replaying the stream (or never reached the broker): the
        // state is partial, and must not be served as current. Clients
        // back off and retry; a load balancer's /ready check says the same.
        return refuse_with_retry(
            "not_ready",
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "catching up with the event stream; retry shortly",
        );
    }
    let slot = match state.connections.try_acquire(peer.client) {
        Ok(slot) => slot,
        Err(Refusal::Full) => {
            if let Some(suppressed) = CAPACITY_LOG.admit() {
                tracing::warn!(%peer, suppressed, "handshake refused: connection limit reached");
            }
            return refuse(
                "capacity",
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "connection limit reached; retry later",
            );
        }
        Err(Refusal::TooManyFromIp) => {
            if let Some(suppressed) = IP_LIMIT_LOG.admit() {
                tracing::info!(
                    %peer,
                    suppressed,
                    "handshake refused: too many connections from this address"
                );
            }
            return refuse(
                "ip_limit",
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many connections from this address",
            );
        }
    };

    let mut ws = ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(state.settings.max_frame_bytes)
        .max_frame_size(state.settings.max_frame_bytes);
    if let Some(protocol) = subprotocol {
        ws.set_selected_protocol(HeaderValue::from_static(protocol));
    }
    let tasks = state.tasks.clone();
    ws.on_failed_upgrade(move |error| tracing::debug!(%peer, %error, "upgrade failed"))
        .on_upgrade(move |socket| {
            tasks.track_future(
                Box::new(Handler::new(state, socket, encoding, peer, identity, slot)).run(),
            )
        })
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

/// Picks the encoding: the first subprotocol the client offers that we
/// speak, else `?encoding=`, else JSON.
fn negotiate(
    ws: &WebSocketUpgrade,
    params: &HashMap<String, String>,
) -> Result<(Encoding, Option<&'static str>), String> {
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .map(|p| p.trim().to_string())
        .collect();
    if !offered.is_empty() {
        return offered
            .iter()
            .find_map(|p| match p.as_str() {
                JSON_SUBPROTOCOL => Some((Encoding::Json, Some(JSON_SUBPROTOCOL))),
                PROTO_SUBPROTOCOL => Some((Encoding::Proto, Some(PROTO_SUBPROTOCOL))),
                _ => None,
            })
            .ok_or_else(|| {
                format!("unsupported subprotocol; offer {JSON_SUBPROTOCOL} or {PROTO_SUBPROTOCOL}")
            });
    }
    match params.get("encoding").map(String::as_str) {
        None | Some("json") => Ok((Encoding::Json, None)),
        Some("proto") | Some("protobuf") => Ok((Encoding::Proto, None)),
        Some(_) => Err("unsupported encoding; use encoding=json or encoding=proto".into()),
    }
}

/// Like [`refuse`], telling the client when to try again.
fn refuse_with_retry(
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
fn refuse(reason: &'static str, status: StatusCode, code: &str, message: &str) -> Response {
    metrics::counter!(HANDSHAKE_REFUSALS, "reason" => reason).increment(1);
    (
        status,
        Json(json!({ "type": "error", "code": code, "message": message })),
    )
        .into_response()
}
