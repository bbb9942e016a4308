//! The WebSocket endpoint: everything decided before the upgrade.
//!
//! The [`admission`](super::admission) checks, with the encoding as this
//! transport's own (subprotocol `tourcast.v1.json` / `tourcast.v1.proto`,
//! or `?encoding=`; 400 when unsupported). Only then is the connection
//! upgraded (with permessage-deflate when the client offers it, see
//! [`websocket`](crate::transport::websocket)) and served by a [`Session`].

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;
use super::admission::{admit, refuse};
use super::session::Session;
use crate::protocol::codec::Encoding;
use crate::transport::websocket::upgrade::UpgradeRequest;

/// Subprotocol naming the JSON encoding.
pub const JSON_SUBPROTOCOL: &str = "tourcast.v1.json";
/// Subprotocol naming the protobuf encoding.
pub const PROTO_SUBPROTOCOL: &str = "tourcast.v1.proto";

/// `GET /ws`: the WebSocket endpoint.
pub async fn upgrade(
    Query(params): Query<HashMap<String, String>>,
    ConnectInfo(tcp): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
    mut request: Request,
) -> Response {
    match UpgradeRequest::from_request(&mut request) {
        Ok(upgrade) => accept(upgrade, &request, &params, tcp, state),
        Err(not) => refuse(
            "not_an_upgrade",
            StatusCode::BAD_REQUEST,
            "invalid_message",
            &not.to_string(),
        ),
    }
}

/// `GET /`: the WebSocket endpoint for old clients, or a landing page for browsers.
pub async fn upgrade_or_index(
    Query(params): Query<HashMap<String, String>>,
    ConnectInfo(tcp): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
    mut request: Request,
) -> Response {
    match UpgradeRequest::from_request(&mut request) {
        Ok(upgrade) => accept(upgrade, &request, &params, tcp, state),
        Err(_) => super::dashboard::index_response(request.headers()),
    }
}

fn accept(
    upgrade: UpgradeRequest,
    request: &Request,
    params: &HashMap<String, String>,
    tcp: SocketAddr,
    state: AppState,
) -> Response {
    let admission = admit(&state, request.headers(), params, tcp, |_| {
        negotiate(&upgrade, params).map_err(|message| {
            Box::new(refuse(
                "encoding",
                StatusCode::BAD_REQUEST,
                "unsupported_encoding",
                &message,
            ))
        })
    });
    let (admitted, (encoding, subprotocol)) = match admission {
        Ok(admission) => admission,
        Err(refusal) => return *refusal,
    };
    let settings = state.websocket.clone();
    let tasks = state.tasks.clone();
    upgrade.accept(subprotocol, settings, move |transport| {
        tasks.track_future(Session::start(state, transport, encoding, admitted).run())
    })
}

/// Picks the encoding: the first subprotocol the client offers that we
/// speak, else `?encoding=`, else JSON.
fn negotiate(
    upgrade: &UpgradeRequest,
    params: &HashMap<String, String>,
) -> Result<(Encoding, Option<&'static str>), String> {
    let offered: Vec<&str> = upgrade.protocols().collect();
    if !offered.is_empty() {
        return offered
            .iter()
            .find_map(|p| match *p {
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
