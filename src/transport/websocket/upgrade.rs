//! The upgrade (RFC 6455 §4.2): telling a WebSocket handshake from a plain
//! request, answering it with `101 Switching Protocols` (the chosen
//! subprotocol and, when offered, permessage-deflate), and handing the
//! upgraded connection to whoever serves it.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

use super::deflate::{self, Agreement};
use super::{Settings, WebSocketTransport};

/// The connection type an upgrade yields.
pub type UpgradedIo = TokioIo<Upgraded>;

/// A WebSocket handshake, checked, not yet answered.
pub struct UpgradeRequest {
    key: HeaderValue,
    protocols: Vec<String>,
    deflate: Option<Agreement>,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAnUpgrade {
    /// Not a `GET`.
    #[error("a WebSocket handshake is a GET")]
    Method,
    /// No `Connection: upgrade` and `Upgrade: websocket`.
    #[error("not a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)")]
    Headers,
    /// A version other than 13.
    #[error("Sec-WebSocket-Version must be 13")]
    Version,
    /// No `Sec-WebSocket-Key`.
    #[error("Sec-WebSocket-Key is missing")]
    Key,
    /// The connection cannot be upgraded (not served with upgrades).
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl UpgradeRequest {
    /// Checks `request` for a WebSocket handshake and takes its upgrade.
    pub fn from_request(request: &mut Request<Body>) -> Result<Self, NotAnUpgrade> {
        if request.method() != Method::GET {
            return Err(NotAnUpgrade::Method);
        }
        let headers = request.headers();
        if !has_token(headers, header::CONNECTION, "upgrade")
            || !has_token(headers, header::UPGRADE, "websocket")
        {
            return Err(NotAnUpgrade::Headers);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return Err(NotAnUpgrade::Version);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(NotAnUpgrade::Key)?;
        let protocols = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let deflate = deflate::negotiate(
            headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let on_upgrade = request
            .extensions_mut()
            .remove::<OnUpgrade>()
            .ok_or(NotAnUpgrade::NotUpgradable)?;
        Ok(UpgradeRequest {
            key,
            protocols,
            deflate,
            on_upgrade,
        })
    }

    /// The subprotocols the client offers, in its order.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().map(String::as_str)
    }

    /// Answers `101`, with `protocol` and permessage-deflate when offered
    /// and enabled, and runs `serve`'s future on the upgraded connection
    /// as a task of its own.
    pub fn accept<F, Fut>(
        self,
        protocol: Option<&'static str>,
        settings: Arc<Settings>,
        serve: F,
    ) -> Response<Body>
    where
        F: FnOnce(WebSocketTransport<UpgradedIo>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let deflate = self.deflate.filter(|_| settings.compression.is_some());
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        if let Some(agreement) = deflate
            && let Ok(value) = HeaderValue::from_str(&agreement.response_header())
        {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
        let on_upgrade = self.on_upgrade;
        // The connection's task is spawned once the upgrade is done, rather
        // than awaited here: a future that awaited it would keep `serve`'s
        // captures (the session's parts, moved out already) and the
        // upgrade's result beside the session for the connection's whole
        // life, some 400 bytes per idle connection.
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    tokio::spawn(serve(WebSocketTransport::new(
                        TokioIo::new(upgraded),
                        settings,
                        deflate,
                    )));
                }
                Err(error) => tracing::debug!(%error, "upgrade failed"),
            }
        });
        response
    }
}

/// Whether the comma-separated header `name` lists `token` (any case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
