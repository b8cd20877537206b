//! [`Payload`]: message bytes, inline when small, shared `Bytes` when large.
//!
//! Handing out every received message as a slice of the read buffer costs
//! two atomic reference-count operations (one when split off, one when
//! dropped), which measured at ~12 ns per message here: more than everything
//! else the receive path does for a 16-byte message. Most WebSocket traffic
//! is small messages (chat lines, JSON events, game inputs), so payloads of
//! up to [`INLINE_CAPACITY`] bytes are copied into the value itself (a
//! 22-byte copy is cheaper than one atomic increment) and large ones stay
//! zero-copy slices of the buffer. `benches/proto.rs` measures both.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

/// Payloads up to this many bytes are stored inline. 22 keeps [`Payload`]
/// as small as [`Bytes`] (32 bytes): the inline variant fits beside the
/// niche of `Bytes`' vtable pointer, which then serves as the tag.
pub const INLINE_CAPACITY: usize = 22;

/// A message payload: derefs to `&[u8]`, cheap to clone, converts to and
/// from [`Bytes`].
///
/// Small payloads (up to [`INLINE_CAPACITY`] bytes) live inside the value,
/// with no allocation and no reference count; larger ones are [`Bytes`]
/// (received ones are slices of the read buffer, never copied).
#[derive(Clone)]
pub struct Payload(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE_CAPACITY] },
    Shared(Bytes),
}

impl Payload {
    /// An empty payload.
    pub const fn new() -> Self {
        Self(Repr::Inline { len: 0, data: [0; INLINE_CAPACITY] })
    }

    /// A payload from a static slice, without copying.
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        Self(Repr::Shared(Bytes::from_static(bytes)))
    }

    /// A payload holding a copy of `bytes` (inline when small).
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        match Self::inline(bytes) {
            Some(p) => p,
            None => Self(Repr::Shared(Bytes::copy_from_slice(bytes))),
        }
    }

    #[inline]
    fn inline(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > INLINE_CAPACITY {
            return None;
        }
        let mut data = [0u8; INLINE_CAPACITY];
        data[..bytes.len()].copy_from_slice(bytes);
        Some(Self(Repr::Inline { len: bytes.len() as u8, data }))
    }

    /// An inline payload of the first `len` (at most [`INLINE_CAPACITY`])
    /// bytes of `src`. When `src` has a full [`INLINE_CAPACITY`] bytes the
    /// copy is of that fixed size (two vector moves; the bytes past `len` are
    /// never read), which avoids a `memcpy` call and the store-forwarding
    /// stall of reading back a variable-length copy.
    #[inline]
    pub(crate) fn inline_prefix(src: &[u8], len: usize) -> Self {
        let data = match src.get(..INLINE_CAPACITY).map(<[u8; INLINE_CAPACITY]>::try_from) {
            Some(Ok(full)) => full,
            _ => {
                let mut data = [0u8; INLINE_CAPACITY];
                let n = src.len().min(INLINE_CAPACITY);
                data[..n].copy_from_slice(&src[..n]);
                data
            }
        };
        Self(Repr::Inline { len: len.min(src.len()).min(INLINE_CAPACITY) as u8, data })
    }

    /// An inline payload of the first `len` bytes of `block`.
    #[inline(always)]
    pub(crate) fn from_block(block: [u8; INLINE_CAPACITY], len: usize) -> Self {
        Self(Repr::Inline { len: len.min(INLINE_CAPACITY) as u8, data: block })
    }

    /// The inline buffer and length, if the payload is inline. All of
    /// `data` is initialised; only `data[..len]` is the payload.
    #[inline]
    pub(crate) fn inline_parts(&self) -> Option<(&[u8; INLINE_CAPACITY], usize)> {
        match &self.0 {
            Repr::Inline { len, data } => Some((data, usize::from(*len))),
            Repr::Shared(_) => None,
        }
    }

    /// Wraps `Bytes` known to be larger than [`INLINE_CAPACITY`].
    #[inline]
    pub(crate) fn shared(bytes: Bytes) -> Self {
        Self(Repr::Shared(bytes))
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Shared(b) => b,
        }
    }

    /// Converts into [`Bytes`]; copies (once) only if the payload is inline.
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Inline { len, data } => Bytes::copy_from_slice(&data[..usize::from(len)]),
            Repr::Shared(b) => b,
        }
    }

    /// Whether the bytes are stored inline.
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for Payload {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Bytes> for Payload {
    /// Keeps large `Bytes` as they are; small ones are copied inline, so the
    /// payload no longer holds a reference count.
    fn from(b: Bytes) -> Self {
        Self::inline(&b).unwrap_or(Self(Repr::Shared(b)))
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Self::inline(&v).unwrap_or_else(|| Self(Repr::Shared(Bytes::from(v))))
    }
}

impl From<String> for Payload {
    fn from(s: String) -> Self {
        Self::from(s.into_bytes())
    }
}

impl From<&[u8]> for Payload {
    fn from(s: &[u8]) -> Self {
        Self::copy_from_slice(s)
    }
}

impl<const N: usize> From<&[u8; N]> for Payload {
    fn from(s: &[u8; N]) -> Self {
        Self::copy_from_slice(s)
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Self::copy_from_slice(s.as_bytes())
    }
}

impl From<Payload> for Bytes {
    fn from(p: Payload) -> Self {
        p.into_bytes()
    }
}

impl From<Payload> for Vec<u8> {
    fn from(p: Payload) -> Self {
        p.as_slice().to_vec()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload {}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Bytes> for Payload {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_slice() == &other[..]
    }
}

impl PartialOrd for Payload {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Payload {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Payload {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_slice().escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_is_inline_large_is_shared_and_equal_either_way() {
        let small = Payload::from(vec![1u8; INLINE_CAPACITY]);
        assert!(small.is_inline());
        let big = Bytes::from(vec![2u8; INLINE_CAPACITY + 1]);
        let shared = Payload::from(big.clone());
        assert!(!shared.is_inline());
        assert_eq!(shared.clone().into_bytes().as_ptr(), big.as_ptr(), "large payloads are never copied");
        assert_eq!(Payload::from(&b"abc"[..]), Payload::from_static(b"abc"));
        assert_eq!(format!("{:?}", Payload::from("a\"b")), "b\"a\\\"b\"");
        assert_eq!(std::mem::size_of::<Payload>(), std::mem::size_of::<Bytes>());
    }
}
