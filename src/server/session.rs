//! One connection's session, from greeting to close, over any
//! [`Transport`].
//!
//! A single task owns the connection and waits on a few things: its
//! outbox (queued frames, or the server's request to close: too slow,
//! server shutdown), the client's messages, and the keep-alive timer (plus
//! token expiry, with auth). A command that has to wait (a subscribe
//! recovering from the stream) adds one more, and the client's next
//! messages wait in the transport until it is answered, so replies keep
//! the order of requests. One task rather than a reader and a writer keeps
//! an idle connection small; few wake sources keep each delivery cheap,
//! since a 1,000-client fan-out wakes 1,000 of these tasks. Messages are
//! decoded by the codec and executed as [`commands`](super::commands);
//! replies go through the same bounded queue as events, so they keep their
//! order.
//!
//! A session may open with commands of its own: an event stream's
//! subscriptions come in its URL, not as messages. They run first, in
//! order, as if the client had sent them; once they are answered and
//! written (at once when there are none), the transport is told
//! ([`Transport::initial_answers_written`]).
//!
//! Abuse handling lives here too: a token bucket per connection (over the
//! limit: `rate_limited` errors; still flooding: closed as a policy
//! violation), and, with authentication on, a timer that closes the
//! connection when its token expires unless a `refresh` moved the deadline.
//! How each ending reaches the client is the transport's business.

use std::collections::VecDeque;
use std::future::{Future as _, poll_fn};
use std::num::NonZeroU32;
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::{MissedTickBehavior, Sleep, interval_at};
use uuid::Uuid;

use super::AppState;
use super::admission::Admitted;
use super::commands::{self, ErrorReply};
use super::forwarded::Peer;
use super::limits::ConnectionSlot;
use crate::auth::{Identity, Permissions};
use crate::hub::outbox::{self, Outbound};
use crate::hub::{ClientHandle, CloseReason, Subscriptions};
use crate::protocol::codec::Encoding;
use crate::protocol::frame::Frame;
use crate::protocol::v1::{Connection, ErrorCode};
use crate::protocol::{ClientMessage, PROTOCOL, ServerMessage};
use crate::telemetry::{CONNECTIONS_OPEN, CONNECTIONS_TOTAL, DISCONNECTS, RATE_LIMITED};
use crate::time::rfc3339;
use crate::transport::{ClientFrame, Ending, Transport};

/// Most queued frames written in one batch before flushing.
const WRITE_BATCH: usize = 64;

/// One thing the session loop woke up for.
enum Wake {
    Close(CloseReason),
    Outbound(Frame),
    Inbound(Result<ClientFrame, Ending>),
    KeepaliveTick,
    TokenExpired,
    Recovered(Result<Vec<crate::event::SourceEvent>, crate::engine::ReadBackError>),
}

/// Runs one admitted connection over its transport.
pub struct Session<T> {
    state: AppState,
    transport: T,
    encoding: Encoding,
    peer: Peer,
    client_id: String,
    client: ClientHandle,
    outbound: outbox::Receiver,
    subs: Subscriptions,
    identity: Identity,
    limiter: DefaultDirectRateLimiter,
    /// Consecutive messages refused by the rate limit.
    flood_strikes: u32,
    /// Room messages' own bucket (`PUBLISH_RATE`), beside `limiter`.
    publish_limiter: DefaultDirectRateLimiter,
    /// A command waiting for something (see the module docs).
    waiting: Option<Box<commands::Recovering>>,
    /// The commands the session opens with, not yet run; `None` once they
    /// are answered and the transport told.
    opening: Option<VecDeque<ClientMessage>>,
    _slot: ConnectionSlot,
}

impl<T: Transport> Session<T> {
    /// A session for an admitted connection, boxed (see [`Session::run`]).
    pub fn start(
        state: AppState,
        transport: T,
        encoding: Encoding,
        admitted: Admitted,
    ) -> Box<Self> {
        Session::build(
            state,
            transport,
            encoding,
            admitted,
            Vec::new(),
            Subscriptions::new,
        )
    }

    /// Like [`Session::start`], running `opening` first, as if the client
    /// had sent them (validated already). They are all its subscriptions
    /// to begin with: none means none, not the every-tour delivery of a
    /// connection that never subscribed.
    pub fn opening_with(
        state: AppState,
        transport: T,
        encoding: Encoding,
        admitted: Admitted,
        opening: Vec<ClientMessage>,
    ) -> Box<Self> {
        Session::build(
            state,
            transport,
            encoding,
            admitted,
            opening,
            Subscriptions::none,
        )
    }

    fn build(
        state: AppState,
        transport: T,
        encoding: Encoding,
        admitted: Admitted,
        opening: Vec<ClientMessage>,
        subscriptions: fn(Permissions) -> Subscriptions,
    ) -> Box<Self> {
        let Admitted {
            peer,
            identity,
            slot,
        } = admitted;
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
        Box::new(Session {
            publish_limiter: RateLimiter::direct(publish_quota),
            subs: subscriptions(identity.permissions.clone()),
            identity,
            limiter: RateLimiter::direct(quota),
            flood_strikes: 0,
            client: ClientHandle::new(id, encoding, tx).over(T::KIND),
            state,
            transport,
            encoding,
            peer,
            client_id: Uuid::new_v4().to_string(),
            outbound,
            waiting: None,
            // Even none: the transport is told once the greeting is written.
            opening: Some(opening.into()),
            _slot: slot,
        })
    }

    /// Greets the client, serves it until the connection ends, and cleans up.
    ///
    /// Takes the session boxed: an `async fn` keeps its by-value arguments
    /// twice in its future (rust-lang/rust#62958), which cost ~0.6 KiB per
    /// idle connection when the ~0.8 KiB handler was passed by value.
    pub async fn run(mut self: Box<Self>) {
        let opened = Instant::now();
        self.begin();
        let ending = self.serve().await;
        self.leave(&ending);
        if let Ending::Close(reason) = ending {
            self.transport.close(reason).await;
        }
        self.closed(&ending, opened);
    }

    /// Counts the connection, greets it and registers it with the hub.
    /// Not `async`, so that nothing it builds (the greeting) stays in the
    /// connection's future while it lives.
    fn begin(&mut self) {
        let transport = T::KIND.label();
        tracing::info!(
            conn = self.client.id(),
            client_id = %self.client_id,
            peer = %self.peer,
            transport,
            encoding = self.encoding_label(),
            user = self.identity.subject.as_deref().unwrap_or("-"),
            "connection opened"
        );
        metrics::counter!(CONNECTIONS_TOTAL, "encoding" => self.encoding_label(), "transport" => transport).increment(1);
        metrics::gauge!(CONNECTIONS_OPEN, "encoding" => self.encoding_label(), "transport" => transport).increment(1.0);
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
    }

    /// Takes the connection out of the hub and its rooms, and counts why
    /// it ended, before the transport's close (which may take a while).
    fn leave(&mut self, ending: &Ending) {
        // Free the subscriptions first: a closing client gets no more events.
        self.state
            .engine
            .remove_connection(&self.client, &self.subs);
        // Its rooms lose it; a user's last connection there is news.
        self.state
            .presence
            .forget_connection(self.state.engine.hub(), self.client.id());
        metrics::counter!(DISCONNECTS, "reason" => ending.label(), "transport" => T::KIND.label())
            .increment(1);
    }

    fn closed(&self, ending: &Ending, opened: Instant) {
        let transport = T::KIND.label();
        metrics::gauge!(CONNECTIONS_OPEN, "encoding" => self.encoding_label(), "transport" => transport).decrement(1.0);
        tracing::info!(
            conn = self.client.id(),
            client_id = %self.client_id,
            user = self.identity.subject.as_deref().unwrap_or("-"),
            transport,
            reason = ending.label(),
            duration_ms = opened.elapsed().as_millis() as u64,
            "connection closed"
        );
    }

    async fn serve(&mut self) -> Ending {
        let period = self.state.settings.keepalive_interval;
        let mut keepalive = interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Only connections with a token have a deadline, and a timer for it.
        let mut expiry: Option<Pin<Box<Sleep>>> = None;
        let mut deadline_for = None;

        loop {
            // Boxed: it runs once, and inline its future would take its
            // size in the connection's for good.
            if self.waiting.is_none()
                && self.opening.is_some()
                && let Err(ending) = Box::pin(self.open()).await
            {
                return ending;
            }
            if deadline_for != self.identity.expires_at {
                // The token's deadline, or a `refresh` that moved it.
                deadline_for = self.identity.expires_at;
                match (deadline_for, expiry.as_mut()) {
                    (None, _) => expiry = None,
                    (Some(_), Some(timer)) => timer.as_mut().reset(self.token_deadline()),
                    (Some(_), None) => {
                        expiry = Some(Box::pin(tokio::time::sleep_until(self.token_deadline())));
                    }
                }
            }
            let wake = tokio::select! {
                biased;
                // First, so that a busy connection still closes on time.
                () = expired(&mut expiry) => Wake::TokenExpired,
                outbound = self.outbound.recv() => match outbound {
                    Outbound::Frame(frame) => Wake::Outbound(frame),
                    Outbound::Close(reason) => Wake::Close(reason),
                    // Unreachable while the session holds its own sender.
                    Outbound::Closed => Wake::Close(CloseReason::ServerShutdown),
                },
                read = wait_for(&mut self.waiting), if self.waiting.is_some() => Wake::Recovered(read),
                incoming = self.transport.recv(), if self.waiting.is_none() => Wake::Inbound(incoming),
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
                    // the transport's close goes out behind what it
                    // already took, skipping the queue, once the client
                    // reads.
                    if let Err(ending) = self.write_batch(frame).await {
                        return ending;
                    }
                }
                Wake::Inbound(Err(ending)) => return ending,
                Wake::Inbound(Ok(frame)) => {
                    if let Some(reason) = self.on_message(frame) {
                        return Ending::Close(reason);
                    }
                }
                Wake::KeepaliveTick => {
                    if let Err(ending) = self.transport.keep_alive().await {
                        return ending;
                    }
                }
            }
        }
    }

    /// Runs the opening commands until one has to wait (a read-back);
    /// once all are answered, writes everything they queued and tells the
    /// transport.
    async fn open(&mut self) -> Result<(), Ending> {
        while let Some(message) = self.opening.as_mut().and_then(VecDeque::pop_front) {
            self.waiting = commands::apply(message, &mut self.context()).map(Box::new);
            if self.waiting.is_some() {
                return Ok(());
            }
        }
        self.opening = None;
        while let Ok(frame) = self.outbound.try_recv() {
            self.write_batch(frame).await?;
        }
        self.transport.initial_answers_written().await
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    /// A peer that does not take the bytes within a keep-alive interval is
    /// lost; a request to close (e.g. the queue filled while we waited)
    /// ends the wait.
    async fn write_batch(&mut self, first: Frame) -> Result<(), Ending> {
        let deadline = self.state.settings.keepalive_interval;
        let transport = &mut self.transport;
        let outbound = &self.outbound;
        let mut write = pin!(async {
            transport.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match outbound.try_recv() {
                    Ok(frame) => transport.feed(frame).await?,
                    Err(_) => break,
                }
            }
            transport.flush().await
        });
        let mut close = pin!(outbound.close_requested());
        // The deadline's timer is made only once a write has to wait: most
        // batches go straight into the socket, and a timer held inline (as
        // `tokio::time::timeout` holds it) would take its size in every
        // connection's future, idle or not.
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        poll_fn(|cx| {
            if let Poll::Ready(written) = write.as_mut().poll(cx) {
                return Poll::Ready(written);
            }
            if let Poll::Ready(reason) = close.as_mut().poll(cx) {
                return Poll::Ready(Err(Ending::Close(reason)));
            }
            let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
            timer.as_mut().poll(cx).map(|()| Err(Ending::Lost))
        })
        .await
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

    /// Handles one client message; returns a reason when the connection
    /// must close.
    fn on_message(&mut self, frame: ClientFrame) -> Option<CloseReason> {
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
        let payload = match (frame.text, self.encoding) {
            (true, Encoding::Json) | (false, Encoding::Proto) => &frame.payload[..],
            (true, _) => {
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
/// Resolves when the token's timer fires; never without a token.
async fn expired(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

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
