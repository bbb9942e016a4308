//! permessage-deflate (RFC 7692): what is agreed in the handshake, and
//! the compression on each side of it.
//!
//! **Server to client**, the gateway always asks for
//! `server_no_context_takeover`: each message is compressed on its own,
//! so one compressed form serves every recipient, and a frame's
//! compressed bytes are made once, by the first connection that needs them,
//! then shared ([`Frame::compressed_with`](crate::protocol::frame::Frame::compressed_with)).
//! A client that limits the server's window (`server_max_window_bits=N`)
//! gets compressed only the messages no longer than 2^N bytes (no
//! back-reference in them can reach further); larger ones go plain, which
//! the extension allows message by message.
//!
//! **Client to server**, the gateway answers `client_no_context_takeover`
//! (a server may, whatever the offer): each client message inflates on its
//! own, with the worker thread's inflater, so an idle connection keeps no
//! 32 KiB window. Inflating stops at the message limit: a frame that would
//! inflate past it is refused without inflating the rest.
//!
//! The compressor and inflater are per worker thread and reset for each
//! message: creating miniz's compressor costs ~300 KiB of allocation.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The tail every sync-flushed deflate block ends with, which RFC 7692
/// §7.2.1 has the sender strip and the receiver put back.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// What the handshake agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The window the client lets the server's messages use (2^bits).
    pub server_max_window_bits: u8,
    /// Whether the client's offer named `server_max_window_bits` (then
    /// the answer must, too).
    server_window_named: bool,
}

impl Agreement {
    /// The `Sec-WebSocket-Extensions` answer.
    pub fn response_header(&self) -> String {
        let mut header =
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
                .to_string();
        if self.server_window_named {
            header.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        header
    }

    /// Whether a message of `len` bytes may go compressed under the window.
    pub fn fits_window(&self, len: usize) -> bool {
        self.server_max_window_bits >= 15 || len <= 1 << self.server_max_window_bits
    }
}

/// The first acceptable `permessage-deflate` offer among the
/// `Sec-WebSocket-Extensions` header values, if any. An offer with an
/// unknown, repeated or malformed parameter is skipped, as RFC 7692 §5
/// asks.
pub fn negotiate<'a>(header_values: impl IntoIterator<Item = &'a str>) -> Option<Agreement> {
    header_values
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(accept_offer)
}

fn accept_offer(offer: &str) -> Option<Agreement> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut agreement = Agreement {
        server_max_window_bits: 15,
        server_window_named: false,
    };
    for parameter in parts {
        let (name, value) = match parameter.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (parameter, None),
        };
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        match (name, value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(bits)) => {
                agreement.server_max_window_bits = window_bits(bits)?;
                agreement.server_window_named = true;
            }
            // Any window the client compresses with, the inflater reads.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(bits)) => {
                window_bits(bits)?;
            }
            _ => return None,
        }
    }
    Some(agreement)
}

fn window_bits(value: &str) -> Option<u8> {
    // Digits only: "+9" or "09" are not the RFC's 1*DIGIT.
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// `payload` compressed on its own at `level` (0–9), without the sync
/// tail; `None` when compressing does not make it smaller.
pub fn compress(payload: &[u8], level: u32) -> Option<Bytes> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some((at, compressor)) if *at == level => {
                compressor.reset();
                compressor
            }
            slot => {
                &mut slot
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        loop {
            let consumed = compressor.total_in() as usize;
            let status = compressor
                .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .ok()?;
            let done = compressor.total_in() as usize == payload.len()
                && out.len() < out.capacity()
                && status != Status::BufError;
            if done {
                break;
            }
            out.reserve(out.capacity().max(1024));
        }
        if !out.ends_with(&SYNC_TAIL) {
            return None;
        }
        out.truncate(out.len() - SYNC_TAIL.len());
        (out.len() < payload.len()).then(|| Bytes::from(out))
    })
}

/// Why a compressed client message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the limit (inflating stopped there).
    TooLarge,
    /// It is not valid deflate data.
    Corrupt,
}

/// Inflates one client message (compressed on its own: the handshake
/// agreed `client_no_context_takeover`), refusing it as soon as it would
/// exceed `limit` bytes.
pub fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut input = Vec::with_capacity(compressed.len() + SYNC_TAIL.len());
    input.extend_from_slice(compressed);
    input.extend_from_slice(&SYNC_TAIL);
    // Never room for more than one byte past the limit: reaching it is
    // the refusal, and nothing beyond is inflated.
    let ceiling = limit.saturating_add(1);
    INFLATER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let inflater = cell.get_or_insert_with(|| Decompress::new(false));
        inflater.reset(false);
        let mut out: Vec<u8> = Vec::with_capacity((compressed.len() * 4).clamp(256, ceiling));
        loop {
            if out.len() == out.capacity() {
                out.reserve_exact(out.capacity().min(ceiling - out.len()));
            }
            let before = (inflater.total_in(), inflater.total_out());
            let consumed = before.0 as usize;
            let status = inflater
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            if out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            let all_in = inflater.total_in() as usize == input.len();
            let stalled = (inflater.total_in(), inflater.total_out()) == before;
            if status == Status::StreamEnd || (all_in && out.len() < out.capacity()) {
                return Ok(out);
            }
            if stalled && out.len() < out.capacity() {
                // Input left that inflates to nothing: truncated or bad.
                return Err(InflateError::Corrupt);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_acceptable_offer_wins_and_bad_ones_are_skipped() {
        assert_eq!(negotiate(["x-webkit-deflate-frame"]), None);
        let plain = negotiate(["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(plain.server_max_window_bits, 15);
        assert_eq!(
            plain.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover=1",
        ] {
            assert_eq!(negotiate([bad]), None, "{bad}");
        }
        let second = negotiate([
            "permessage-deflate; server_max_window_bits=20, permessage-deflate; server_max_window_bits=\"10\"",
        ])
        .unwrap();
        assert_eq!(second.server_max_window_bits, 10);
        assert!(
            second
                .response_header()
                .ends_with("; server_max_window_bits=10")
        );
        assert!(second.fits_window(1024) && !second.fits_window(1025));
    }

    #[test]
    fn compressed_messages_inflate_to_themselves() {
        let json =
            r#"{"type":"tour.availability.updated","data":{"tourId":"tour_paris"}}"#.repeat(20);
        let compressed = compress(json.as_bytes(), 6).expect("smaller");
        assert!(compressed.len() < json.len() / 5, "{}", compressed.len());
        assert_eq!(inflate(&compressed, 1 << 20).unwrap(), json.as_bytes());
        // Again, with the same thread's reset compressor: the same bytes.
        assert_eq!(compress(json.as_bytes(), 6).unwrap(), compressed);
        assert_eq!(compress(b"incompressible", 6), None);
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_garbage_is_corrupt() {
        let zeros = vec![0u8; 10 << 20];
        let bomb = compress(&zeros, 9).expect("tiny");
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        assert_eq!(inflate(&bomb, 64 * 1024), Err(InflateError::TooLarge));
        assert_eq!(inflate(&bomb, 10 << 20).map(|v| v.len()), Ok(10 << 20));
        assert_eq!(
            inflate(&[0xFF, 0xFF, 0xFF], 1024),
            Err(InflateError::Corrupt)
        );
    }
}
