//! RabbitMQ helpers for the integration tests: a per-test exchange and
//! stream (uuid names, deleted afterwards), a confirming publisher, the
//! gateway's RabbitMQ flags, and `rabbitmqctl` for closing connections.
#![allow(dead_code)] // not every test uses every helper

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

use super::{GatewayProcess, http_get};

/// The broker the tests use.
pub fn amqp_url() -> String {
    std::env::var("TEST_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The routing keys of the platform.
pub const UPDATED: &str = "tour.availability.updated";
pub const LOW: &str = "tour.availability.low";

/// One test's exchange and stream, and a publisher with confirms.
pub struct Rabbit {
    pub exchange: String,
    pub stream: String,
    /// Unique per test, so that each gateway's connection can be found.
    pub tag: String,
    connection: Connection,
    channel: lapin::Channel,
    cleaned: bool,
}

impl Rabbit {
    /// Declares a fresh exchange (the gateway declares the stream).
    pub async fn new() -> Self {
        Self::with_prefix("tc-test").await
    }

    /// Like [`Rabbit::new`], with exchange and stream names that start
    /// with `prefix` (each suite's own, so a leftover is traced to it).
    pub async fn with_prefix(prefix: &str) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let connection = Connection::connect(
            &amqp_url(),
            ConnectionProperties::default().with_connection_name(format!("test-{tag}").into()),
        )
        .await
        .expect("RabbitMQ runs on 127.0.0.1:5672 (bash .ci/run starts it)");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let exchange = format!("{prefix}-{tag}");
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange");
        Rabbit {
            stream: format!("{prefix}-{tag}.stream"),
            exchange,
            tag,
            connection,
            channel,
            cleaned: false,
        }
    }

    /// The connection name of gateway number `n` of this test.
    pub fn connection_name(&self, n: usize) -> String {
        format!("tourcast-test-{}-{n}", self.tag)
    }

    /// Gateway flags for this test's exchange and stream, as instance `n`.
    pub fn gateway_args(&self, n: usize) -> Vec<String> {
        vec![
            "--rabbitmq-url".into(),
            amqp_url(),
            "--rabbitmq-exchange".into(),
            self.exchange.clone(),
            "--rabbitmq-stream".into(),
            self.stream.clone(),
            "--rabbitmq-connection-name".into(),
            self.connection_name(n),
            "--rabbitmq-reconnect-min".into(),
            "200ms".into(),
            "--rabbitmq-reconnect-max".into(),
            "2s".into(),
        ]
    }

    /// Gateway `n`'s flags plus `extra`, whose flags replace the defaults
    /// of the same name.
    pub fn args_with(&self, n: usize, extra: &[&str]) -> Vec<String> {
        let mut args = Vec::new();
        for pair in self.gateway_args(n).chunks(2) {
            if !extra.contains(&pair[0].as_str()) {
                args.extend_from_slice(pair);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Starts gateway `n` with extra flags, without waiting for readiness.
    pub async fn start_gateway(&self, n: usize, extra: &[&str]) -> GatewayProcess {
        let args = self.args_with(n, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        GatewayProcess::start(&args, &[]).await
    }

    /// Starts gateway `n` with extra flags and waits until it is ready.
    pub async fn gateway(&self, n: usize, extra: &[&str]) -> GatewayProcess {
        self.gateway_with_env(n, extra, &[]).await
    }

    /// Like [`Rabbit::gateway`], with extra environment variables.
    pub async fn gateway_with_env(
        &self,
        n: usize,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> GatewayProcess {
        let args = self.args_with(n, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let gateway = GatewayProcess::start(&args, env).await;
        wait_ready(&gateway).await;
        gateway
    }

    /// Publishes a persistent message and waits for the broker's confirm.
    pub async fn publish(&self, routing_key: &str, content_type: Option<&str>, payload: &[u8]) {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(content_type) = content_type {
            properties = properties.with_content_type(content_type.into());
        }
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(
            matches!(confirm, Confirmation::Ack(None)),
            "the broker took the message and routed it to the stream: {confirm:?}"
        );
    }

    /// Publishes a JSON event; false when no queue was bound to take it.
    pub async fn try_publish_json(&self, routing_key: &str, event: &Value) -> bool {
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                event.to_string().as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into()),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        matches!(confirm, Confirmation::Ack(None))
    }

    /// Publishes many JSON events, pipelined, and waits for every confirm.
    pub async fn publish_json_batch(&self, routing_key: &str, events: &[Value]) {
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            let confirm = self
                .channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    event.to_string().as_bytes(),
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await
                .expect("publish");
            pending.push(confirm);
        }
        for confirm in pending {
            let confirm = confirm.await.expect("confirm");
            assert!(
                matches!(confirm, Confirmation::Ack(None)),
                "routed to the stream: {confirm:?}"
            );
        }
    }

    /// The checkpoint stream of this test's gateways (the default name).
    pub fn checkpoint_stream(&self) -> String {
        format!("{}.checkpoints", self.stream)
    }

    /// Publishes `payload` straight into a queue or stream (the default
    /// exchange), e.g. a forged checkpoint.
    pub async fn publish_to_queue(&self, queue: &str, payload: &[u8]) {
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(
            matches!(confirm, Confirmation::Ack(None)),
            "routed to {queue}: {confirm:?}"
        );
    }

    /// Deletes the stream (as an operator might), leaving the exchange.
    pub async fn delete_stream(&self) {
        self.channel
            .queue_delete(self.stream.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete the stream");
    }

    /// Publishes a JSON event.
    pub async fn publish_json(&self, routing_key: &str, event: &Value) {
        self.publish(
            routing_key,
            Some("application/json"),
            event.to_string().as_bytes(),
        )
        .await;
    }

    /// Deletes the stream and the exchange.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        delete(&self.channel, &self.exchange, &self.stream).await;
        let _ = self.connection.close(200, "test done".into()).await;
    }
}

async fn delete(channel: &lapin::Channel, exchange: &str, stream: &str) {
    let _ = channel
        .queue_delete(stream.into(), QueueDeleteOptions::default())
        .await;
    // Gateways write checkpoints next to the stream: delete those too.
    let checkpoints = format!("{stream}.checkpoints");
    let _ = channel
        .queue_delete(checkpoints.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
}

impl Drop for Rabbit {
    // A test that panicked never reached `cleanup`: delete its stream and
    // exchange anyway, on a connection of our own (Drop cannot await).
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let (exchange, stream) = (self.exchange.clone(), self.stream.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(connection) =
                    Connection::connect(&amqp_url(), ConnectionProperties::default()).await
                else {
                    return;
                };
                if let Ok(channel) = connection.create_channel().await {
                    delete(&channel, &exchange, &stream).await;
                }
                let _ = connection.close(200, "cleanup".into()).await;
            });
        })
        .join();
    }
}

/// Waits until `/ready` answers 200.
pub async fn wait_ready(gateway: &GatewayProcess) {
    wait_for_state(gateway, "connected", Duration::from_secs(30)).await;
    let (status, body) = http_get(&gateway.http_url("/ready")).await;
    assert_eq!(status, 200, "ready once connected: {body}");
}

/// Waits until `/health` reports the event source in `state`.
pub async fn wait_for_state(gateway: &GatewayProcess, state: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (_, body) = http_get(&gateway.http_url("/health")).await;
        if body["eventSource"]["state"] == state {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the source did not become {state} within {limit:?}: {body}; logs: {:?}",
            gateway.log_lines("")
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Closes the broker side of the AMQP connection named `name`, as an
/// operator would with `rabbitmqctl close_connection`.
pub async fn close_connection(name: &str) {
    let needle = format!("{{\"connection_name\",\"{name}\"}}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = tokio::process::Command::new("rabbitmqctl")
            .args([
                "list_connections",
                "-q",
                "--no-table-headers",
                "pid",
                "client_properties",
            ])
            .output()
            .await
            .expect("rabbitmqctl runs");
        let listed = String::from_utf8_lossy(&listed.stdout);
        let pids: Vec<&str> = listed
            .lines()
            .filter(|line| line.contains(&needle))
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        if !pids.is_empty() {
            for pid in pids {
                let closed = tokio::process::Command::new("rabbitmqctl")
                    .args(["close_connection", "-q", pid, "closed by a tourcast test"])
                    .output()
                    .await
                    .expect("rabbitmqctl runs");
                assert!(
                    closed.status.success(),
                    "close_connection {pid}: {closed:?}"
                );
            }
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection named {name}: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of a Prometheus sample in `/metrics` (`None`: not recorded yet).
pub async fn metric(gateway: &GatewayProcess, sample: &str) -> Option<f64> {
    let response = reqwest::get(gateway.http_url("/metrics"))
        .await
        .expect("GET /metrics");
    assert!(response.status().is_success(), "/metrics is served");
    let text = response.text().await.expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

/// A TCP proxy in front of the broker that a test can cut and restore, to
/// play a broker that goes away (sockets dropped, connections refused) and
/// comes back, without touching the broker other tests share.
pub struct BrokerProxy {
    pub port: u16,
    accept: Option<tokio::task::JoinHandle<()>>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl BrokerProxy {
    /// Listens on an ephemeral loopback port, forwarding to 127.0.0.1:5672.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let mut proxy = BrokerProxy {
            port,
            accept: None,
            links: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// The AMQP URL through the proxy.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let links = std::sync::Arc::clone(&self.links);
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut broker) = tokio::net::TcpStream::connect("127.0.0.1:5672").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
                links.lock().expect("links").push(link);
            }
        }));
    }

    /// The broker "goes away": open connections drop, new ones are refused.
    pub fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    /// The broker "comes back" on the same port.
    pub async fn restore(&mut self) {
        // The aborted accept task drops its listener asynchronously: retry.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(error) => {
                    assert!(tokio::time::Instant::now() < deadline, "rebind: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }
}

impl Drop for BrokerProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
