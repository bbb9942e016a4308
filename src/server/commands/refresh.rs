//! `refresh` → `refreshed`: swaps the connection's token before it expires.

use super::{Context, ErrorReply};
use crate::channel::Target;
use crate::protocol::ServerMessage;
use crate::protocol::v1::{self, ErrorCode};
use crate::time::rfc3339;

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
    /// new permissions, an `unsubscribed` for every subscription they no
    /// longer allow). A bad token changes nothing: the old one stays.
    pub fn apply(self, context: &mut Context<'_>) {
        let refusal = |code: ErrorCode, message: &str| {
            ErrorReply::new(code, message)
                .at("/token")
                .answering(self.request_id.clone())
        };
        if !context.auth.enabled() {
            let error = refusal(
                ErrorCode::Forbidden,
                "authentication is not enabled on this server",
            );
            return error.send(context.client);
        }
        let identity = match context.auth.authenticate(Some(&self.token)) {
            Ok(identity) if identity.subject == context.identity.subject => identity,
            Ok(_) => {
                let error = refusal(ErrorCode::Unauthorized, "the token is for another subject");
                return error.send(context.client);
            }
            Err(reason) => {
                tracing::debug!(conn = context.client.id(), %reason, "refresh refused");
                let error = refusal(ErrorCode::Unauthorized, "invalid token");
                return error.send(context.client);
            }
        };
        if identity.permissions != context.identity.permissions {
            context.engine.set_permissions(
                context.client,
                context.subs,
                identity.permissions.clone(),
            );
        }
        // A token without the admin claim no longer sees the stats channel.
        if !identity.admin && context.subs.contains(&Target::Stats) {
            context
                .engine
                .unsubscribe(context.client, context.subs, Target::Stats, None);
        }
        // Rooms the new token's `rooms` claim no longer names are left.
        let revoked: Vec<Target> = context
            .subs
            .rooms()
            .filter(|room| matches!(room, Target::Room(name) if !identity.rooms.allows(name)))
            .cloned()
            .collect();
        for room in revoked {
            super::leave::leave(context, room, None);
        }
        let expires_at = identity.expires_at.map(rfc3339).unwrap_or_default();
        *context.identity = identity;
        let reply = ServerMessage::Refreshed(v1::Refreshed {
            expires_at,
            request_id: self.request_id,
        });
        context.client.send(&reply);
    }
}
