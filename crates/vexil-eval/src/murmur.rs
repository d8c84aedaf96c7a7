//! MurmurHash3 x86 32-bit (spec §5), the hash behind every bucketing decision.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// MurmurHash3 x86 32-bit of `data` with `seed`.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    murmur3_parts(&[data], seed)
}

/// MurmurHash3 x86 32-bit of the concatenation of `parts`, without building it. Bucketing hashes
/// `salt + "/" + value`; hashing the parts in place saves an allocation per flag.
pub fn murmur3_parts(parts: &[&[u8]], seed: u32) -> u32 {
    let mut h = seed;
    let mut len: usize = 0;
    let mut block = [0u8; 4];
    let mut filled = 0;
    for part in parts {
        len += part.len();
        let mut bytes = *part;
        // Complete a block left over from the previous part.
        if filled > 0 {
            let take = (4 - filled).min(bytes.len());
            block[filled..filled + take].copy_from_slice(&bytes[..take]);
            filled += take;
            bytes = &bytes[take..];
            if filled < 4 {
                continue;
            }
            h = mix_block(h, u32::from_le_bytes(block));
        }
        let mut chunks = bytes.chunks_exact(4);
        for chunk in &mut chunks {
            h = mix_block(
                h,
                u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            );
        }
        let rest = chunks.remainder();
        block[..rest.len()].copy_from_slice(rest);
        filled = rest.len();
    }
    if filled > 0 {
        let mut k = 0u32;
        for (i, b) in block[..filled].iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        h ^= mix_k(k);
    }
    // The length is mixed in modulo 2^32, as the reference implementations do.
    h ^= len as u32;
    fmix(h)
}

#[inline]
fn mix_k(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

#[inline]
fn mix_block(h: u32, k: u32) -> u32 {
    (h ^ mix_k(k))
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_table() {
        let cases: &[(&str, u32, u32)] = &[
            ("", 0, 0),
            ("a", 0, 1_009_084_850),
            ("ab", 0, 2_613_040_991),
            ("abc", 0, 3_017_643_002),
            ("abcd", 0, 1_139_631_978),
            ("My hovercraft is full of eels.", 0, 2_953_494_853),
            ("My 🚀 is full of 🦎.", 0, 1_818_098_979),
            ("吉 星 高 照", 0, 3_435_142_074),
            ("brian", 0x7f3a_21ea, 3_948_467_465),
            ("vx/user-108", 0, 1_058_584_849),
        ];
        for (input, seed, hash) in cases {
            assert_eq!(murmur3_x86_32(input.as_bytes(), *seed), *hash, "{input}");
        }
    }

    #[test]
    fn parts_hash_like_their_concatenation() {
        let whole = "salt-of-odd-length/some user id ✓";
        for i in 0..=whole.len() {
            for j in i..=whole.len() {
                let b = whole.as_bytes();
                let parts: [&[u8]; 3] = [&b[..i], &b[i..j], &b[j..]];
                assert_eq!(
                    murmur3_parts(&parts, 7),
                    murmur3_x86_32(b, 7),
                    "split {i} {j}"
                );
            }
        }
    }
}
