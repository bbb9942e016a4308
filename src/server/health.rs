//! `/health` (liveness, in the old service's shape plus the event source's
//! state) and `/ready` (503 until the event source is live).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use crate::source::SourceState;
use crate::state::rfc3339;

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
