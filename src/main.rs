//! The `tourcast` binary: parses the configuration, starts the event source
//! and the server, and turns SIGINT/SIGTERM into a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use metrics_exporter_prometheus::PrometheusHandle;
use tourcast::auth::Authenticator;
use tourcast::config::{Cli, Command, GatewayConfig};
use tourcast::engine::{Engine, EngineConfig};
use tourcast::server::limits::ConnectionLimit;
use tourcast::server::{AppState, ServerSettings, listener};
use tourcast::source::{self, SourceStatus, demo};
use tourcast::stats::{self, StatsBoard};

/// Connections may hold this many explicit subscriptions.
const MAX_SUBSCRIPTIONS: usize = 256;

fn main() -> Result<()> {
    let cli = Cli::parse();
    // `tourcast publish` prints on stdout exactly what it published, so its
    // logs (lapin's, when the broker goes away) go to stderr.
    let logs_to_stderr = matches!(cli.command, Some(Command::Publish(_)));
    init_logging(&cli.gateway.log_format, logs_to_stderr);
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    match cli.command {
        None | Some(Command::Serve) => runtime.block_on(serve(cli.gateway)),
        Some(Command::Token(args)) => {
            println!("{}", tourcast::cli::token::issue(&args)?);
            Ok(())
        }
        Some(Command::Publish(args)) => Ok(runtime.block_on(tourcast::cli::publish::run(args))?),
    }
}

fn init_logging(format: &str, to_stderr: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // lapin logs whole message bodies at warn (unroutable publishes) and
        // broker-initiated closes at error; our own lines say what matters.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,lapin=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || -> Box<dyn std::io::Write> {
            if to_stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        });
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config: GatewayConfig) -> Result<()> {
    // First, so that everything started below is measured from the start.
    let metrics = tourcast::telemetry::install().context("installing the metrics recorder")?;
    let origins = config.origins();
    if origins.is_empty() {
        tracing::warn!("ALLOWED_ORIGINS is empty: browsers from any origin may connect");
    }
    let epoch = if config.demo {
        format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
    } else {
        source::rabbitmq::epoch(&config.rabbitmq)
    };
    let mut settings = ServerSettings::from_config(&config);
    let budget = listener::fit_to_file_limit(config.max_connections, settings.pending.max_pending);
    if budget.max_connections < config.max_connections
        || budget.max_pending < settings.pending.max_pending
    {
        tracing::warn!(
            file_limit = budget.file_limit,
            max_connections = budget.max_connections,
            max_pending_connections = budget.max_pending,
            "connection caps lowered to fit the open-file limit (raise `ulimit -n` for more)"
        );
    }
    settings.pending.max_pending = budget.max_pending;
    let engine = Arc::new(Engine::new(EngineConfig {
        epoch,
        history_len: config.history_size as usize,
        dedupe_window: config.dedupe_window,
        max_replay: config.max_replay,
        max_subscriptions: MAX_SUBSCRIPTIONS,
        max_read_back: config.recovery_max_scan,
        notification_history: config.notification_history,
        snapshot_frame_bytes: config.snapshot_frame_bytes,
        max_tours: config.max_tours,
    }));
    let shutdown = CancellationToken::new();
    let status = SourceStatus::new(if config.demo { "demo" } else { "rabbitmq" });

    let source_task = if config.demo {
        demo::seed(&engine, &status);
        let demo_config = demo::DemoConfig {
            interval: config.demo_interval,
            low_threshold: config.demo_low_threshold,
        };
        tokio::spawn(demo::run(
            demo_config,
            Arc::clone(&engine),
            status.clone(),
            shutdown.clone(),
        ))
    } else {
        tokio::spawn(source::rabbitmq::run(
            config.rabbitmq.clone(),
            Arc::clone(&engine),
            status.clone(),
            shutdown.clone(),
        ))
    };

    let auth = Authenticator::new(&config.auth()).context("loading the JWT key")?;
    if auth.enabled() {
        tracing::info!("JWT authentication is on: connections need a token");
    }
    let mut state = AppState::new(
        engine,
        settings,
        status,
        ConnectionLimit::new(budget.max_connections, config.max_connections_per_ip),
        auth,
        shutdown.clone(),
    )
    .context("compiling the protocol schemas")?;
    tokio::spawn(metrics_upkeep(metrics.clone(), shutdown.clone()));
    state.metrics = Some(metrics);
    if config.admin_open && !state.auth.enabled() {
        tracing::warn!("--admin-open: every connection may subscribe to the stats channel");
    }
    state.stats = Arc::new(StatsBoard::new(
        config
            .instance_id
            .clone()
            .unwrap_or_else(stats::default_instance_id),
        config.stats_interval,
        Arc::clone(&state.engine),
        state.source.clone(),
    ));
    // Instances share their figures over the broker; the demo has no peers.
    let peers = (!config.demo).then(|| {
        let link = source::rabbitmq::peers::spawn(
            &config.rabbitmq,
            stats::STATS_ROUTING_KEY,
            shutdown.clone(),
        );
        stats::Peers {
            outgoing: link.outgoing,
            incoming: link.incoming,
            task: link.task,
        }
    });
    let stats_task = tokio::spawn(stats::run(
        Arc::clone(&state.stats),
        peers,
        shutdown.clone(),
    ));
    if let Some(port) = config.metrics_port {
        let admin = SocketAddr::new(config.bind, port);
        let listener = TcpListener::bind(admin)
            .await
            .with_context(|| format!("binding the metrics port {admin}"))?;
        let router = tourcast::server::admin_router(state.clone());
        tracing::info!(address = %admin, "metrics served on the admin port");
        // Through the same accept loop as the main port: its header-read
        // timeout and pending cap keep silent sockets there from using up
        // the files both ports share.
        tokio::spawn(listener::run(
            listener,
            router,
            state.settings.pending,
            shutdown.clone(),
        ));
    }
    let address = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    // With port 0 the OS picks one; log the real address (tests read it).
    let address = listener.local_addr().unwrap_or(address);
    tracing::info!(%address, epoch = state.engine.epoch(), demo = config.demo, "tourcast listening");

    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let with_metrics = config.metrics_port.is_none();
    tourcast::server::serve(listener, state, with_metrics, config.shutdown_grace).await?;
    shutdown.cancel();
    let _ = tokio::time::timeout(config.shutdown_grace, source_task).await;
    let _ = tokio::time::timeout(config.shutdown_grace, stats_task).await;
    tracing::info!("tourcast stopped");
    Ok(())
}

/// Histograms are summarised lazily; without the exporter's own HTTP
/// listener, someone has to run its upkeep.
async fn metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
