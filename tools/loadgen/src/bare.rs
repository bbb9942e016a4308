//! `loadgen bare`: the floors to compare the gateway against (a bare accept
//! loop, bare tungstenite, and a fan-out with nothing but the forwarding).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::latency::Probe;
use crate::shared::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BareMode {
    /// Accept and hold plain TCP streams.
    Tcp,
    /// Accept WebSockets (tokio-tungstenite, the gateway's buffer sizes).
    Ws,
    /// The floor for `loadgen latency`: accept WebSockets, answer a
    /// subscribe, and forward every RabbitMQ delivery verbatim to every
    /// socket from a few writer tasks (no per-connection task, no hub, no
    /// codec, no validation).
    Fanout,
}

#[derive(Debug, Args)]
pub(crate) struct BareArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// What to accept.
    #[arg(long, value_enum, default_value_t = BareMode::Ws)]
    mode: BareMode,
    /// Read buffer per WebSocket (the gateway's value).
    #[arg(long, default_value_t = 4 * 1024)]
    read_buffer: usize,
    /// Write buffer per WebSocket (the gateway's value).
    #[arg(long, default_value_t = 8 * 1024)]
    write_buffer: usize,
    /// Exit after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    lifetime: Duration,
    /// Fanout mode: AMQP URL of the broker (loopback only).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// Fanout mode: the topic exchange to consume (declared if missing).
    #[arg(long, default_value = "tour_booking_events")]
    exchange: String,
    /// Fanout mode: the binding key.
    #[arg(long, default_value = "tour.availability.#")]
    routing_key: String,
    /// Fanout mode: consume this stream (bound to the exchange, from its
    /// tail) instead of an exclusive classic queue, like the gateway does.
    #[arg(long)]
    stream: Option<String>,
    /// Fanout mode: writer tasks, each owning a share of the sockets.
    #[arg(long, default_value_t = 2)]
    writers: usize,
}

pub(crate) async fn bare(args: BareArgs) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!("bare listens on loopback addresses only");
    }
    raise_nofile(20_000).or_else(|_| raise_nofile(1024))?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!(
        "bare {:?} server on {} (pid {}), exiting after {:?}",
        args.mode,
        args.listen,
        std::process::id(),
        args.lifetime
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(args.read_buffer)
        .write_buffer_size(args.write_buffer);
    let open = Arc::new(AtomicUsize::new(0));
    let fanout = match args.mode {
        BareMode::Fanout => Some(Fanout::start(&args).await?),
        _ => None,
    };
    let serve = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let open = Arc::clone(&open);
            // One task type per mode, so the TCP task is not as large as
            // the WebSocket one.
            match args.mode {
                BareMode::Tcp => {
                    tokio::spawn(async move {
                        open.fetch_add(1, Ordering::Relaxed);
                        let mut stream = stream;
                        let mut buf = [0u8; 64];
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                BareMode::Fanout => {
                    if let Some(fanout) = &fanout {
                        fanout.accept(stream, config, open);
                    }
                }
                BareMode::Ws => {
                    tokio::spawn(async move {
                        open.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut ws) =
                            tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                        {
                            let greeting = r#"{"type":"connection","message":"bare"}"#;
                            if ws.send(Message::text(greeting)).await.is_ok() {
                                while let Some(Ok(frame)) = ws.next().await {
                                    if frame.is_close() {
                                        break;
                                    }
                                }
                            }
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = tokio::time::sleep(args.lifetime) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("bare: exiting with {} open", open.load(Ordering::Relaxed));
    Ok(())
}

/// `bare --mode fanout`: the least work a push server can do per delivery,
/// to tell the gateway's own cost from the platform's (loopback TCP, the
/// broker, the load generator) in `loadgen latency` runs.
struct Fanout {
    /// Subscribed sockets go to the writers in turn.
    writers: Vec<tokio::sync::mpsc::UnboundedSender<WebSocketStream<TcpStream>>>,
    next: AtomicUsize,
}

impl Fanout {
    async fn start(args: &BareArgs) -> Result<Arc<Self>> {
        let amqp_host: Uri = args
            .amqp
            .parse()
            .with_context(|| format!("bad AMQP URL {:?}", args.amqp))?;
        loopback_ip(amqp_host.host().unwrap_or_default())?;
        // The probe's consumer, with the exchange declared first.
        let declaring = lapin::Connection::connect(&args.amqp, Default::default())
            .await
            .context("connecting to RabbitMQ")?;
        declaring
            .create_channel()
            .await?
            .exchange_declare(
                args.exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .context("declaring the exchange")?;
        if let Some(stream) = &args.stream {
            let channel = declaring.create_channel().await?;
            let mut arguments = lapin::types::FieldTable::default();
            arguments.insert(
                "x-queue-type".into(),
                lapin::types::AMQPValue::LongString("stream".into()),
            );
            channel
                .queue_declare(
                    stream.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    arguments,
                )
                .await
                .context("declaring the stream")?;
            channel
                .queue_bind(
                    stream.as_str().into(),
                    args.exchange.as_str().into(),
                    args.routing_key.as_str().into(),
                    Default::default(),
                    Default::default(),
                )
                .await
                .context("binding the stream")?;
        }
        let _ = declaring.close(200, "declared".into()).await;
        let (connection, mut consumer) = Probe::consume(
            &args.amqp,
            &args.exchange,
            &args.routing_key,
            args.stream.as_deref(),
        )
        .await?;
        let manual_ack = args.stream.is_some();
        let (frames, _) = tokio::sync::broadcast::channel::<Message>(1024);
        let mut writers = Vec::new();
        for _ in 0..args.writers.max(1) {
            let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
            let mut frames = frames.subscribe();
            writers.push(tx);
            tokio::spawn(async move {
                let mut owned: Vec<WebSocketStream<TcpStream>> = Vec::new();
                loop {
                    tokio::select! {
                        Some(ws) = sockets.recv() => owned.push(ws),
                        frame = frames.recv() => {
                            let Ok(frame) = frame else { break };
                            // One write per socket, in turn: a blocked
                            // client would stall the rest (fine for a floor).
                            let mut alive = Vec::with_capacity(owned.len());
                            for mut ws in owned.drain(..) {
                                if ws.send(frame.clone()).await.is_ok() {
                                    alive.push(ws);
                                }
                            }
                            owned = alive;
                        }
                    }
                }
            });
        }
        tokio::spawn(async move {
            let _connection = connection;
            while let Some(Ok(delivery)) = consumer.next().await {
                if manual_ack {
                    let _ = delivery
                        .acker
                        .ack(lapin::options::BasicAckOptions::default())
                        .await;
                }
                if let Ok(text) = String::from_utf8(delivery.data) {
                    let _ = frames.send(Message::text(text));
                }
            }
        });
        Ok(Arc::new(Fanout {
            writers,
            next: AtomicUsize::new(0),
        }))
    }

    /// Greets a client, answers its subscribe, and hands it to a writer.
    fn accept(
        self: &Arc<Self>,
        stream: TcpStream,
        config: WebSocketConfig,
        open: Arc<AtomicUsize>,
    ) {
        let fanout = Arc::clone(self);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
            else {
                return;
            };
            let greeting = r#"{"type":"connection","message":"bare fanout"}"#;
            if ws.send(Message::text(greeting)).await.is_err() {
                return;
            }
            // The load generator subscribes, then waits for the snapshot.
            if !matches!(ws.next().await, Some(Ok(Message::Text(_)))) {
                return;
            }
            for reply in [
                r#"{"type":"subscribed"}"#,
                r#"{"type":"snapshot","tours":[]}"#,
            ] {
                if ws.send(Message::text(reply)).await.is_err() {
                    return;
                }
            }
            open.fetch_add(1, Ordering::Relaxed);
            let index = fanout.next.fetch_add(1, Ordering::Relaxed) % fanout.writers.len();
            let _ = fanout.writers[index].send(ws);
        });
    }
}
