//! The Java clients' default partitioner (murmur2 of the key), which condmon assumes for every
//! keyed topic: a customer's records of every stream meet on one partition number only if all
//! their producers agree on it. librdkafka-based clients default to CRC32 instead
//! (`partitioner=consistent_random`), so records of such producers are checked against this.

/// Kafka's `Utils.murmur2`: MurmurHash2, seed 0x9747b28c, as the Java clients compute it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java clients (and librdkafka's `murmur2_random`) send a keyed record to.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_clients() {
        // Kafka's own test vectors (clients' UtilsTest.testMurmur2).
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn partitions_are_never_negative() {
        for key in ["21", "foobar", "SHARE|ACME", ""] {
            let p = partition_for(key.as_bytes(), 7);
            assert!((0..7).contains(&p), "{key}: {p}");
        }
        // -973932308 & 0x7fffffff = 1173551340; mod 4 = 0.
        assert_eq!(partition_for(b"21", 4), 0);
    }
}
