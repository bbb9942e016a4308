//! tourcast: a real-time gateway that turns a tour-booking platform's
//! RabbitMQ events into typed WebSocket pushes.
//!
//! The parts, in the order data flows through them:
//! - [`protocol`]: the wire contract generated from `proto/` and the codec
//!   that validates every client frame before it is routed;

pub mod protocol;
