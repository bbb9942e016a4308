//! Test harness shared by the integration tests: a gateway running
//! in-process (real TCP, real axum server, the test playing event source),
//! the real `tourcast` binary as a child process, and a WebSocket client
//! that speaks JSON or protobuf.
#![allow(dead_code)] // each test crate uses a different part of the harness

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use tourcast::auth::AuthConfig;
use tourcast::engine::{Engine, EngineConfig};
pub use tourcast::event::{AvailabilityChange, AvailabilityKind};
use tourcast::gateway::{Gateway, Source};
use tourcast::protocol::codec::decode_server_proto;
use tourcast::protocol::v1;
use tourcast::server::ServerSettings;
use tourcast::source::SourceStatus;

/// How long a test waits for any single expected frame.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Server settings for tests: small and fast.
pub fn test_settings() -> ServerSettings {
    ServerSettings {
        allowed_origins: Vec::new(),
        keepalive_interval: Duration::from_secs(30),
        outbound_queue: 64,
        max_message_bytes: 4096,
        max_frame_bytes: 64 * 1024,
        rate_limit: 1000,
        rate_burst: 1000,
        flood_limit: 20,
        publish_rate: 100,
        publish_burst: 100,
        pending: tourcast::server::listener::PendingLimits {
            handshake_timeout: Duration::from_secs(10),
            max_pending: 256,
        },
        trusted_proxies: Default::default(),
        compression: Some(tourcast::transport::websocket::Compression {
            min_bytes: 256,
            level: 6,
        }),
    }
}

/// Engine settings for tests.
pub fn test_engine_config() -> EngineConfig {
    EngineConfig {
        epoch: format!("test-{}", uuid::Uuid::new_v4().simple()),
        history_len: 16,
        dedupe_window: 1000,
        max_replay: 32,
        max_channels_per_connection: 8,
        max_rooms_per_connection: 4,
        room_history: 8,
        max_rooms: 100,
        max_read_back: 100_000,
        notification_history: 1000,
        snapshot_frame_bytes: tourcast::protocol::snapshot::DEFAULT_MAX_FRAME_BYTES,
        max_tours: usize::MAX,
    }
}

/// A gateway served in-process on an ephemeral loopback port, wired by
/// the same builder as the binary. The test is its event source: it calls
/// `engine.apply` directly.
pub struct TestServer {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub source: SourceStatus,
    pub shutdown: CancellationToken,
    gateway: Gateway,
}

impl TestServer {
    /// Starts a server with default test settings.
    pub async fn start() -> Self {
        Self::start_with(|_, _, _| {}).await
    }

    /// Starts a server after `tweak` adjusts its settings, engine config and connection cap.
    pub async fn start_with(
        tweak: impl FnOnce(&mut ServerSettings, &mut EngineConfig, &mut usize),
    ) -> Self {
        Self::start_full(tweak, AuthConfig::default(), None).await
    }

    /// Starts a server with authentication configured by `auth_config`, and
    /// optionally a per-IP connection cap (else the total cap applies alone).
    pub async fn start_full(
        tweak: impl FnOnce(&mut ServerSettings, &mut EngineConfig, &mut usize),
        auth_config: AuthConfig,
        per_ip: Option<usize>,
    ) -> Self {
        let mut settings = test_settings();
        let mut engine_config = test_engine_config();
        let mut max_connections = 1000;
        tweak(&mut settings, &mut engine_config, &mut max_connections);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let gateway = Gateway::builder(settings, engine_config)
            .connection_caps(max_connections, per_ip.unwrap_or(max_connections))
            .auth(auth_config)
            .source(Source::External("test"))
            .shutdown_grace(Duration::from_secs(3))
            .start(listener)
            .await
            .expect("the gateway starts (a usable key, schemas that compile)");
        TestServer {
            addr: gateway.addr(),
            engine: Arc::clone(gateway.engine()),
            source: gateway.source().clone(),
            shutdown: gateway.shutdown_token(),
            gateway,
        }
    }

    /// `ws://…/ws` of this server.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://…{path}` of this server.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A JSON client, greeted.
    pub async fn json_client(&self) -> Client {
        Client::connect(&self.ws_url(), Encoding::Json).await
    }

    /// A protobuf client (by subprotocol), greeted.
    pub async fn proto_client(&self) -> Client {
        Client::connect(&self.ws_url(), Encoding::Proto).await
    }

    /// Shuts the server down and waits for it.
    pub async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.gateway.stop()).await;
    }
}

/// An `updated` event for `tour` with `seats` left, timestamped now.
pub fn updated(tour: &str, seats: u32) -> AvailabilityChange {
    event(AvailabilityKind::Updated, tour, seats, Utc::now())
}

/// An event of any kind and time.
pub fn event(
    kind: AvailabilityKind,
    tour: &str,
    seats: u32,
    at: DateTime<Utc>,
) -> AvailabilityChange {
    AvailabilityChange {
        kind,
        event_id: None,
        tour_id: tour.to_string(),
        tour_name: Some(format!("Tour {tour}")),
        available_seats: seats,
        max_group_size: Some(20),
        threshold: (kind == AvailabilityKind::Low).then_some(3),
        timestamp: at,
        version: None,
        position: None,
    }
}

/// The encodings a test client can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Proto,
}

/// What a client read.
#[derive(Debug)]
pub enum Received {
    /// A server message, as JSON (protobuf frames are converted).
    Message(Value),
    /// A close frame.
    Close(Option<(u16, String)>),
    /// The connection ended without a close frame.
    Ended,
}

/// A real WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub encoding: Encoding,
    /// The `connection` greeting.
    pub greeting: Value,
}

impl Client {
    /// Connects (subprotocol chosen by `encoding`) and reads the greeting.
    pub async fn connect(url: &str, encoding: Encoding) -> Self {
        let mut request = url.into_client_request().expect("valid url");
        let protocol = match encoding {
            Encoding::Json => "tourcast.v1.json",
            Encoding::Proto => "tourcast.v1.proto",
        };
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("handshake succeeds");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol),
            "the server answers with the subprotocol it picked"
        );
        Self::greeted(ws, encoding).await
    }

    /// Wraps an already connected socket and reads the greeting.
    pub async fn greeted(
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        encoding: Encoding,
    ) -> Self {
        let mut client = Client {
            ws,
            encoding,
            greeting: Value::Null,
        };
        client.greeting = client.recv().await;
        assert_eq!(
            client.greeting["type"], "connection",
            "first frame is the greeting"
        );
        client
    }

    /// Wraps a socket whose greeting was already read (JSON).
    pub fn greeted_raw(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Client {
            ws,
            encoding: Encoding::Json,
            greeting: Value::Null,
        }
    }

    /// Sends a client message given in its JSON view, in this client's encoding.
    pub async fn send(&mut self, message: Value) {
        let frame = match self.encoding {
            Encoding::Json => Message::text(message.to_string()),
            Encoding::Proto => {
                let kind: tourcast::protocol::ClientMessage =
                    serde_json::from_value(message).expect("a valid client message");
                let envelope = v1::ClientMessage { kind: Some(kind) };
                Message::binary(envelope.encode_to_vec())
            }
        };
        self.ws.send(frame).await.expect("send");
    }

    /// Sends a raw frame.
    pub async fn send_raw(&mut self, frame: Message) {
        self.ws.send(frame).await.expect("send");
    }

    /// The next server message, as JSON; panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Received::Message(value) => value,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next message whose `type` is `kind`, skipping others (e.g. events).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let message = self.recv().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// The next thing that happens on the connection.
    pub async fn next(&mut self) -> Received {
        loop {
            let frame = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                .await
                .expect("a frame arrives in time");
            return match frame {
                None | Some(Err(_)) => Received::Ended,
                Some(Ok(Message::Text(text))) => {
                    assert_eq!(
                        self.encoding,
                        Encoding::Json,
                        "text frame on a protobuf connection"
                    );
                    Received::Message(serde_json::from_str(&text).expect("server sends JSON"))
                }
                Some(Ok(Message::Binary(bytes))) => {
                    assert_eq!(
                        self.encoding,
                        Encoding::Proto,
                        "binary frame on a JSON connection"
                    );
                    let message = decode_server_proto(&bytes).expect("server sends protobuf");
                    Received::Message(serde_json::to_value(message).expect("JSON view"))
                }
                Some(Ok(Message::Close(frame))) => {
                    Received::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Some(Ok(_)) => continue, // ping/pong
            };
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> Option<(u16, String)> {
        loop {
            match self.next().await {
                Received::Message(_) => continue,
                Received::Close(frame) => return frame,
                Received::Ended => return None,
            }
        }
    }

    /// Asserts no message arrives within `wait`, reading (and so answering
    /// keep-alive pings) all the while.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match frame {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Closes from the client side, as RFC 6455 §7.1.1 has a client do:
    /// it sends its close frame, then waits (at most 2 s) for the server's
    /// before it drops the socket. Dropping at once raced the server's
    /// next write, which then found the socket reset and counted the
    /// connection lost, not closed by the client.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(frame)) = self.ws.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// The underlying stream (for tests that misbehave on purpose).
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }
}

/// The real `tourcast` binary as a child process, logging JSON.
pub struct GatewayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl GatewayProcess {
    /// Starts `tourcast` with `args` on an ephemeral loopback port and
    /// waits until it listens.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_command(Command::new(Self::binary()), args, env).await
    }

    /// Like [`GatewayProcess::start`], under an open-file limit (`prlimit`).
    pub async fn start_with_file_limit(limit: u32, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={limit}:{limit}"))
            .arg(Self::binary());
        Self::start_command(command, args, env).await
    }

    /// The binary under test. TOURCAST_TEST_BIN runs the tests against
    /// another build (e.g. the previous commit's, to show that a
    /// regression test fails there).
    fn binary() -> String {
        std::env::var("TOURCAST_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tourcast").to_string())
    }

    async fn start_command(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> Self {
        command
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("tourcast starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, mut addr_rx) = tokio::sync::mpsc::channel(1);
        // Drain both pipes for the whole run so the child never blocks on a full pipe.
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = Arc::clone(&logs);
            let addr_tx = addr_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(addr) = listening_address(&line) {
                        let _ = addr_tx.send(addr).await;
                    }
                    logs.lock().expect("log lock").push(line);
                }
            });
        }
        let addr = tokio::time::timeout(Duration::from_secs(20), addr_rx.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("tourcast did not start; logs: {:?}", logs.lock()));
        GatewayProcess { child, addr, logs }
    }

    /// `ws://…/ws` of this gateway.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://…{path}` of this gateway.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// Log lines containing `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .expect("log lock")
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let value: Value = serde_json::from_str(line).ok()?;
    if value["fields"]["message"] != "tourcast listening" {
        return None;
    }
    value["fields"]["address"].as_str()?.parse().ok()
}

/// GET `url`, returning the status and JSON body.
pub async fn http_get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("HTTP request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Tries a WebSocket handshake with `headers`; returns the HTTP status
/// (101 when it upgraded) and the refusal's JSON body.
pub async fn ws_handshake_with(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    match tokio_tungstenite::connect_async(request_with(url, headers)).await {
        Ok(_) => (101, Value::Null),
        Err(error) => refusal(error),
    }
}

/// Connects to `url` from the local address `source` (any of 127.0.0.0/8
/// on loopback) with extra `headers`: the greeted client, or the refused
/// handshake's HTTP status and JSON body.
pub async fn ws_connect_from(
    source: std::net::IpAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Client, (u16, Value)> {
    let request = request_with(url, headers);
    let authority = request.uri().authority().expect("url with a host").as_str();
    let target = tokio::net::lookup_host(authority)
        .await
        .expect("resolvable host")
        .next()
        .expect("an address");
    let socket = match source {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind the source address");
    let stream = socket.connect(target).await.expect("TCP connect");
    match tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(Client::greeted(ws, Encoding::Json).await),
        Err(error) => Err(refusal(error)),
    }
}

/// A handshake request for `url` with extra `headers`.
fn request_with(url: &str, headers: &[(&str, &str)]) -> tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().expect("valid url");
    for (name, value) in headers {
        request.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    request
}

/// The HTTP status and JSON body of a refused handshake.
fn refusal(error: tungstenite::Error) -> (u16, Value) {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (status, body)
        }
        other => panic!("handshake failed without an HTTP answer: {other:?}"),
    }
}

/// [`ws_handshake_with`] without extra headers.
pub async fn ws_handshake_status(url: &str) -> (u16, Value) {
    ws_handshake_with(url, &[]).await
}

/// The seats of `tour` in a fresh client's snapshot of every tour.
pub async fn snapshot_of(gateway: &GatewayProcess, tour: &str) -> Option<u64> {
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    client
        .send(serde_json::json!({"type": "subscribe", "tourId": tour}))
        .await;
    let snapshot = client.recv_type("snapshot").await;
    snapshot["tours"]
        .as_array()?
        .iter()
        .find(|t| t["tourId"] == tour)?["availableSeats"]
        .as_u64()
}
