//! The accept loop: TCP connections from `accept` until they are upgraded
//! to WebSockets or admitted as event streams (or have been answered plain
//! HTTP and gone idle).
//!
//! A connection that has not upgraded yet holds a file descriptor but no
//! [`ConnectionSlot`](super::limits::ConnectionSlot), so without limits here
//! a few hundred silent or 1-byte-a-second sockets could use up the
//! process's files, after which every handshake and `/health` failed with
//! "Too many open files". Three things stop that:
//! - a **header-read timeout** (`HANDSHAKE_TIMEOUT`): hyper closes a
//!   connection whose request head has not fully arrived in time, including
//!   an idle keep-alive connection waiting for its next request;
//! - a **cap on pending connections** (`MAX_PENDING_CONNECTIONS`): when it is
//!   full, the *oldest* pending connection is closed to admit the new one,
//!   so a flood cannot shut out a late `/health` probe or a real client;
//! - a **file budget** ([`fit_to_file_limit`]): the caps on upgraded and
//!   pending connections are fitted under `RLIMIT_NOFILE` with a reserve
//!   left over, so `accept` itself never runs out of descriptors.
//!
//! axum's own `serve` offers none of these knobs (no timer, no cap), so this
//! loop drives hyper's HTTP/1 connection directly, as axum's does. HTTP/2
//! is not served: browsers speak it only over TLS, which a proxy in front
//! terminates, and WebSockets here are HTTP/1.1 upgrades.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::telemetry::{HANDSHAKE_REFUSALS, LogThrottle, PENDING_CONNECTIONS};

/// Descriptors kept free of every connection cap: the broker connection,
/// the metrics port, log files, DNS, and the `accept` that must succeed in
/// order to close a connection rather than leave it in the backlog.
pub const FD_RESERVE: usize = 64;

/// How long graceful shutdown lets an in-flight plain HTTP request finish.
const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Pause after `accept` fails (e.g. out of descriptors despite the budget,
/// if something else in the process opened files): retrying at once would
/// spin on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

static ACCEPT_ERROR_LOG: LogThrottle = LogThrottle::per_millis(1000);
static EVICTION_LOG: LogThrottle = LogThrottle::per_millis(1000);

/// Limits on connections that have not upgraded yet.
#[derive(Debug, Clone, Copy)]
pub struct PendingLimits {
    /// Time a client has to send a complete request head.
    pub handshake_timeout: Duration,
    /// Connections allowed to be pending at once.
    pub max_pending: usize,
}

/// The caps after [`fit_to_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBudget {
    /// Upgraded WebSocket connections allowed.
    pub max_connections: usize,
    /// Pending (not yet upgraded) connections allowed.
    pub max_pending: usize,
    /// The process's file limit the caps were fitted under.
    pub file_limit: usize,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, then lowers the two
/// connection caps where they would not fit under it with [`FD_RESERVE`]
/// descriptors to spare (pending connections get at most a quarter).
pub fn fit_to_file_limit(max_connections: usize, max_pending: usize) -> FileBudget {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(hard)) = (limit.current, limit.maximum)
        && current < hard
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let file_limit = limit
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    budget_within(file_limit, max_connections, max_pending)
}

fn budget_within(file_limit: usize, max_connections: usize, max_pending: usize) -> FileBudget {
    let usable = file_limit.saturating_sub(FD_RESERVE).max(2);
    let max_pending = max_pending.clamp(1, (usable / 4).max(1));
    let max_connections = max_connections.min(usable - max_pending).max(1);
    FileBudget {
        max_connections,
        max_pending,
        file_limit,
    }
}

/// Connections accepted and not yet upgraded, oldest first. Each can be
/// told to close through its token.
struct Pending {
    next_id: u64,
    open: VecDeque<(u64, CancellationToken)>,
    max: usize,
}

impl Pending {
    /// Registers a new connection; returns its id and token, closing the
    /// oldest pending connection first when the cap is reached.
    fn admit(&mut self) -> (u64, CancellationToken) {
        while self.open.len() >= self.max {
            let Some((_, oldest)) = self.open.pop_front() else {
                break;
            };
            oldest.cancel();
            metrics::counter!(HANDSHAKE_REFUSALS, "reason" => "pending_evicted").increment(1);
            if let Some(suppressed) = EVICTION_LOG.admit() {
                tracing::warn!(
                    max_pending = self.max,
                    suppressed,
                    "too many connections waiting to send a request; closed the oldest"
                );
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let token = CancellationToken::new();
        self.open.push_back((id, token.clone()));
        metrics::gauge!(PENDING_CONNECTIONS).set(self.open.len() as f64);
        (id, token)
    }

    fn remove(&mut self, id: u64) {
        // Usually near the front (oldest) or the back (a quick request).
        if let Some(index) = self.open.iter().position(|(open, _)| *open == id) {
            self.open.remove(index);
        }
        metrics::gauge!(PENDING_CONNECTIONS).set(self.open.len() as f64);
    }
}

/// A connection's place on the pending list, in its requests' extensions:
/// a response that streams for as long as a session lives (`/sse`) takes
/// the connection off the list, as an upgrade does, so that it is neither
/// evicted as the oldest pending connection nor counted among them. It
/// holds a connection slot instead.
#[derive(Clone)]
pub struct PendingTicket {
    id: u64,
    pending: Arc<Mutex<Pending>>,
}

impl PendingTicket {
    /// Takes the connection off the pending list.
    pub fn admitted(&self) {
        self.pending.lock().remove(self.id);
    }
}

/// Accepts connections and serves `app` on them until `shutdown`.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: PendingLimits,
    shutdown: CancellationToken,
) {
    let pending = Arc::new(Mutex::new(Pending {
        next_id: 0,
        open: VecDeque::new(),
        max: limits.max_pending.max(1),
    }));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if let Some(suppressed) = ACCEPT_ERROR_LOG.admit() {
                    tracing::error!(%error, suppressed, "accept failed");
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // Pushes are small and latency-bound: without TCP_NODELAY, Nagle
        // holds a frame back while the previous one awaits the client's
        // delayed ACK (up to 40 ms on Linux).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let (id, evicted) = pending.lock().admit();
        let pending = Arc::clone(&pending);
        let app = app.clone();
        let shutdown = shutdown.clone();
        let ticket = PendingTicket {
            id,
            pending: Arc::clone(&pending),
        };
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, evicted, shutdown, ticket).await;
            pending.lock().remove(id);
        });
    }
}

/// Serves one connection until it upgrades, closes, times out or is
/// evicted. An upgraded WebSocket lives on in its own task; an event
/// stream's session too, feeding the response this task writes.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: PendingLimits,
    evicted: CancellationToken,
    shutdown: CancellationToken,
    ticket: PendingTicket,
) {
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // What axum's `into_make_service_with_connect_info` would insert.
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(ticket.clone());
        app.clone().oneshot(request.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                if error.is_timeout() {
                    metrics::counter!(HANDSHAKE_REFUSALS, "reason" => "handshake_timeout")
                        .increment(1);
                }
                tracing::debug!(%peer, %error, "connection ended before an upgrade");
            }
        }
        _ = evicted.cancelled() => {}
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HTTP_SHUTDOWN_GRACE, connection).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_under_the_file_limit_with_a_reserve() {
        let roomy = budget_within(1 << 20, 18_000, 1024);
        assert_eq!((roomy.max_connections, roomy.max_pending), (18_000, 1024));
        let tight = budget_within(1024, 18_000, 1024);
        assert_eq!(tight.max_pending, (1024 - FD_RESERVE) / 4);
        assert_eq!(
            tight.max_connections + tight.max_pending + FD_RESERVE,
            1024,
            "{tight:?}"
        );
        let tiny = budget_within(10, 5, 5);
        assert!(tiny.max_connections >= 1 && tiny.max_pending >= 1);
    }

    #[test]
    fn a_full_pending_list_closes_its_oldest_connection() {
        let mut pending = Pending {
            next_id: 0,
            open: VecDeque::new(),
            max: 2,
        };
        let (first, first_token) = pending.admit();
        let (_, second_token) = pending.admit();
        let (_, third_token) = pending.admit();
        assert!(first_token.is_cancelled());
        assert!(!second_token.is_cancelled() && !third_token.is_cancelled());
        pending.remove(first); // its task ends after the eviction: a no-op
        assert_eq!(pending.open.len(), 2);
    }
}
