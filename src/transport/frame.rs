//! WebSocket data framing (RFC 6455 §5) for both directions, as a sans-IO decoder and an
//! encoder. Headers are parsed and written by tungstenite's public `FrameHeader`; the
//! payload handling (unmasking, reassembly of fragments, the size limit) lives here so
//! that a message is copied once, from the read buffer into its own `Vec`.
//!
//! An over-long message is not buffered: its bytes are skipped as they arrive and the
//! caller is told once, so the connection stays usable.

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// One complete thing the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The peer closed, with its status code if it gave one.
    Close(Option<u16>),
    /// A message over the limit was discarded; carries its size as far as known.
    TooBig(u64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("malformed frame header: {0}")]
    Header(String),
    #[error("continuation frame without a message to continue")]
    StrayContinuation,
    #[error("new data frame while a fragmented message is open")]
    InterleavedMessage,
    #[error("control frame too long or fragmented")]
    BadControl,
}

/// Reassembles messages from a byte stream.
#[derive(Debug)]
pub struct Decoder {
    max_message: u64,
    /// Opcode and bytes of a fragmented message still open.
    partial: Option<(bool, Vec<u8>)>,
    /// Payload bytes still to discard of an over-long message, and its size so far.
    skip: u64,
    skipped_total: u64,
    /// Whether the frame being skipped is the last of its message.
    skip_final: bool,
    /// True from the first frame of an over-long message until its last one is skipped.
    discarding: bool,
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Decoder {
            max_message: max_message as u64,
            partial: None,
            skip: 0,
            skipped_total: 0,
            skip_final: false,
            discarding: false,
        }
    }

    /// Decodes from `input`. Returns how many bytes were consumed and possibly one
    /// message; `(0, None)` means more input is needed.
    ///
    /// # Errors
    /// A protocol violation; the connection should then be closed.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Incoming>), FrameError> {
        if self.skip > 0 {
            let n = self.skip.min(input.len() as u64);
            self.skip -= n;
            if self.skip == 0 && self.skip_final {
                return Ok((n as usize, Some(self.finish_skip())));
            }
            return Ok((n as usize, None));
        }
        let mut cur = Cursor::new(input);
        let (header, len) = match FrameHeader::parse(&mut cur) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok((0, None)),
            Err(e) => return Err(FrameError::Header(e.to_string())),
        };
        let hlen = cur.position() as usize;
        if let OpCode::Control(_) = header.opcode {
            if len > 125 || !header.is_final {
                return Err(FrameError::BadControl);
            }
        } else {
            let continuing = header.opcode == OpCode::Data(Data::Continue);
            if continuing && self.partial.is_none() && !self.discarding {
                return Err(FrameError::StrayContinuation);
            }
            if !continuing && (self.partial.is_some() || self.discarding) {
                return Err(FrameError::InterleavedMessage);
            }
            let open = self.partial.as_ref().map_or(0, |(_, b)| b.len() as u64);
            // `len` is whatever the peer declared (up to 2^64 - 1): never add it unchecked.
            if self.discarding || len > self.max_message.saturating_sub(open) {
                if !self.discarding {
                    self.discarding = true;
                    self.skipped_total = open;
                    self.partial = None;
                }
                self.skipped_total = self.skipped_total.saturating_add(len);
                self.skip = len;
                self.skip_final = header.is_final;
                if len == 0 && header.is_final {
                    return Ok((hlen, Some(self.finish_skip())));
                }
                return Ok((hlen, None));
            }
        }
        // Control frames are at most 125 bytes and data frames at most `max_message`
        // (checked above), so this cannot overflow.
        let total = hlen + len as usize;
        if input.len() < total {
            return Ok((0, None));
        }
        let mut payload = input[hlen..total].to_vec();
        if let Some(mask) = header.mask {
            apply_mask(&mut payload, mask);
        }
        let msg = match header.opcode {
            OpCode::Control(Control::Ping) => Some(Incoming::Ping(payload)),
            OpCode::Control(Control::Pong) => Some(Incoming::Pong),
            OpCode::Control(Control::Close) => Some(Incoming::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            )),
            OpCode::Control(Control::Reserved(_)) => None,
            OpCode::Data(data) => self.data_frame(data, header.is_final, payload),
        };
        Ok((total, msg))
    }

    fn finish_skip(&mut self) -> Incoming {
        let n = self.skipped_total;
        self.skipped_total = 0;
        self.discarding = false;
        Incoming::TooBig(n)
    }

    fn data_frame(&mut self, data: Data, fin: bool, payload: Vec<u8>) -> Option<Incoming> {
        let (text, bytes) = match (data, self.partial.take()) {
            (Data::Continue, Some((text, mut buf))) => {
                buf.extend_from_slice(&payload);
                (text, buf)
            }
            (Data::Text, None) => (true, payload),
            (Data::Binary, None) => (false, payload),
            _ => return None,
        };
        if !fin {
            self.partial = Some((text, bytes));
            return None;
        }
        Some(if text {
            Incoming::Text(bytes)
        } else {
            Incoming::Binary(bytes)
        })
    }
}

/// Frame kinds the proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    Text,
    Ping,
    Pong,
    Close,
}

/// Appends one frame to `out`. Client-to-server frames must be masked (`mask = Some`).
pub fn encode(kind: Outgoing, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    let opcode = match kind {
        Outgoing::Text => OpCode::Data(Data::Text),
        Outgoing::Ping => OpCode::Control(Control::Ping),
        Outgoing::Pong => OpCode::Control(Control::Pong),
        Outgoing::Close => OpCode::Control(Control::Close),
    };
    let header = FrameHeader {
        opcode,
        mask,
        ..FrameHeader::default()
    };
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(&mut out[start..], m);
    }
}

/// XORs `buf` with the repeating 4-byte `mask`, eight bytes at a time.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let m8 = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ m8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    let done = buf.len() - buf.len() % 8;
    for (i, b) in buf[done..].iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(kind: Outgoing, p: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(kind, p, Some([1, 2, 3, 4]), &mut v);
        v
    }

    fn decode_all(d: &mut Decoder, mut input: &[u8]) -> Vec<Incoming> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (n, m) = d.decode(input).unwrap();
            if n == 0 && m.is_none() {
                break;
            }
            input = &input[n..];
            out.extend(m);
        }
        out
    }

    #[test]
    fn round_trip_masked_text() {
        let f = masked(Outgoing::Text, b"{\"janus\":\"ping\"}");
        let mut d = Decoder::new(1024);
        assert_eq!(
            decode_all(&mut d, &f),
            [Incoming::Text(b"{\"janus\":\"ping\"}".to_vec())]
        );
    }

    #[test]
    fn partial_input_needs_more() {
        let f = masked(Outgoing::Text, &[b'x'; 300]);
        let mut d = Decoder::new(1024);
        assert_eq!(d.decode(&f[..100]).unwrap(), (0, None));
        assert_eq!(d.decode(&f[..1]).unwrap(), (0, None));
        let (n, m) = d.decode(&f).unwrap();
        assert_eq!(n, f.len());
        assert_eq!(m, Some(Incoming::Text(vec![b'x'; 300])));
    }

    #[test]
    fn oversized_message_is_skipped_and_stream_continues() {
        let mut s = masked(Outgoing::Text, &[b'a'; 5000]);
        s.extend(masked(Outgoing::Ping, b"p"));
        s.extend(masked(Outgoing::Text, b"ok"));
        let mut d = Decoder::new(1024);
        // Feed in small pieces, as a socket would.
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in s.chunks(700) {
            buf.extend_from_slice(chunk);
            loop {
                let (n, m) = d.decode(&buf).unwrap();
                if n == 0 && m.is_none() {
                    break;
                }
                buf.drain(..n);
                out.extend(m);
            }
        }
        assert_eq!(
            out,
            [
                Incoming::TooBig(5000),
                Incoming::Ping(b"p".to_vec()),
                Incoming::Text(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn fragments_are_joined() {
        let mut s = Vec::new();
        let h = |op, fin| FrameHeader {
            is_final: fin,
            opcode: op,
            mask: Some([9, 9, 9, 9]),
            ..FrameHeader::default()
        };
        for (op, fin, p) in [
            (OpCode::Data(Data::Text), false, &b"ab"[..]),
            (OpCode::Data(Data::Continue), true, &b"cd"[..]),
        ] {
            h(op, fin).format(p.len() as u64, &mut s).unwrap();
            let start = s.len();
            s.extend_from_slice(p);
            apply_mask(&mut s[start..], [9, 9, 9, 9]);
        }
        let mut d = Decoder::new(1024);
        assert_eq!(decode_all(&mut d, &s), [Incoming::Text(b"abcd".to_vec())]);
    }

    #[test]
    fn stray_continuation_is_an_error() {
        let mut s = Vec::new();
        FrameHeader {
            opcode: OpCode::Data(Data::Continue),
            ..FrameHeader::default()
        }
        .format(0, &mut s)
        .unwrap();
        assert_eq!(
            Decoder::new(10).decode(&s).unwrap_err(),
            FrameError::StrayContinuation
        );
    }

    #[test]
    fn mask_matches_bytewise() {
        let mut a: Vec<u8> = (0..37).collect();
        let b = a.clone();
        apply_mask(&mut a, [7, 8, 9, 10]);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(*x, y ^ [7, 8, 9, 10][i % 4]);
        }
    }

    /// A raw frame header with any declared length (the encoder would refuse some).
    fn raw_header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
        let mut v = vec![opcode | if fin { 0x80 } else { 0 }, 0x80 | 127];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[1, 2, 3, 4]);
        v
    }

    #[test]
    fn huge_declared_lengths_never_overflow() {
        // An open fragment of 2 bytes, then a continuation declaring 2^64 - 1 bytes:
        // `open + len` would wrap past 2^64.
        let mut s = Vec::new();
        FrameHeader {
            is_final: false,
            opcode: OpCode::Data(Data::Text),
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::default()
        }
        .format(2, &mut s)
        .unwrap();
        s.extend_from_slice(b"ab");
        for len in [u64::MAX, u64::MAX - 1, u64::MAX / 2 + 1, (1 << 63) - 1] {
            let mut input = s.clone();
            input.extend(raw_header(0x0, true, len));
            input.extend_from_slice(&[0; 64]);
            let mut d = Decoder::new(1024);
            let (n, m) = d.decode(&input).unwrap();
            assert_eq!((n, m), (8, None));
            // The continuation is being skipped as an over-long message.
            let (n, m) = d.decode(&input[n..]).unwrap();
            assert_eq!((n, m), (14, None));
            assert!(d.discarding);
            // And the skip itself never overflows either.
            assert_eq!(d.decode(&[0; 64]).unwrap(), (64, None));
        }
        // A first frame declaring the largest lengths is skipped too.
        let mut d = Decoder::new(1024);
        let (n, m) = d.decode(&raw_header(0x1, true, u64::MAX)).unwrap();
        assert_eq!((n, m), (14, None));
    }

    #[test]
    fn close_code_is_read() {
        let f = masked(Outgoing::Close, &1000u16.to_be_bytes());
        assert_eq!(
            decode_all(&mut Decoder::new(10), &f),
            [Incoming::Close(Some(1000))]
        );
    }
}
