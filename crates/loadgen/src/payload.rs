//! What loadgen sends, and how it checks what comes back.

/// The bytes of round trip `round` on connection `id`: pseudo-random, different for every
/// connection and round, so that an echo sent to the wrong client or repeated is caught.
pub fn fill(buf: &mut [u8], id: u32, round: u32) {
    let mut state = (u64::from(id) << 32 | u64::from(round)) ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in buf.chunks_mut(8) {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

pub fn first_difference(expected: &[u8], got: &[u8]) -> Option<usize> {
    if expected == got {
        return None;
    }
    expected.iter().zip(got).position(|(a, b)| a != b)
}

/// The stream a bulk run sends: a pseudo-random block, repeated. Byte `i` of the stream is
/// `PATTERN[i % PATTERN_LEN]`.
pub const PATTERN_LEN: usize = 1 << 20;

pub fn pattern() -> Vec<u8> {
    let mut block = vec![0u8; PATTERN_LEN];
    fill(&mut block, u32::MAX, u32::MAX);
    block
}

/// Up to 16 bytes of `bytes`, printable (`"EXTRA"`, or escapes such as `\x00`), for a message
/// about bytes that should not have come.
pub fn shown(bytes: &[u8]) -> String {
    let more = if bytes.len() > 16 { "..." } else { "" };
    format!("\"{}{more}\"", bytes[..bytes.len().min(16)].escape_ascii())
}
