//! Generated identifiers and secrets: keys from names, salts, deployment and project keys,
//! management keys, console session tokens and their hashes. Randomness comes from the
//! operating system.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` random base62 characters (about 5.95 bits each).
pub fn random_base62(n: usize) -> Result<String> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| Error::Internal(Box::new(RandomError(e))))?;
        // Rejection sampling keeps every character equally likely: 248 = 4 × 62.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == n {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    Ok(out)
}

#[derive(Debug)]
struct RandomError(getrandom::Error);

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the operating system's random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomError {}

/// A key from a name: lowercase, runs of anything but letters, digits, `.` and `_` become one
/// `-`, no leading or trailing `-`, at most 128 characters. `"New Checkout Flow!"` gives
/// `new-checkout-flow`.
pub fn key_from_name(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            if dash && !key.is_empty() {
                key.push('-');
            }
            dash = false;
            key.push(c);
        } else {
            dash = true;
        }
        if key.len() >= 128 {
            break;
        }
    }
    key.truncate(128);
    key
}

/// Whether `key` is a valid flag, project, deployment or cohort key: 1–128 of `[A-Za-z0-9._-]`.
pub fn is_url_safe_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        // `.` and `..` would vanish from URLs, leaving the entity unreachable.
        && key.bytes().any(|b| b != b'.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A bucketing salt: 8 random `[A-Za-z0-9]` characters.
pub fn salt() -> Result<String> {
    random_base62(8)
}

/// A deployment's SDK key: `client-` or `server-` and 32 base62 characters (190 bits).
pub fn deployment_key(kind: crate::DeploymentType) -> Result<String> {
    Ok(format!("{}-{}", kind.as_str(), random_base62(32)?))
}

/// A management key's secret: `vxm_` and 43 base62 characters (255 bits).
pub fn management_secret() -> Result<String> {
    Ok(format!("vxm_{}", random_base62(43)?))
}

/// A project's secret key: 32 base62 characters (190 bits). Only its hash is stored.
pub fn project_secret() -> Result<String> {
    random_base62(32)
}

/// A console session's token: 43 base62 characters (255 bits). Only its hash is stored.
pub fn session_token() -> Result<String> {
    random_base62(43)
}

/// Whether two secrets (or hashes) are equal, compared without stopping at the first
/// difference, so that the time taken tells nothing about how much of a guess was right.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The stored form of a secret: hex SHA-256. The secrets are long random strings, so a fast
/// hash is enough; there is nothing to brute-force.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lower-case hex of `bytes` (digests, signatures, ETags).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_names() {
        for (name, key) in [
            ("New Checkout Flow!", "new-checkout-flow"),
            ("  Dark   mode ", "dark-mode"),
            ("v2.checkout_beta", "v2.checkout_beta"),
            ("Über Café", "ber-caf"),
            ("---", ""),
            ("Flag-A", "flag-a"),
        ] {
            assert_eq!(key_from_name(name), key, "{name}");
        }
        assert_eq!(key_from_name(&"a".repeat(300)).len(), 128);
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        for (bytes, want) in [
            (&[][..], ""),
            (&[0x00, 0x0f, 0xa0, 0xff][..], "000fa0ff"),
            (
                &[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde][..],
                "123456789abcde",
            ),
        ] {
            assert_eq!(hex(bytes), want);
        }
        // The stored secret hash, as before.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn url_safe_keys() {
        assert!(is_url_safe_key("flag-a.b_c"));
        assert!(!is_url_safe_key(""));
        assert!(!is_url_safe_key("a b"));
        assert!(!is_url_safe_key("a/b"));
        assert!(!is_url_safe_key(&"a".repeat(129)));
        assert!(!is_url_safe_key("."));
        assert!(!is_url_safe_key(".."));
        assert!(is_url_safe_key(".a"));
    }

    #[test]
    fn random_strings_have_the_shape_promised() {
        let s = salt().unwrap();
        assert_eq!(s.len(), 8);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        let k = deployment_key(crate::DeploymentType::Server).unwrap();
        assert!(k.starts_with("server-") && k.len() == 39, "{k}");
        assert_ne!(salt().unwrap(), salt().unwrap());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(same_secret("", ""));
        assert_ne!(session_token().unwrap(), session_token().unwrap());
        assert_eq!(project_secret().unwrap().len(), 32);
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
