//! `refresh` → `refreshed`: swaps the connection's token before it expires.

use super::{Context, send_error};
use crate::hub::encode_frame;
use crate::protocol::ServerMessage;
use crate::protocol::codec::DecodeError;
use crate::protocol::v1::{self, ErrorCode};
use crate::state::rfc3339;

/// A fresh access token for this connection.
pub struct Refresh {
    token: String,
    request_id: Option<String>,
}

impl Refresh {
    /// From the validated protocol message.
    pub fn parse(message: v1::Refresh) -> Self {
        Refresh {
            token: message.token,
            request_id: message.request_id,
        }
    }

    /// Verifies the token; on success the connection runs on it (new expiry,
    /// new permissions). A bad token changes nothing: the old one stays.
    pub fn apply(self, context: &mut Context<'_>) {
        let refusal = |code: ErrorCode, message: &str| DecodeError {
            code,
            message: message.to_string(),
            path: Some("/token".into()),
            request_id: self.request_id.clone(),
        };
        if !context.auth.enabled() {
            let error = refusal(
                ErrorCode::Forbidden,
                "authentication is not enabled on this server",
            );
            return send_error(context.client, &error);
        }
        let identity = match context.auth.authenticate(Some(&self.token)) {
            Ok(identity) if identity.subject == context.identity.subject => identity,
            Ok(_) => {
                let error = refusal(ErrorCode::Unauthorized, "the token is for another subject");
                return send_error(context.client, &error);
            }
            Err(reason) => {
                tracing::debug!(conn = context.client.id(), %reason, "refresh refused");
                let error = refusal(ErrorCode::Unauthorized, "invalid token");
                return send_error(context.client, &error);
            }
        };
        if identity.permissions != context.identity.permissions {
            context.engine.set_permissions(
                context.client,
                context.subs,
                identity.permissions.clone(),
            );
        }
        let expires_at = identity.expires_at.map(rfc3339).unwrap_or_default();
        *context.identity = identity;
        let reply = ServerMessage::Refreshed(v1::Refreshed {
            expires_at,
            request_id: self.request_id,
        });
        context
            .client
            .offer(encode_frame(&reply, context.client.encoding()));
    }
}
