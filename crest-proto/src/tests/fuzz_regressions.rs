//! One test per crash the fuzz targets (`fuzz/`) found, named after what it
//! proves, with the target and crash file it came from. Each was added
//! before its fix.

/// `fuzz/` target `mask`, crash-ee97a9fe70c9021fa9daa4638be88aabb7082fb1:
/// `apply_mask_reference` computed `i + offset`, which overflows (a panic
/// with overflow checks on) for offsets near `usize::MAX`; `apply_mask`
/// takes any offset. Both must agree for every offset.
#[test]
fn mask_reference_takes_any_offset() {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    for offset in [usize::MAX, usize::MAX - 1, usize::MAX - 2, usize::MAX - 3] {
        let mut fast = *b"Hello, world";
        let mut slow = fast;
        crate::apply_mask(&mut fast, key, offset);
        crate::apply_mask_reference(&mut slow, key, offset);
        assert_eq!(fast, slow, "offset {offset}");
    }
}
