//! tourcast: a real-time gateway that turns a tour-booking platform's
//! RabbitMQ events into typed WebSocket pushes.
//!
//! The parts, in the order data flows through them:
//! - [`source`]: where events come from (the demo feed, the RabbitMQ
//!   stream), each decoded into an [`event`];
//! - [`engine`]: applies events to the [`state`] (the projection: current
//!   state, every channel's history, duplicate filter) and fans them out
//!   through the [`hub`] (who is subscribed to which [`channel`], bounded
//!   per-connection queues); serves recoveries, reading the stream back
//!   when memory is short;
//! - [`stats`]: the admin `stats` channel, its figures shared between
//!   instances over the broker;
//! - [`presence`]: who is in which room on every instance, and tours'
//!   viewer counts, shared over the same link;
//! - [`peer_table`]: what each other instance last reported, expiring the
//!   silent ones (for `stats` and `presence`);
//! - [`server`]: HTTP: admission, the WebSocket and SSE endpoints, the
//!   session loop every connection runs, health;
//! - [`transport`]: the wires a session speaks over (WebSocket, Server-Sent
//!   Events), below which nothing knows one;
//! - [`protocol`]: the wire contract generated from `proto/` and the codec
//!   that validates every client frame before it is routed;
//! - [`gateway`]: all of the above wired together, for the binary and the
//!   tests alike;
//! - [`auth`]: JWT verification and per-tour permissions;
//! - [`telemetry`]: Prometheus metric names and the recorder;
//! - [`config`]: every setting, from flags or the environment;
//! - [`cli`]: `tourcast publish` and `tourcast token`;
//! - [`backoff`]: exponential backoff with jitter, for every retry loop;
//! - [`time`]: timestamps as the protocol writes them.
//!
//! The README's glossary gives each word one meaning: a *channel* is what a
//! connection subscribes to, a *fan-out* delivers one message to its
//! recipients, to *publish* is to put a message on the RabbitMQ exchange,
//! the server *closes* a connection for a `CloseReason`, *counters* are what
//! a part counts about itself and *stats* is the admin channel.

pub mod auth;
pub mod backoff;
pub mod channel;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod gateway;
pub mod hub;
pub mod peer_table;
pub mod presence;
pub mod protocol;
pub mod server;
pub mod source;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod time;
pub mod transport;
