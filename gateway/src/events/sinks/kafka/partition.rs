//! Which partition a record goes to: Kafka's default partitioner for keyed
//! records, `toPositive(murmur2(key)) % partitions`, so the gateway puts a
//! key where a Java (or librdkafka `murmur2_random`) producer would put it,
//! and any tool that knows the key can tell the partition.

/// The partition of `key` in a topic of `partitions` partitions, as Kafka's
/// default partitioner picks it (`murmur2`, sign bit cleared, modulo the
/// count). `partitions` is at least 1 (a count of 0 is treated as 1).
pub fn partition_for(key: &[u8], partitions: u32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    // Both fit in i32: the hash has its sign bit cleared and the partition
    // count comes from the broker as an i32.
    (positive % partitions.max(1)) as i32
}

/// MurmurHash2, 32-bit, with Kafka's seed (`Utils.murmur2` in the Java
/// client): the hash of `data` as an unsigned integer.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Kafka computes on Java ints: the length wraps like one.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() == 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Java client's own cases (`UtilsTest.testMurmur2`) and
    /// librdkafka's (`rdmurmur2.c`), as Java's signed ints.
    #[test]
    fn murmur2_matches_the_java_client() {
        for (input, expected) in [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
            ("kafka", -798503068),
            ("1", -1993445489),
            ("12", 126087238),
            ("123", -267702483),
            ("1234", -1614185708),
            ("12345", -1188365604),
        ] {
            assert_eq!(murmur2(input.as_bytes()) as i32, expected, "{input:?}");
        }
    }

    #[test]
    fn partitions_follow_the_default_partitioner() {
        // toPositive(murmur2("foobar")) = -790332482 & 0x7fffffff.
        let positive = (-790332482_i32 & 0x7fff_ffff) as u32;
        for partitions in [1, 2, 3, 7, 12, 100] {
            assert_eq!(
                partition_for(b"foobar", partitions),
                (positive % partitions) as i32
            );
        }
        assert_eq!(partition_for(b"anything", 1), 0);
        assert_eq!(partition_for(b"anything", 0), 0, "no division by zero");
    }

    #[test]
    fn a_key_always_maps_to_the_same_partition_and_keys_spread() {
        let keys: Vec<String> = (0..600).map(|i| format!("orders/{i}")).collect();
        let mut counts = [0_u32; 6];
        for key in &keys {
            let p = partition_for(key.as_bytes(), 6);
            assert_eq!(p, partition_for(key.as_bytes(), 6), "stable");
            counts[p as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| c > 50),
            "600 keys over 6 partitions: {counts:?}"
        );
    }
}
