//! Client commands. Each lives in its own file with `parse` (from the
//! validated protocol message to what the command needs) and `apply` (what
//! it does). The codec has already validated the message.

mod ping;
mod refresh;
mod subscribe;
mod unsubscribe;

pub use subscribe::Recovering;

use crate::auth::{Authenticator, Identity};
use crate::engine::Engine;
use crate::hub::{ClientHandle, Subscriptions, encode_frame};
use crate::protocol::ClientMessage;
use crate::protocol::codec::DecodeError;
use crate::telemetry::{CLIENT_ERRORS, CLIENT_MESSAGES};

/// What a command may touch: the engine, the verifier, and its own connection.
pub struct Context<'a> {
    /// State, fan-out and subscriptions.
    pub engine: &'a Engine,
    /// Token verification, for `refresh`.
    pub auth: &'a Authenticator,
    /// The connection's sending side.
    pub client: &'a ClientHandle,
    /// The connection's subscriptions.
    pub subs: &'a mut Subscriptions,
    /// Who the connection is and what it may see.
    pub identity: &'a mut Identity,
}

/// Executes a validated client message. A command that must wait for
/// something (a subscribe reading the stream back) returns what to await.
pub fn apply(message: ClientMessage, context: &mut Context<'_>) -> Option<Recovering> {
    let kind = match &message {
        ClientMessage::Ping(_) => "ping",
        ClientMessage::Subscribe(_) => "subscribe",
        ClientMessage::Unsubscribe(_) => "unsubscribe",
        ClientMessage::Refresh(_) => "refresh",
    };
    metrics::counter!(CLIENT_MESSAGES, "type" => kind).increment(1);
    match message {
        ClientMessage::Ping(m) => ping::Ping::parse(m).apply(context),
        ClientMessage::Subscribe(m) => return subscribe::Subscribe::parse(m).apply(context),
        ClientMessage::Unsubscribe(m) => unsubscribe::Unsubscribe::parse(m).apply(context),
        ClientMessage::Refresh(m) => refresh::Refresh::parse(m).apply(context),
    }
    None
}

/// Sends an `error` reply and counts it by code.
pub fn send_error(client: &ClientHandle, error: &DecodeError) {
    let code = error
        .code
        .as_str_name()
        .trim_start_matches("ERROR_CODE_")
        .to_ascii_lowercase();
    metrics::counter!(CLIENT_ERRORS, "code" => code).increment(1);
    client.offer(encode_frame(&error.to_reply(), client.encoding()));
}
