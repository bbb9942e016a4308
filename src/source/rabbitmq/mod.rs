//! The RabbitMQ event source (see issue 4).

use clap::Args;

/// RabbitMQ connection settings.
#[derive(Debug, Clone, Args)]
pub struct RabbitArgs {
    /// AMQP URL of the broker.
    #[arg(
        long = "rabbitmq-url",
        env = "RABBITMQ_URL",
        default_value = "amqp://guest:guest@localhost:5672"
    )]
    pub url: String,

    /// Durable topic exchange the services publish to.
    #[arg(
        long = "rabbitmq-exchange",
        env = "RABBITMQ_EXCHANGE",
        default_value = "tour_booking_events"
    )]
    pub exchange: String,
}

/// The epoch for an engine fed by RabbitMQ.
// Placeholder until the consumer lands: the lead wired main.rs against this.
pub fn epoch(args: &RabbitArgs) -> String {
    format!("{}-{}", args.exchange, uuid::Uuid::new_v4().simple())
}

/// Consumes RabbitMQ until `shutdown`.
// Placeholder until the consumer lands: the lead wired main.rs against this.
pub async fn run(
    _args: RabbitArgs,
    _engine: std::sync::Arc<crate::engine::Engine>,
    status: super::SourceStatus,
    shutdown: tokio_util::sync::CancellationToken,
) {
    status.set(super::SourceState::Reconnecting);
    shutdown.cancelled().await;
}
