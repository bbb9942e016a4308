//! Connecting to the broker: the one way this process opens an AMQP
//! connection, whatever it is for (the stream consumer, the read-back,
//! checkpoints, the peer link, `tourcast publish`).
//!
//! Every connection gets the same heartbeat default, the same client
//! properties (`product`, `version`), a bounded connect time, and a name
//! that says whose it is and what it does (`tourcast@host:pid (read-back)`),
//! so that an operator reading `rabbitmqctl list_connections
//! client_properties` can tell them apart. TLS settings, when they come,
//! belong here too.

use std::str::FromStr as _;
use std::time::Duration;

use lapin::types::LongString;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use thiserror::Error;
use tokio::time::timeout;

use super::RabbitArgs;

/// How long a connection attempt may take (TCP, TLS, AMQP handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeat asked of the broker when the URL does not say: a broker that
/// vanishes without closing the socket is noticed within two of these.
const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// Why a connection could not be opened.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The broker did not finish the handshake in time.
    #[error("connecting timed out after {0:?}")]
    Timeout(Duration),
    /// The broker refused, or could not be reached.
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// Opens connections to one broker under one name.
#[derive(Debug, Clone)]
pub struct Connector {
    uri: AMQPUri,
    name: String,
}

impl Connector {
    /// Connections to the broker at `url`, named `name`. The URL's
    /// heartbeat is kept; without one, ours applies.
    pub fn new(url: &str, name: impl Into<String>) -> Result<Self, String> {
        let mut uri = AMQPUri::from_str(url)?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        Ok(Connector {
            uri,
            name: name.into(),
        })
    }

    /// The gateway's connections: named `RABBITMQ_CONNECTION_NAME`, or
    /// `tourcast@<host>:<pid>` (unique per process).
    pub fn for_gateway(args: &RabbitArgs) -> Result<Self, String> {
        let name = args
            .connection_name
            .clone()
            .unwrap_or_else(default_connection_name);
        Connector::new(&args.broker.url, name)
    }

    /// The same broker for another job of this process: named
    /// `<name> (<job>)`.
    pub fn for_job(&self, job: &str) -> Self {
        Connector {
            uri: self.uri.clone(),
            name: format!("{} ({job})", self.name),
        }
    }

    /// The connection name the broker shows.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client properties every connection carries.
    fn properties(&self) -> ConnectionProperties {
        ConnectionProperties::default()
            .with_connection_name(LongString::from(self.name.as_str()))
            .with_client_property("product".into(), LongString::from("tourcast"))
            .with_client_property(
                "version".into(),
                LongString::from(env!("CARGO_PKG_VERSION")),
            )
    }

    /// Opens a connection, within [`CONNECT_TIMEOUT`].
    pub async fn connect(&self) -> Result<Connection, ConnectError> {
        let connect = Connection::connect_uri(self.uri.clone(), self.properties());
        match timeout(CONNECT_TIMEOUT, connect).await {
            Ok(connection) => Ok(connection?),
            Err(_) => Err(ConnectError::Timeout(CONNECT_TIMEOUT)),
        }
    }
}

/// `tourcast@<host>:<pid>`: unique per process.
fn default_connection_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("tourcast@{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_added_unless_the_url_sets_one() {
        let plain = Connector::new("amqp://localhost:5672", "t").expect("valid");
        assert_eq!(plain.uri.query.heartbeat, Some(DEFAULT_HEARTBEAT_SECS));
        let own = Connector::new("amqp://localhost:5672/%2f?heartbeat=3", "t").expect("valid");
        assert_eq!(own.uri.query.heartbeat, Some(3));
        assert!(Connector::new("http://nope", "t").is_err());
    }

    #[test]
    fn each_job_is_named_after_the_process() {
        let gateway = Connector::new("amqp://localhost", "tourcast@h:1").expect("valid");
        assert_eq!(gateway.for_job("peers").name(), "tourcast@h:1 (peers)");
        assert_eq!(gateway.name(), "tourcast@h:1");
    }
}
