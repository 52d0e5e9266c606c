//! The content hash behind the UI files' ETags (FNV-1a, 64 bits): changes when a file does;
//! not a security property. Shared by `build.rs` (embedded files) and `Ui::Dir`.

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
