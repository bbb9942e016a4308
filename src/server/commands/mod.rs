//! Client commands. Each lives in its own file with `parse` (from the
//! validated protocol message to what the command needs) and `apply` (what
//! it does). The codec has already validated the message.

mod ping;
mod subscribe;
mod unsubscribe;

use crate::engine::Engine;
use crate::hub::{ClientHandle, Subscriptions};
use crate::protocol::ClientMessage;

/// What a command may touch: the engine and its own connection.
pub struct Context<'a> {
    /// State, fan-out and subscriptions.
    pub engine: &'a Engine,
    /// The connection's sending side.
    pub client: &'a ClientHandle,
    /// The connection's subscriptions.
    pub subs: &'a mut Subscriptions,
}

/// Executes a validated client message.
pub fn apply(message: ClientMessage, context: &mut Context<'_>) {
    match message {
        ClientMessage::Ping(m) => ping::Ping::parse(m).apply(context),
        ClientMessage::Subscribe(m) => subscribe::Subscribe::parse(m).apply(context),
        ClientMessage::Unsubscribe(m) => unsubscribe::Unsubscribe::parse(m).apply(context),
    }
}
