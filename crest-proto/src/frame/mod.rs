//! Frames (RFC 6455 §5.2): the header codec and masking.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! ```

pub(crate) mod mask;

use crate::error::ProtocolError;

/// RFC 6455 §5.5: all control frames MUST have a payload length of 125 bytes or less.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// RFC 6455 §5.2: the longest possible frame header (2 + 8 length + 4 mask bytes).
pub const MAX_HEADER_LEN: usize = 14;

/// RSV1 bit of the first header byte (used by permessage-deflate, RFC 7692).
pub const RSV1: u8 = 0x40;
/// RSV2 bit of the first header byte.
pub const RSV2: u8 = 0x20;
/// RSV3 bit of the first header byte.
pub const RSV3: u8 = 0x10;

/// A frame opcode (RFC 6455 §5.2, §11.8). Reserved opcodes never get a value:
/// decoding one is a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the low four bits of the first header byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (Close, Ping, Pong; §5.5).
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: the last frame of a message.
    pub fin: bool,
    /// The RSV bits as they sit in the first byte (`RSV1 | RSV2 | RSV3` mask).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header (at most 13
    /// bytes are ever needed before an answer), `Ok(Some((header, len)))` with
    /// the header's length in bytes, or the rule the header breaks. Checked
    /// here, needing no context: reserved opcodes, the 64-bit length's most
    /// significant bit, control frames that are fragmented or longer than 125
    /// bytes. Checked by the connection, needing context: RSV bits against
    /// negotiated extensions, masking by role, size limits, continuation rules.
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut len) = match b1 & 0x7F {
            126 => {
                let Some(ext) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
            }
            127 => {
                let Some(ext) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(ext);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (n, 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode.is_control() {
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLarge(payload_len));
            }
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
        }
        let mask = if masked {
            let Some(k) = buf.get(len..len + 4) else {
                return Ok(None);
            };
            len += 4;
            Some([k[0], k[1], k[2], k[3]])
        } else {
            None
        };
        Ok(Some((Self { fin, rsv: b0 & 0x70, opcode, mask, payload_len }, len)))
    }

    /// Encodes the header into `out`, returning how many bytes were written.
    /// The length uses the minimal form (RFC 6455 §5.2).
    #[inline]
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = u8::from(self.fin) << 7 | self.rsv & 0x70 | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One named test per RFC 6455 §5.7 example frame.
    macro_rules! rfc_frames {
        ($($name:ident: $bytes:expr => $fin:expr, $op:expr, $mask:expr, $payload:expr;)*) => {$(
            #[test]
            fn $name() {
                let bytes: &[u8] = &$bytes;
                let (h, n) = FrameHeader::decode(bytes).unwrap().unwrap();
                assert_eq!((h.fin, h.opcode, h.mask), ($fin, $op, $mask));
                let mut payload = bytes[n..].to_vec();
                if let Some(key) = h.mask { mask::apply_mask(&mut payload, key, 0); }
                assert_eq!(payload, $payload);
                assert_eq!(h.payload_len as usize, payload.len());
                let mut out = [0u8; MAX_HEADER_LEN];
                let len = h.encode(&mut out);
                assert_eq!(&out[..len], &bytes[..n]);
            }
        )*};
    }

    rfc_frames! {
        rfc_unmasked_hello: [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f] => true, OpCode::Text, None, b"Hello";
        rfc_masked_hello: [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
            => true, OpCode::Text, Some([0x37, 0xfa, 0x21, 0x3d]), b"Hello";
        rfc_fragment_hel: [0x01, 0x03, 0x48, 0x65, 0x6c] => false, OpCode::Text, None, b"Hel";
        rfc_fragment_lo: [0x80, 0x02, 0x6c, 0x6f] => true, OpCode::Continuation, None, b"lo";
        rfc_unmasked_ping: [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f] => true, OpCode::Ping, None, b"Hello";
        rfc_masked_pong: [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
            => true, OpCode::Pong, Some([0x37, 0xfa, 0x21, 0x3d]), b"Hello";
    }

    #[test]
    fn rfc_256_and_64k_binary_lengths() {
        // §5.7: 256 bytes binary in a single unmasked message: 0x82 0x7E 0x0100.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 256, 4));
        // §5.7: 64 KiB: 0x82 0x7F 0x0000000000010000.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn partial_headers_need_more() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(FrameHeader::decode(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(FrameHeader::decode(&full).unwrap().is_some());
    }

    #[test]
    fn header_rule_violations() {
        assert_eq!(FrameHeader::decode(&[0x83, 0]), Err(ProtocolError::ReservedOpcode(3)));
        assert_eq!(FrameHeader::decode(&[0x8B, 0]), Err(ProtocolError::ReservedOpcode(0xB)));
        assert_eq!(FrameHeader::decode(&[0x89, 126, 0, 126]), Err(ProtocolError::ControlFrameTooLarge(126)));
        assert_eq!(FrameHeader::decode(&[0x09, 0]), Err(ProtocolError::FragmentedControlFrame));
        let top_bit = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::decode(&top_bit), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn encode_uses_minimal_length() {
        for (len, expect) in [(0u64, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let h = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: None, payload_len: len };
            let mut out = [0u8; MAX_HEADER_LEN];
            assert_eq!(h.encode(&mut out), expect, "len {len}");
            assert_eq!(FrameHeader::decode(&out[..expect]).unwrap().unwrap(), (h, expect));
        }
    }
}
