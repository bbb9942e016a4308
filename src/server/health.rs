//! `/health` (liveness, in the old service's shape plus the event source's
//! state), `/ready` (503 until the event source is live) and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use crate::source::SourceState;
use crate::telemetry::{DELIVERIES, EVENTS, SLOW_DISCONNECTS};
use crate::time::rfc3339;

/// Liveness: 200 while the process serves, whatever RabbitMQ does.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": "websocket-server",
        "connectedClients": state.connections.open(),
        "timestamp": rfc3339(Utc::now()),
        "epoch": state.engine.epoch(),
        "eventSource": {
            "kind": state.source.kind(),
            "state": state.source.get().as_str(),
        },
    }))
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics(
    State(state): State<AppState>,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    match &state.metrics {
        Some(handle) => {
            record_counters(&state);
            (StatusCode::OK, content_type, handle.render())
        }
        None => (
            StatusCode::NOT_FOUND,
            content_type,
            "metrics are not enabled\n".into(),
        ),
    }
}

/// Copies the engine's and the hub's own counters into the recorder, so
/// that each count is kept once (the stats channel reads the same ones).
fn record_counters(state: &AppState) {
    use std::sync::atomic::Ordering::Relaxed;
    let engine = state.engine.counters();
    for (outcome, count) in [
        ("applied", &engine.applied),
        ("duplicate", &engine.duplicates),
        ("stale", &engine.stale),
        ("over_capacity", &engine.over_capacity),
    ] {
        let count = count.load(Relaxed);
        if count > 0 {
            metrics::counter!(EVENTS, "outcome" => outcome).absolute(count);
        }
    }
    let hub = state.engine.hub().counters();
    metrics::counter!(DELIVERIES).absolute(hub.delivered.load(Relaxed));
    metrics::counter!(SLOW_DISCONNECTS).absolute(hub.slow_closed.load(Relaxed));
}

/// Readiness: 200 when the event source is live, 503 otherwise.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let source = state.source.get();
    let code = if source == SourceState::Connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "ready": code == StatusCode::OK,
            "eventSource": { "kind": state.source.kind(), "state": source.as_str() },
        })),
    )
}
