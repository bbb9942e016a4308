//! An applied event's message, encoded on first use.
//!
//! The projection keeps every tour's last events for recovery. Encoding
//! each one to JSON and protobuf as it is applied was most of the
//! projection's cost during a replay, when nobody is subscribed and most of
//! those messages are never sent (nor ever will be: they roll out of the
//! history first). A [`LazyMessage`] holds the message unencoded until a
//! fan-out, a recovery or a checkpoint needs its bytes; from then on it
//! holds only the encoded bytes, shared by every recipient and every later
//! recovery (encode once per encoding, share the bytes).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::protocol::ServerMessage;
use crate::protocol::codec::{Encoded, encode_proto};

/// A server message, encoded at most once.
#[derive(Debug)]
pub struct LazyMessage {
    repr: Mutex<Repr>,
}

#[derive(Debug)]
enum Repr {
    /// Not needed by anyone yet.
    Pending(Box<ServerMessage>),
    /// Encoded once; the message itself is no longer kept.
    Encoded(Arc<Encoded>),
}

impl LazyMessage {
    /// A message nobody has needed yet.
    pub fn new(message: ServerMessage) -> Self {
        LazyMessage {
            repr: Mutex::new(Repr::Pending(Box::new(message))),
        }
    }

    /// A message already encoded (a notification, kept encoded in the
    /// inbox anyway).
    pub fn from_encoded(encoded: Arc<Encoded>) -> Self {
        LazyMessage {
            repr: Mutex::new(Repr::Encoded(encoded)),
        }
    }

    /// The encoded message, encoding it now if this is its first use.
    pub fn encoded(&self) -> Arc<Encoded> {
        let mut repr = self.repr.lock();
        match &*repr {
            Repr::Encoded(encoded) => Arc::clone(encoded),
            Repr::Pending(message) => {
                let encoded = Arc::new(Encoded::new(message));
                *repr = Repr::Encoded(Arc::clone(&encoded));
                encoded
            }
        }
    }

    /// The protobuf bytes, for a checkpoint: the shared ones when the
    /// message was encoded, else encoded for this use only (a checkpoint
    /// is no reason to keep JSON nobody asked for).
    pub fn proto(&self) -> Vec<u8> {
        match &*self.repr.lock() {
            Repr::Encoded(encoded) => encoded.proto.to_vec(),
            Repr::Pending(message) => encode_proto(message).to_vec(),
        }
    }

    /// Whether the message has been encoded (for tests and accounting).
    pub fn is_encoded(&self) -> bool {
        matches!(&*self.repr.lock(), Repr::Encoded(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v1::Pong;

    fn pong() -> ServerMessage {
        ServerMessage::Pong(Pong {
            timestamp: "2025-01-08T10:30:00.000Z".into(),
            request_id: Some("r1".into()),
        })
    }

    #[test]
    fn encodes_once_on_first_use_and_shares_the_bytes() {
        let lazy = LazyMessage::new(pong());
        assert!(!lazy.is_encoded());
        // A checkpoint's bytes do not encode it for good…
        let proto = lazy.proto();
        assert!(!lazy.is_encoded());
        let first = lazy.encoded();
        assert!(lazy.is_encoded());
        // …and are the bytes a fan-out sends.
        assert_eq!(proto, first.proto.to_vec());
        assert!(Arc::ptr_eq(&first, &lazy.encoded()));
        assert_eq!(first.json.as_str(), Encoded::new(&pong()).json.as_str());
    }
}
