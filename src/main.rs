//! The `tourcast` binary: parses the configuration, sets up logging and
//! metrics, starts the [gateway](tourcast::gateway) (or runs `publish` or
//! `token`), and turns SIGINT/SIGTERM into a graceful shutdown.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use tourcast::config::{Cli, Command, GatewayConfig};
use tourcast::gateway::Gateway;

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
    let listener = bind(SocketAddr::new(config.bind, config.port)).await?;
    let admin = match config.metrics_port {
        Some(port) => Some(bind(SocketAddr::new(config.bind, port)).await?),
        None => None,
    };
    let gateway = Gateway::from_config(&config)
        .metrics(metrics, admin)
        .start(listener)
        .await
        .context("starting the gateway")?;
    tokio::spawn(cancel_on_signal(gateway.shutdown_token()));
    gateway.stopped().await?;
    tracing::info!("tourcast stopped");
    Ok(())
}

async fn bind(address: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))
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
