//! `GET /sse`: the Server-Sent Events endpoint, for networks that refuse
//! WebSocket upgrades and for read-only pages.
//!
//! The subscriptions come in the query, and become the session's opening
//! commands: `tours=tour_paris,tour_rome` (or `tours=*`),
//! `channels=notifications,stats`, `viewers=1` (each named tour's viewer
//! count). Neither parameter given: every tour, as `tours=*`, for a page's
//! plain `new EventSource("/sse")`; an empty `tours=` is no tours, a
//! stream that carries nothing yet (a client that unsubscribed from
//! everything, as a WebSocket with no subscriptions). Each
//! is built as the `subscribe` a WebSocket client would send and checked
//! by the same codec and the same permissions, so a bad tour id is a 400
//! naming it and a channel the token does not allow is a 403, before
//! anything is served. The token comes in `Authorization` or `?token=`
//! (EventSource cannot set headers).
//!
//! A reconnecting EventSource sends `Last-Event-ID` (or `?lastEventId=`
//! where headers cannot be set): every subscription resumes after it
//! (`since: {epoch, seq}`), getting exactly what it missed, or a fresh
//! snapshot with `recovered:false` when that is gone.
//!
//! Then the shared [`admission`](super::admission) (Origin, token,
//! readiness, caps) and a [`Session`] over an
//! [`SseTransport`]: the same limits, slow-client drop and shutdown as a
//! WebSocket; a server-side close ends the stream, and EventSource
//! reconnects (to another instance, behind a balancer) after `retry`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::admission::{Refusal, admit, refuse};
use super::listener::PendingTicket;
use super::session::Session;
use crate::auth::Identity;
use crate::channel::Request;
use crate::protocol::ClientMessage;
use crate::protocol::codec::Encoding;
use crate::transport::sse::SseTransport;

/// How long EventSource waits before reconnecting (`retry:`): long
/// enough that a restarting fleet is not stampeded, short enough to feel
/// live.
const RECONNECT_AFTER: Duration = Duration::from_millis(1000);

/// `GET /sse`.
pub async fn stream(
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    ConnectInfo(tcp): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
    ticket: Option<Extension<PendingTicket>>,
) -> Response {
    let admission = admit(&state, &headers, &params, tcp, |identity| {
        opening_subscriptions(&state, &headers, &params, identity)
    });
    let (admitted, opening) = match admission {
        Ok(admission) => admission,
        Err(refusal) => return *refusal,
    };
    if let Some(Extension(ticket)) = ticket {
        ticket.admitted();
    }
    let (transport, body) = SseTransport::new(RECONNECT_AFTER);
    let session =
        Session::opening_with(state.clone(), transport, Encoding::Json, admitted, opening);
    tokio::spawn(state.tasks.track_future(session.run()));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx and similar proxies buffer responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The query's subscriptions as validated `subscribe` commands, resuming
/// after the last event id when there is one; a refusal names what is wrong.
fn opening_subscriptions(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    identity: &Identity,
) -> Result<Vec<ClientMessage>, Refusal> {
    let since = match last_event_id(headers, params) {
        Ok(Some(seq)) => Some(json!({ "epoch": state.engine.epoch(), "seq": seq })),
        Ok(None) => None,
        Err(message) => return Err(bad_query(&message)),
    };
    let viewers = match params.get("viewers").map(String::as_str) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return Err(bad_query("viewers: use viewers=1 or viewers=0")),
    };
    let mut tours = list(params.get("tours"));
    let channels = list(params.get("channels"));
    if !params.contains_key("tours") && !params.contains_key("channels") {
        tours.push("*");
    }
    if tours.len() + channels.len() > state.engine.max_channels_per_connection() {
        return Err(bad_query(&format!(
            "at most {} tours and channels per connection",
            state.engine.max_channels_per_connection()
        )));
    }
    let mut subscribes = Vec::new();
    for tour in tours {
        let mut subscribe = json!({ "type": "subscribe", "tourId": tour });
        if viewers {
            if tour == "*" {
                return Err(bad_query("viewers: needs tours by name (not \"*\")"));
            }
            subscribe["viewers"] = Value::Bool(true);
        }
        if let Some(since) = &since {
            subscribe["since"] = since.clone();
        }
        subscribes.push(("tours", subscribe));
    }
    for channel in channels {
        let mut subscribe = json!({ "type": "subscribe", "channel": channel });
        // The stats channel has no history to resume.
        if let (Some(since), "notifications") = (&since, channel) {
            subscribe["since"] = since.clone();
        }
        subscribes.push(("channels", subscribe));
    }
    subscribes
        .into_iter()
        .map(|(param, subscribe)| checked(state, identity, param, &subscribe))
        .collect()
}

/// One `subscribe`, through the codec and the permissions a WebSocket
/// client's would pass.
fn checked(
    state: &AppState,
    identity: &Identity,
    param: &str,
    subscribe: &Value,
) -> Result<ClientMessage, Refusal> {
    let text = subscribe.to_string();
    let message = state
        .codec
        .decode(Encoding::Json, text.as_bytes())
        .map_err(|error| {
            let at = error
                .path
                .map(|path| format!(" (at {path})"))
                .unwrap_or_default();
            bad_query(&format!("{param}: {}{at}", error.message))
        })?;
    if let ClientMessage::Subscribe(subscribe) = &message {
        Request::from_fields(subscribe.tour_id.clone(), subscribe.channel)
            .resolve(identity)
            .map_err(|refused| {
                Box::new(refuse(
                    "forbidden",
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    &refused.to_string(),
                ))
            })?;
    }
    Ok(message)
}

/// The position to resume after: `Last-Event-ID`, else `?lastEventId=`.
fn last_event_id(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Option<u64>, String> {
    let header = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("<non-ascii>").to_string());
    match header.or_else(|| params.get("lastEventId").cloned()) {
        None => Ok(None),
        Some(id) if id.trim().is_empty() => Ok(None),
        Some(id) => id
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("lastEventId: {id:?} is not an event id (a stream position)")),
    }
}

/// A comma-separated query value's items, without blanks or repeats.
fn list(value: Option<&String>) -> Vec<&str> {
    let mut items: Vec<&str> = Vec::new();
    for item in value.map(|v| v.split(',')).into_iter().flatten() {
        let item = item.trim();
        if !item.is_empty() && !items.contains(&item) {
            items.push(item);
        }
    }
    items
}

fn bad_query(message: &str) -> Refusal {
    Box::new(refuse(
        "sse_query",
        StatusCode::BAD_REQUEST,
        "invalid_message",
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_drop_blanks_and_repeats() {
        let value = "tour_paris, ,tour_rome,tour_paris".to_string();
        assert_eq!(list(Some(&value)), ["tour_paris", "tour_rome"]);
        assert!(list(None).is_empty());
    }

    #[test]
    fn the_header_wins_over_the_query_and_garbage_is_refused() {
        let mut headers = HeaderMap::new();
        let mut params = HashMap::new();
        assert_eq!(last_event_id(&headers, &params), Ok(None));
        params.insert("lastEventId".to_string(), "12".to_string());
        assert_eq!(last_event_id(&headers, &params), Ok(Some(12)));
        headers.insert("last-event-id", HeaderValue::from_static("40"));
        assert_eq!(last_event_id(&headers, &params), Ok(Some(40)));
        headers.insert("last-event-id", HeaderValue::from_static("x"));
        assert!(last_event_id(&headers, &params).is_err());
    }
}
