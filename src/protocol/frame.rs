//! What the hub queues: a server message encoded once, with what any
//! transport needs to put it on its wire, and nothing of any transport.
//!
//! A [`Frame`] is the encoded bytes in one encoding, the message's JSON
//! `type` and its stream position (Server-Sent Events name and number each
//! event by them). Cloning one is a reference-count bump, so one encoding
//! of an event serves every recipient of that encoding, whichever
//! transport carries it. A transport that compresses keeps the compressed
//! form in the frame too ([`Frame::compressed_with`]), made once for all. [`Encoded`] is an event in both encodings, as the
//! state keeps it for replays.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::ServerMessage;
use super::codec::{Encoding, encode_json, encode_proto};

/// One server message, encoded, ready for any transport.
#[derive(Clone)]
pub struct Frame(Arc<FrameData>);

struct FrameData {
    payload: Bytes,
    encoding: Encoding,
    json_type: &'static str,
    position: Option<u64>,
    /// The payload compressed, once some transport asked (`None` inside:
    /// compressing did not pay).
    compressed: OnceLock<Option<Bytes>>,
}

impl Frame {
    /// Encodes `message` in `encoding` (replies, acknowledgements: one
    /// recipient).
    pub fn encode(message: &ServerMessage, encoding: Encoding) -> Self {
        let payload = match encoding {
            Encoding::Proto => encode_proto(message),
            _ => encode_json(message),
        };
        Frame::from_parts(message, encoding, payload)
    }

    fn from_parts(message: &ServerMessage, encoding: Encoding, payload: Bytes) -> Self {
        Frame(Arc::new(FrameData {
            payload,
            encoding: match encoding {
                Encoding::Proto => Encoding::Proto,
                _ => Encoding::Json,
            },
            json_type: message.json_type(),
            position: stream_position(message),
            compressed: OnceLock::new(),
        }))
    }

    /// Bytes already encoded, sent as they are (the WebSocket echo harness,
    /// tests): no type, no position.
    pub fn verbatim(payload: Bytes, encoding: Encoding) -> Self {
        Frame(Arc::new(FrameData {
            payload,
            encoding,
            json_type: "",
            position: None,
            compressed: OnceLock::new(),
        }))
    }

    /// The payload compressed by `compress`, which runs for the first
    /// caller only; every recipient shares its result (`None`: sent plain).
    /// The transport owns what "compressed" means; every caller must pass
    /// the same `compress`.
    pub fn compressed_with(&self, compress: impl FnOnce(&[u8]) -> Option<Bytes>) -> Option<&Bytes> {
        self.0
            .compressed
            .get_or_init(|| compress(&self.0.payload))
            .as_ref()
    }

    /// The encoded message.
    pub fn payload(&self) -> &Bytes {
        &self.0.payload
    }

    /// The encoding of [`Frame::payload`]: JSON (text) or protobuf (binary).
    pub fn encoding(&self) -> Encoding {
        self.0.encoding
    }

    /// Whether the payload is JSON text (else protobuf bytes).
    pub fn is_text(&self) -> bool {
        self.0.encoding != Encoding::Proto
    }

    /// The payload as text; empty for a protobuf frame. (JSON payloads are
    /// written by serde_json, always UTF-8.)
    pub fn as_str(&self) -> &str {
        if self.is_text() {
            std::str::from_utf8(&self.0.payload).unwrap_or_default()
        } else {
            ""
        }
    }

    /// The message's JSON `type` (`tour.availability.updated`, `snapshot`, …).
    pub fn json_type(&self) -> &'static str {
        self.0.json_type
    }

    /// The stream position the message reflects, if it has one: an event's
    /// `seq`, a snapshot's newest tour `seq`, where a `subscribed` to
    /// notifications says live ones follow.
    pub fn position(&self) -> Option<u64> {
        self.0.position
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0.payload
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("type", &self.0.json_type)
            .field("encoding", &self.0.encoding)
            .field("position", &self.0.position)
            .field("bytes", &self.0.payload.len())
            .finish()
    }
}

/// A server message encoded in both encodings, ready to be shared.
///
/// Cloning is two reference-count increments: one encoding serves every
/// recipient of that encoding.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The JSON frame.
    pub json: Frame,
    /// The protobuf frame.
    pub proto: Frame,
}

impl Encoded {
    /// Encodes `message` once per encoding.
    pub fn new(message: &ServerMessage) -> Self {
        Encoded {
            json: Frame::from_parts(message, Encoding::Json, encode_json(message)),
            proto: Frame::from_parts(message, Encoding::Proto, encode_proto(message)),
        }
    }

    /// The frame for a recipient of `encoding` (no copy).
    pub fn frame(&self, encoding: Encoding) -> Frame {
        match encoding {
            Encoding::Proto => self.proto.clone(),
            _ => self.json.clone(),
        }
    }
}

/// Where in the stream a message stands, for the transports that number
/// what they send (Server-Sent Events' `id:`).
fn stream_position(message: &ServerMessage) -> Option<u64> {
    match message {
        ServerMessage::AvailabilityUpdated(m) => Some(m.seq),
        ServerMessage::AvailabilityLow(m) => Some(m.seq),
        ServerMessage::Notification(m) => Some(m.seq),
        ServerMessage::RoomMessage(m) => Some(m.seq),
        // The snapshot reflects every event of its tours up to the newest
        // of their `seq`s; the tours' events after it are newer.
        ServerMessage::Snapshot(m) => m.tours.iter().map(|tour| tour.seq).max(),
        ServerMessage::Subscribed(m) => m.seq,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v1::{AvailabilityUpdated, Pong, TourAvailability};

    #[test]
    fn a_frame_carries_its_type_and_position_in_both_encodings() {
        let event = ServerMessage::AvailabilityUpdated(AvailabilityUpdated {
            data: Some(TourAvailability {
                tour_id: "tour_paris".into(),
                available_seats: 3,
                ..Default::default()
            }),
            seq: 42,
            timestamp: "2026-12-06T00:00:00Z".into(),
            event_id: None,
        });
        let encoded = Encoded::new(&event);
        for frame in [
            encoded.frame(Encoding::Json),
            encoded.frame(Encoding::Proto),
        ] {
            assert_eq!(frame.json_type(), "tour.availability.updated");
            assert_eq!(frame.position(), Some(42));
        }
        assert!(encoded.json.is_text());
        assert!(encoded.json.as_str().contains(r#""seq":42"#));
        assert!(!encoded.proto.is_text());
        assert_eq!(encoded.proto.as_str(), "");
        let pong = Frame::encode(&ServerMessage::Pong(Pong::default()), Encoding::Json);
        assert_eq!((pong.json_type(), pong.position()), ("pong", None));
    }

    #[test]
    fn a_clone_shares_the_bytes() {
        let encoded = Encoded::new(&ServerMessage::Pong(Pong::default()));
        let a = encoded.frame(Encoding::Json);
        let b = encoded.frame(Encoding::Json);
        assert_eq!(a.payload().as_ptr(), b.payload().as_ptr());
    }
}
