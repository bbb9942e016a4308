//! Client commands. Each lives in its own file with `parse` (from the
//! validated protocol message to what the command needs) and `apply` (what
//! it does). The codec has already validated the message.

mod join;
mod leave;
mod ping;
mod publish;
mod refresh;
mod refresh_stats;
mod reply;
mod subscribe;
mod subscription;
mod unsubscribe;

pub use reply::ErrorReply;
pub use subscription::Recovering;

use std::sync::Arc;

use governor::DefaultDirectRateLimiter;

use crate::auth::{Authenticator, Identity};
use crate::engine::Engine;
use crate::hub::{ClientHandle, Subscriptions};
use crate::presence::Presence;
use crate::protocol::ClientMessage;
use crate::source::StreamWriter;
use crate::stats::StatsBoard;
use crate::telemetry::CLIENT_MESSAGES;

/// What a command may touch: the engine, the verifier, and its own connection.
pub struct Context<'a> {
    /// State, fan-out and subscriptions.
    pub engine: &'a Arc<Engine>,
    /// Token verification, for `refresh`.
    pub auth: &'a Authenticator,
    /// The stats channel's figures, for its first message and `refreshStats`.
    pub stats: &'a StatsBoard,
    /// Presence and viewer counts.
    pub presence: &'a Presence,
    /// The connection's sending side.
    pub client: &'a ClientHandle,
    /// The connection's subscriptions.
    pub subs: &'a mut Subscriptions,
    /// Who the connection is and what it may see.
    pub identity: &'a mut Identity,
    /// The connection's `clientId`: who it is in rooms without a token `sub`.
    pub client_id: &'a str,
    /// Where `publish` writes room messages.
    pub writer: Option<&'a Arc<dyn StreamWriter>>,
    /// The connection's own bucket for `publish`.
    pub publish_limiter: &'a DefaultDirectRateLimiter,
}

impl Context<'_> {
    /// Who this connection is in rooms: its token's `sub`, else its
    /// `clientId` (never a name the client sent).
    pub fn room_user(&self) -> String {
        crate::channel::room::user(self.identity, self.client_id)
    }
}

/// Executes a validated client message. A command that must wait for
/// something (a subscribe reading the stream back) returns what to await.
pub fn apply(message: ClientMessage, context: &mut Context<'_>) -> Option<Recovering> {
    let kind = match &message {
        ClientMessage::Ping(_) => "ping",
        ClientMessage::Subscribe(_) => "subscribe",
        ClientMessage::Unsubscribe(_) => "unsubscribe",
        ClientMessage::Refresh(_) => "refresh",
        ClientMessage::RefreshStats(_) => "refreshStats",
        ClientMessage::Join(_) => "join",
        ClientMessage::Leave(_) => "leave",
        ClientMessage::Publish(_) => "publish",
    };
    metrics::counter!(CLIENT_MESSAGES, "type" => kind).increment(1);
    match message {
        ClientMessage::Ping(m) => ping::Ping::parse(m).apply(context),
        ClientMessage::Subscribe(m) => return subscribe::Subscribe::parse(m).apply(context),
        ClientMessage::Unsubscribe(m) => unsubscribe::Unsubscribe::parse(m).apply(context),
        ClientMessage::Refresh(m) => refresh::Refresh::parse(m).apply(context),
        ClientMessage::RefreshStats(m) => refresh_stats::RefreshStats::parse(m).apply(context),
        ClientMessage::Join(m) => return join::Join::parse(m).apply(context),
        ClientMessage::Leave(m) => leave::Leave::parse(m).apply(context),
        ClientMessage::Publish(m) => publish::Publish::parse(m).apply(context),
    }
    None
}
