//! RFC 6455 framing (§5.2): a frame's header read from bytes, a header
//! written for the server's (unmasked) frames, and unmasking.
//!
//! Hand-written rather than taken from tungstenite: its reader refuses
//! the RSV1 bit that permessage-deflate sets, and its writer copies every
//! payload into a per-connection buffer it keeps; this is the ~100 lines
//! the transport needs to write shared, already-compressed payloads and to
//! read compressed client frames.

/// Continuation of a fragmented message.
pub const CONTINUATION: u8 = 0x0;
/// A text message (UTF-8).
pub const TEXT: u8 = 0x1;
/// A binary message.
pub const BINARY: u8 = 0x2;
/// Close.
pub const CLOSE: u8 = 0x8;
/// Ping.
pub const PING: u8 = 0x9;
/// Pong.
pub const PONG: u8 = 0xA;

/// A frame's header, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1: a compressed message's first frame (permessage-deflate).
    pub rsv1: bool,
    /// RSV2 or RSV3: no extension here defines them.
    pub rsv23: bool,
    /// The opcode.
    pub opcode: u8,
    /// The masking key; clients must mask every frame.
    pub mask: Option<[u8; 4]>,
    /// The payload's length.
    pub payload_len: u64,
    /// The header's own length in bytes.
    pub len: usize,
}

impl Header {
    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Reads a header from the start of `bytes`; `None` until all of it is there.
pub fn parse(bytes: &[u8]) -> Option<Header> {
    let (&first, rest) = bytes.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let (payload_len, extended) = match second & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            2,
        ),
        127 => (u64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
        n => (u64::from(n), 0),
    };
    let masked = second & 0x80 != 0;
    let mask = if masked {
        Some(rest.get(extended..extended + 4)?.try_into().ok()?)
    } else {
        None
    };
    Some(Header {
        fin: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        rsv23: first & 0x30 != 0,
        opcode: first & 0x0F,
        mask,
        payload_len,
        len: 2 + extended + if masked { 4 } else { 0 },
    })
}

/// Appends the header of a server frame (final, unmasked) to `out`.
pub fn write_header(out: &mut Vec<u8>, opcode: u8, rsv1: bool, payload_len: usize) {
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    match payload_len {
        0..=125 => out.push(payload_len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
}

/// Appends a whole server frame.
pub fn write_frame(out: &mut Vec<u8>, opcode: u8, rsv1: bool, payload: &[u8]) {
    write_header(out, opcode, rsv1, payload.len());
    out.extend_from_slice(payload);
}

/// Unmasks (or masks: the same XOR) `payload` with `mask`.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_at_every_length_boundary() {
        for len in [0, 125, 126, 65_535, 65_536, 1 << 20] {
            let mut out = Vec::new();
            write_header(&mut out, BINARY, true, len);
            let header = parse(&out).expect("complete");
            assert_eq!(header.len, out.len());
            assert_eq!(header.payload_len, len as u64);
            assert!(header.fin && header.rsv1 && !header.rsv23 && header.mask.is_none());
            assert_eq!(header.opcode, BINARY);
            assert_eq!(parse(&out[..out.len() - 1]), None, "{len}: incomplete");
        }
    }

    #[test]
    fn a_masked_client_header_and_its_payload() {
        // "Hello", masked, from RFC 6455 §5.7.
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let header = parse(&frame).expect("complete");
        assert_eq!(
            (header.opcode, header.len, header.payload_len),
            (TEXT, 6, 5)
        );
        let mut payload = frame[6..].to_vec();
        unmask(&mut payload, header.mask.expect("masked"));
        assert_eq!(payload, b"Hello");
    }
}
