//! Incremental UTF-8 validation across fragment (and read) boundaries.
//!
//! A text message may arrive in many frames, and a frame in many reads; a code
//! point may be split anywhere. [`Validator`] keeps at most three bytes of an
//! unfinished code point between calls and fails on the first byte that can
//! no longer start or continue valid UTF-8 (RFC 6455 §8.1: fail fast), as
//! `std::str::from_utf8`'s `error_len()` defines it: `Some` means invalid now,
//! `None` means merely incomplete.
//!
//! The common case, a whole chunk of valid UTF-8, runs at SIMD speed through
//! `simdutf8::basic`; only a chunk that is not entirely valid takes the slower
//! `compat` path that locates the problem.

/// Incremental UTF-8 validator; `Default` is the start of a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validator {
    /// Bytes of an incomplete code point carried over from the last chunk.
    partial: [u8; 4],
    /// How many bytes of `partial` are used (0..=3).
    len: u8,
}

/// The input is not UTF-8 and no further bytes can make it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

impl Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the input so far ends on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }

    /// Validates the next chunk of the message.
    ///
    /// # Errors
    /// [`Invalid`] as soon as the bytes seen so far cannot be the prefix of
    /// any valid UTF-8 string.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Invalid> {
        if self.len > 0 {
            // Finish the carried code point with bytes from this chunk.
            let have = usize::from(self.len);
            let take = chunk.len().min(4 - have);
            let mut buf = self.partial;
            buf[have..have + take].copy_from_slice(&chunk[..take]);
            let joined = &buf[..have + take];
            match std::str::from_utf8(joined) {
                Ok(_) => {
                    // Cannot happen with a carried incomplete prefix unless the
                    // code point ended exactly here; consume what we took.
                    self.len = 0;
                    chunk = &chunk[take..];
                }
                Err(e) if e.valid_up_to() > 0 => {
                    // The carried code point completed inside `joined`.
                    let used = e.valid_up_to() - have;
                    self.len = 0;
                    chunk = &chunk[used..];
                }
                Err(e) => match e.error_len() {
                    Some(_) => return Err(Invalid),
                    None => {
                        // Still incomplete: the chunk was too short.
                        self.partial = buf;
                        self.len = (have + take) as u8;
                        return Ok(());
                    }
                },
            }
        }
        if simdutf8::basic::from_utf8(chunk).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(Invalid),
                None => {
                    let tail = &chunk[e.valid_up_to()..];
                    self.partial[..tail.len()].copy_from_slice(tail);
                    self.len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Ends the message: valid only if no code point is left unfinished.
    ///
    /// # Errors
    /// [`Invalid`] if the message ends inside a code point.
    pub fn finish(&mut self) -> Result<(), Invalid> {
        let complete = self.is_complete();
        *self = Self::default();
        if complete {
            Ok(())
        } else {
            Err(Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_split(bytes: &[u8], splits: &[usize]) -> bool {
        let mut v = Validator::new();
        let mut start = 0;
        for &s in splits {
            let s = s.min(bytes.len()).max(start);
            if v.feed(&bytes[start..s]).is_err() {
                return false;
            }
            start = s;
        }
        v.feed(&bytes[start..]).is_ok() && v.finish().is_ok()
    }

    #[test]
    fn valid_multibyte_split_everywhere() {
        let s = "κόσμε 𝄞 ascii €".as_bytes();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                assert!(check_split(s, &[i, j]), "split at {i},{j}");
            }
        }
    }

    #[test]
    fn fails_fast_on_first_impossible_byte() {
        // U+10FFFF + 1 starts F4 90: invalid at the second byte, long before the end.
        let mut v = Validator::new();
        assert_eq!(v.feed(&[0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(Invalid));
        // Surrogate half: ED A0.
        let mut v = Validator::new();
        assert_eq!(v.feed(b"ok\xED"), Ok(()));
        assert_eq!(v.feed(b"\xA0\x80"), Err(Invalid));
        // Overlong: C0 is never valid.
        assert_eq!(Validator::new().feed(&[0xC0]), Err(Invalid));
    }

    #[test]
    fn incomplete_at_end_is_invalid() {
        let mut v = Validator::new();
        assert_eq!(v.feed(&[0xE2, 0x82]), Ok(()));
        assert_eq!(v.finish(), Err(Invalid));
    }

    proptest! {
        #[test]
        fn agrees_with_std_for_any_split(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                         a in 0usize..64, b in 0usize..64) {
            let (a, b) = (a.min(b), a.max(b));
            let expected = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(check_split(&bytes, &[a, b]), expected);
        }

        #[test]
        fn agrees_with_std_on_mostly_valid_text(s in "\\PC{0,20}", cut in 0usize..80, junk in any::<u8>()) {
            let mut bytes = s.into_bytes();
            let at = cut.min(bytes.len());
            bytes.insert(at, junk);
            let expected = std::str::from_utf8(&bytes).is_ok();
            for split in 0..=bytes.len() {
                prop_assert_eq!(check_split(&bytes, &[split]), expected);
            }
        }
    }
}
