//! One WebSocket connection, from greeting to close.
//!
//! A single task owns the socket and waits on three things: its outbox
//! (queued frames, or the server's request to close: too slow, server
//! shutdown), frames
//! from the client, and the keep-alive timer (plus token expiry, with auth).
//! A command that has to wait (a subscribe recovering from the stream) adds
//! a fourth, and the client's next frames wait in the socket until it is
//! answered, so replies keep the order of requests.
//! One task rather than a reader and a writer keeps an idle connection small;
//! few wake sources keep each delivery cheap, since a 1,000-client fan-out
//! wakes 1,000 of these tasks. Frames are decoded by the codec
//! and executed as [`commands`](super::commands); replies go through the
//! same bounded queue as events, so they keep their order.
//!
//! Abuse handling lives here too: a token bucket per connection (over the
//! limit: `rate_limited` errors; still flooding: close 1008), and, with
//! authentication on, a timer that closes the connection (4001) when its
//! token expires unless a `refresh` moved the deadline.

use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::Utc;
use futures_util::SinkExt as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::{MissedTickBehavior, interval_at};
use uuid::Uuid;

use super::AppState;
use super::commands::{self, ErrorReply};
use super::forwarded::Peer;
use super::limits::ConnectionSlot;
use crate::auth::Identity;
use crate::hub::outbox::{self, Outbound};
use crate::hub::{ClientHandle, CloseReason, Subscriptions};
use crate::protocol::codec::Encoding;
use crate::protocol::v1::{Connection, ErrorCode};
use crate::protocol::{PROTOCOL, ServerMessage};
use crate::telemetry::{CONNECTIONS_OPEN, CONNECTIONS_TOTAL, DISCONNECTS, RATE_LIMITED};
use crate::time::rfc3339;

/// Keep-alive pings that may go unanswered before the connection is closed.
const MAX_MISSED_PONGS: u32 = 2;
/// Most queued frames written in one batch before flushing.
const WRITE_BATCH: usize = 64;
/// How long the client's answer to our close frame may take.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a connection ends: the one answer of the serving loop, of a write,
/// and of the close log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server closes it, for this reason (a close frame to send).
    Close(CloseReason),
    /// The client sent a close frame.
    ClientClosed,
    /// The socket failed or hit EOF without a close frame.
    Lost,
}

impl Ending {
    fn label(self) -> &'static str {
        match self {
            Ending::Close(reason) => reason.label(),
            Ending::ClientClosed => "client_closed",
            Ending::Lost => "connection_lost",
        }
    }
}

/// One thing the connection loop woke up for.
enum Wake {
    Close(CloseReason),
    Outbound(Message),
    Inbound(Option<Result<Message, axum::Error>>),
    KeepaliveTick,
    TokenExpired,
    Recovered(Result<Vec<crate::event::SourceEvent>, crate::engine::ReadBackError>),
}

/// Runs one accepted connection.
pub struct Handler {
    state: AppState,
    socket: WebSocket,
    encoding: Encoding,
    peer: Peer,
    client_id: String,
    client: ClientHandle,
    outbound: outbox::Receiver,
    subs: Subscriptions,
    identity: Identity,
    missed_pongs: u32,
    limiter: DefaultDirectRateLimiter,
    /// Consecutive messages refused by the rate limit.
    flood_strikes: u32,
    /// Room messages' own bucket (`PUBLISH_RATE`), beside `limiter`.
    publish_limiter: DefaultDirectRateLimiter,
    /// A command waiting for something (see the module docs).
    waiting: Option<Box<commands::Recovering>>,
    _slot: ConnectionSlot,
}

impl Handler {
    /// A handler for a freshly upgraded socket; `slot` is held until it ends.
    pub fn new(
        state: AppState,
        socket: WebSocket,
        encoding: Encoding,
        peer: Peer,
        identity: Identity,
        slot: ConnectionSlot,
    ) -> Self {
        let id = state.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, outbound) = outbox::channel(state.settings.outbound_queue);
        let quota = Quota::per_second(
            NonZeroU32::new(state.settings.rate_limit).unwrap_or(NonZeroU32::MIN),
        )
        .allow_burst(NonZeroU32::new(state.settings.rate_burst).unwrap_or(NonZeroU32::MIN));
        let publish_quota = Quota::per_second(
            NonZeroU32::new(state.settings.publish_rate).unwrap_or(NonZeroU32::MIN),
        )
        .allow_burst(NonZeroU32::new(state.settings.publish_burst).unwrap_or(NonZeroU32::MIN));
        Handler {
            publish_limiter: RateLimiter::direct(publish_quota),
            subs: Subscriptions::new(identity.permissions.clone()),
            identity,
            limiter: RateLimiter::direct(quota),
            flood_strikes: 0,
            client: ClientHandle::new(id, encoding, tx),
            state,
            socket,
            encoding,
            peer,
            client_id: Uuid::new_v4().to_string(),
            outbound,
            missed_pongs: 0,
            waiting: None,
            _slot: slot,
        }
    }

    /// Greets the client, serves it until the connection ends, and cleans up.
    ///
    /// Takes the handler boxed: an `async fn` keeps its by-value arguments
    /// twice in its future (rust-lang/rust#62958), which cost ~0.6 KiB per
    /// idle connection when the ~0.8 KiB handler was passed by value.
    pub async fn run(mut self: Box<Self>) {
        let opened = Instant::now();
        tracing::info!(
            conn = self.client.id(),
            client_id = %self.client_id,
            peer = %self.peer,
            encoding = self.encoding_label(),
            user = self.identity.subject.as_deref().unwrap_or("-"),
            "connection opened"
        );
        metrics::counter!(CONNECTIONS_TOTAL, "encoding" => self.encoding_label()).increment(1);
        metrics::gauge!(CONNECTIONS_OPEN, "encoding" => self.encoding_label()).increment(1.0);
        // Queued before the hub knows the client, so it is always the first frame.
        let greeting = ServerMessage::Connection(Connection {
            client_id: self.client_id.clone(),
            message: "Connected to tourcast".into(),
            protocol: PROTOCOL.into(),
            encoding: self.encoding as i32,
            epoch: self.state.engine.epoch().to_string(),
            timestamp: rfc3339(Utc::now()),
        });
        self.client.send(&greeting);
        self.state.engine.add_connection(&self.client, &self.subs);
        // Shutdown closes every connection the hub lists; one that registered
        // just after that sweep sees the cancelled token here instead.
        if self.state.shutdown.is_cancelled() {
            self.client.close(CloseReason::ServerShutdown);
        }

        let ending = self.serve().await;
        // Free the subscriptions first: a closing client gets no more events.
        self.state
            .engine
            .remove_connection(&self.client, &self.subs);
        // Its rooms lose it; a user's last connection there is news.
        self.state
            .presence
            .forget_connection(self.state.engine.hub(), self.client.id());
        if let Ending::Close(reason) = ending {
            self.send_close(reason).await;
        }
        metrics::gauge!(CONNECTIONS_OPEN, "encoding" => self.encoding_label()).decrement(1.0);
        metrics::counter!(DISCONNECTS, "reason" => ending.label()).increment(1);
        tracing::info!(
            conn = self.client.id(),
            client_id = %self.client_id,
            user = self.identity.subject.as_deref().unwrap_or("-"),
            reason = ending.label(),
            duration_ms = opened.elapsed().as_millis() as u64,
            "connection closed"
        );
    }

    async fn serve(&mut self) -> Ending {
        let period = self.state.settings.keepalive_interval;
        let mut keepalive = interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Only connections with a token have a deadline.
        let mut expiry = Box::pin(tokio::time::sleep_until(self.token_deadline()));
        let mut deadline_for = self.identity.expires_at;

        loop {
            if deadline_for != self.identity.expires_at {
                // A `refresh` moved the deadline.
                expiry.as_mut().reset(self.token_deadline());
                deadline_for = self.identity.expires_at;
            }
            let has_token = self.identity.expires_at.is_some();
            let wake = tokio::select! {
                biased;
                // First, so that a busy connection still closes on time.
                _ = &mut expiry, if has_token => Wake::TokenExpired,
                outbound = self.outbound.recv() => match outbound {
                    Outbound::Frame(frame) => Wake::Outbound(frame),
                    Outbound::Close(reason) => Wake::Close(reason),
                    // Unreachable while the handler holds its own sender.
                    Outbound::Closed => Wake::Close(CloseReason::ServerShutdown),
                },
                read = wait_for(&mut self.waiting), if self.waiting.is_some() => Wake::Recovered(read),
                incoming = self.socket.recv(), if self.waiting.is_none() => Wake::Inbound(incoming),
                _ = keepalive.tick() => Wake::KeepaliveTick,
            };
            match wake {
                Wake::Recovered(read) => {
                    if let Some(waiting) = self.waiting.take() {
                        self.waiting = waiting.resume(read, &mut self.context()).map(Box::new);
                    }
                }
                Wake::Close(reason) => return Ending::Close(reason),
                Wake::TokenExpired => return Ending::Close(CloseReason::TokenExpired),
                Wake::Outbound(frame) => {
                    // Asked to close mid-write (a slow consumer, typically):
                    // the close frame goes out behind what the socket
                    // already took, skipping the queue, once the client
                    // reads.
                    if let Err(ending) = self.write_batch(frame).await {
                        return ending;
                    }
                }
                Wake::Inbound(None) => return Ending::Lost,
                Wake::Inbound(Some(Err(error))) => {
                    let error = error.into_inner();
                    if let Some(reason) = refused_frame(error.as_ref()) {
                        return Ending::Close(reason);
                    }
                    tracing::debug!(conn = self.client.id(), %error, "read failed");
                    return Ending::Lost;
                }
                Wake::Inbound(Some(Ok(frame))) => {
                    self.missed_pongs = 0;
                    if let Message::Close(_) = frame {
                        return Ending::ClientClosed;
                    }
                    if let Some(reason) = self.on_frame(frame) {
                        return Ending::Close(reason);
                    }
                }
                Wake::KeepaliveTick => {
                    if self.missed_pongs >= MAX_MISSED_PONGS {
                        return Ending::Close(CloseReason::KeepaliveTimeout);
                    }
                    self.missed_pongs += 1;
                    if !self.send_now(Message::Ping(Default::default())).await {
                        return Ending::Lost;
                    }
                }
            }
        }
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    /// A peer that does not take the bytes within a keep-alive interval is
    /// lost; a request to close (e.g. the queue filled while we waited)
    /// ends the wait.
    async fn write_batch(&mut self, first: Message) -> Result<(), Ending> {
        let deadline = self.state.settings.keepalive_interval;
        let socket = &mut self.socket;
        let outbound = &self.outbound;
        let write = async {
            socket.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match outbound.try_recv() {
                    Ok(frame) => socket.feed(frame).await?,
                    Err(_) => break,
                }
            }
            socket.flush().await
        };
        tokio::select! {
            written = tokio::time::timeout(deadline, write) => match written {
                Ok(Ok(())) => Ok(()),
                _ => Err(Ending::Lost),
            },
            reason = outbound.close_requested() => Err(Ending::Close(reason)),
        }
    }

    async fn send_now(&mut self, frame: Message) -> bool {
        let deadline = self.state.settings.keepalive_interval;
        matches!(
            tokio::time::timeout(deadline, self.socket.send(frame)).await,
            Ok(Ok(()))
        )
    }

    /// Sends a close frame for `reason` and gives the client a moment to answer.
    ///
    /// The frame bypasses the outbox (it is the last frame; what is still
    /// queued is dropped), but it follows whatever the socket already took.
    /// A slow consumer's socket is full, so the frame may wait for the
    /// client to read: as long as any write may (a keep-alive interval),
    /// after which the peer counts as gone. Without that wait a slow client
    /// saw 1006 instead of 1008.
    async fn send_close(&mut self, reason: CloseReason) {
        let frame = CloseFrame {
            code: reason.close_code(),
            reason: Utf8Bytes::from_static(reason.reason()),
        };
        let sent = tokio::time::timeout(
            self.state.settings.keepalive_interval,
            self.socket.send(Message::Close(Some(frame))),
        )
        .await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
                while let Some(Ok(frame)) = self.socket.recv().await {
                    if matches!(frame, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// When the token expires, as a tokio instant (far away without a token).
    fn token_deadline(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        match self.identity.expires_at {
            // At `exp` itself: the leeway tolerates a signer's clock when
            // a token is presented, not a longer life. A token presented
            // within the leeway past `exp` is closed (4001) at once, and
            // the client refreshes it.
            Some(at) => now + (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => now + Duration::from_secs(86_400 * 365),
        }
    }

    fn encoding_label(&self) -> &'static str {
        match self.encoding {
            Encoding::Proto => "proto",
            _ => "json",
        }
    }

    /// Handles one frame; returns a reason when the connection must close.
    fn on_frame(&mut self, frame: Message) -> Option<CloseReason> {
        if !matches!(frame, Message::Text(_) | Message::Binary(_)) {
            // Pings are answered by the WebSocket layer; pongs only prove liveness.
            return None;
        }
        if self.limiter.check().is_err() {
            metrics::counter!(RATE_LIMITED).increment(1);
            self.flood_strikes += 1;
            if self.flood_strikes >= self.state.settings.flood_limit {
                return Some(CloseReason::PolicyViolation);
            }
            self.reply_error(ErrorReply::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} messages per second; slow down or be disconnected",
                    self.state.settings.rate_limit
                ),
            ));
            return None;
        }
        self.flood_strikes = 0;
        let payload = match (&frame, self.encoding) {
            (Message::Text(text), Encoding::Json) => text.as_bytes(),
            (Message::Binary(bytes), Encoding::Proto) => bytes.as_ref(),
            (Message::Text(_), _) => {
                self.reply_error(unsupported("text frame on a protobuf connection"));
                return None;
            }
            _ => {
                self.reply_error(unsupported("binary frame on a JSON connection"));
                return None;
            }
        };
        if payload.len() > self.state.settings.max_message_bytes {
            self.reply_error(ErrorReply::new(
                ErrorCode::TooLarge,
                format!(
                    "message of {} bytes exceeds the limit of {} bytes",
                    payload.len(),
                    self.state.settings.max_message_bytes
                ),
            ));
            return None;
        }
        match self.state.codec.decode(self.encoding, payload) {
            Ok(message) => {
                self.waiting = commands::apply(message, &mut self.context()).map(Box::new);
            }
            Err(error) => self.reply_error(error.into()),
        }
        None
    }

    /// What a command may touch of this connection.
    fn context(&mut self) -> commands::Context<'_> {
        commands::Context {
            engine: &self.state.engine,
            auth: &self.state.auth,
            stats: &self.state.stats,
            presence: &self.state.presence,
            client: &self.client,
            subs: &mut self.subs,
            identity: &mut self.identity,
            client_id: &self.client_id,
            writer: self.state.writer.as_ref(),
            publish_limiter: &self.publish_limiter,
        }
    }

    fn reply_error(&self, error: ErrorReply) {
        tracing::debug!(conn = self.client.id(), code = ?error.code, message = %error.message, "refused client message");
        error.send(&self.client);
    }
}

/// The result of the waiting command's read; pending when none waits.
async fn wait_for(
    waiting: &mut Option<Box<commands::Recovering>>,
) -> Result<Vec<crate::event::SourceEvent>, crate::engine::ReadBackError> {
    match waiting {
        Some(waiting) => waiting.read().await,
        None => std::future::pending().await,
    }
}

fn unsupported(message: &str) -> ErrorReply {
    ErrorReply::new(ErrorCode::UnsupportedEncoding, message)
}

/// The close reason for a read error that is the client's fault (an
/// oversized frame, invalid UTF-8, broken framing), as opposed to the
/// network going away. (axum boxes tungstenite's error; `tungstenite` is a
/// direct dependency, pinned to axum's version, only so these can be told
/// apart.)
fn refused_frame(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<CloseReason> {
    match error.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some(CloseReason::FrameTooLarge),
        tungstenite::Error::Utf8(_) => Some(CloseReason::InvalidPayload),
        // A peer that vanished without a close frame is network loss.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => None,
        tungstenite::Error::Protocol(_) => Some(CloseReason::ProtocolError),
        _ => None,
    }
}
