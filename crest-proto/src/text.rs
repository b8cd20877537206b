//! [`Text`]: UTF-8-checked [`Bytes`] that derefs to `&str`.
//!
//! This is the crate's only module with `unsafe` code: one
//! `from_utf8_unchecked`, on bytes whose validity is an invariant of the type.
//! Without it every `&str` access would re-validate the message (a second
//! full pass over every text message received, measured in
//! `benches/proto.rs`, row "second UTF-8 check"), or messages would have to
//! be copied into `String`s.
#![allow(unsafe_code)]

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::payload::Payload;

/// A text message payload: a [`Payload`] known to hold valid UTF-8.
///
/// Derefs to `&str`; cheap to clone (inline when small, a reference count
/// when large). Large received text messages are slices of the read buffer.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Payload);

impl Text {
    /// Wraps bytes after checking that they are UTF-8.
    pub fn from_utf8(bytes: impl Into<Payload>) -> Result<Self, std::str::Utf8Error> {
        let payload = bytes.into();
        std::str::from_utf8(&payload)?;
        Ok(Self(payload))
    }

    /// A text from a static string, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Payload::from_static(s.as_bytes()))
    }

    /// Wraps bytes that the caller has already validated as UTF-8.
    ///
    /// Crate-private: every caller validates first (`utf8::Validator` or
    /// `simdutf8`), which is what keeps `Deref` sound.
    pub(crate) fn from_validated(bytes: Payload) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor of `Text` guarantees that `self.0` is
        // valid UTF-8 (`from_utf8` and `From<String>`/`From<&str>` by
        // construction or by check, `from_validated` by its callers'
        // validation), and `Bytes` is immutable, so it stays valid.
        unsafe { std::str::from_utf8_unchecked(self.0.as_slice()) }
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Converts into [`Bytes`] (copies only a small, inline text).
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// Converts into the underlying [`Payload`].
    pub fn into_payload(self) -> Payload {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(Payload::from(s.into_bytes()))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(Payload::copy_from_slice(s.as_bytes()))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<Text> for Bytes {
    fn from(t: Text) -> Self {
        t.into_bytes()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}
