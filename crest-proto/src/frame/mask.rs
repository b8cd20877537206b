//! Payload masking (RFC 6455 §5.3) at memory speed.
//!
//! The fast path XORs eight bytes at a time with the key repeated into a
//! `u64`; LLVM turns the loop over `[u8; 8]` chunks into SIMD loads, XORs and
//! stores. No alignment games are needed: unaligned vector loads cost nothing
//! on current x86-64 and AArch64. `benches/proto.rs` measures it next to a
//! `memcpy` of the same buffer.
//!
//! The default x86-64 target only promises SSE2 (16-byte vectors). On a CPU
//! with AVX2, detected at run time, payloads of [`WIDE_MIN`] bytes or more
//! go through the same loop compiled for AVX2 (32-byte vectors): callgrind
//! counts 14,300 instructions to unmask 64 KiB with SSE2, about half that
//! with AVX2. Calling it is this module's one `unsafe`.

/// Payloads shorter than this are masked with the baseline code: the
/// feature check would cost more than the wider vectors save.
const WIDE_MIN: usize = 256;

/// XORs `data` with the masking `key`, in place.
///
/// `offset` is the position of `data[0]` within the frame payload, so a
/// payload can be (un)masked in pieces as it arrives: masking `p[..a]` with
/// offset 0 and then `p[a..]` with offset `a` equals masking `p` at once.
/// Masking twice with the same key and offset restores the input.
#[inline]
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= WIDE_MIN && std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: `apply_mask_avx2` requires AVX2, which the CPU was just
        // detected to have (std caches the detection).
        unsafe {
            apply_mask_avx2(data, key, offset);
        }
        return;
    }
    apply_mask_inline(data, key, offset);
}

/// [`apply_mask_inline`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_mask_avx2(data: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_inline(data, key, offset);
}

/// [`apply_mask`], always inlined: for the receive fast path, where the
/// call would cost as much as masking a short payload.
#[inline(always)]
pub(crate) fn apply_mask_inline(data: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as seen from `data[0]`: rotating the bytes left by `offset % 4`
    // is a right rotation of their little-endian word.
    let k32 = u32::from_le_bytes(key).rotate_right(8 * (offset % 4) as u32);
    let k64 = u64::from(k32) | u64::from(k32) << 32;
    let (chunks, rest) = data.as_chunks_mut::<8>();
    for chunk in chunks {
        *chunk = (u64::from_le_bytes(*chunk) ^ k64).to_le_bytes();
    }
    // `chunks` covered a multiple of 8 bytes, so the key phase is unchanged.
    for (byte, k) in rest.iter_mut().zip(k64.to_le_bytes()) {
        *byte ^= k;
    }
}

/// The masking key repeated over a `u64`: XOR it into the little-endian word
/// of eight payload bytes that start at an offset divisible by 4.
#[inline(always)]
pub(crate) fn key_word(key: [u8; 4]) -> u64 {
    let k32 = u64::from(u32::from_le_bytes(key));
    k32 << 32 | k32
}

/// `block`, a payload's first `N` bytes, masked with `key`: a fixed-size
/// copy and word XORs (for short frames, where a call would cost more).
#[inline(always)]
pub(crate) fn mask_block<const N: usize>(block: &[u8; N], key: [u8; 4]) -> [u8; N] {
    let mut out = *block;
    apply_mask_inline(&mut out, key, 0);
    out
}

/// The byte-at-a-time definition from RFC 6455 §5.3, the reference that
/// [`apply_mask`] is tested and fuzzed against. Any `offset` is accepted, as
/// by `apply_mask`: only its value mod 4 matters.
pub fn apply_mask_reference(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in data.iter_mut().enumerate() {
        // (i + offset) % 4, without the overflow near usize::MAX.
        *byte ^= key[(i % 4 + offset % 4) % 4];
    }
}

/// Copies `src` to the end of `dst`, masked: one pass instead of copy + mask.
#[inline]
pub(crate) fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4]) {
    let start = dst.len();
    dst.extend_from_slice(src);
    apply_mask(&mut dst[start..], key, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example_masked_hello() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn fast_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..1200),
                                 key in any::<[u8; 4]>(), offset in 0usize..16) {
            // Lengths on both sides of WIDE_MIN (the AVX2 path, where the
            // CPU has it), with every tail length after the vectors.
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast, key, offset);
            apply_mask_reference(&mut slow, key, offset);
            prop_assert_eq!(&fast, &slow);
        }

        #[test]
        fn masking_in_pieces_equals_masking_whole(data in proptest::collection::vec(any::<u8>(), 0..100),
                                                   key in any::<[u8; 4]>(), cut in 0usize..100) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            apply_mask(&mut pieces[..cut], key, 0);
            apply_mask(&mut pieces[cut..], key, cut);
            prop_assert_eq!(whole, pieces);
        }
    }
}
