//! Numbers, semantic versions and string order as the reference engine (Kotlin on the JVM) reads
//! and compares them (spec §4.6, §4.7).

use std::cmp::Ordering;

/// Parses `s` with the grammar of Java's `Double.parseDouble` (spec §4.6).
pub fn parse_java_double(s: &str) -> Option<f64> {
    let s = s.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let body = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
            if body.len() > 1 && (body.starts_with("0x") || body.starts_with("0X")) {
                parse_hex_float(&body[2..])?
            } else {
                parse_decimal(body)?
            }
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `( \d+ (\.\d*)? | \.\d+ ) ([eE][+-]?\d+)?`, ASCII digits only.
fn parse_decimal(body: &str) -> Option<f64> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let int_digits = count_digits(bytes, i);
    i += int_digits;
    let mut frac_digits = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = count_digits(bytes, i);
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = count_digits(bytes, i);
        if exp_digits == 0 {
            return None;
        }
        i += exp_digits;
    }
    if i != bytes.len() {
        return None;
    }
    // Rust's parser takes this form (it accepts `5.` and `.5`) and rounds correctly.
    body.parse().ok()
}

fn count_digits(bytes: &[u8], from: usize) -> usize {
    bytes.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

/// `( [0-9a-fA-F]+ \.? | [0-9a-fA-F]* \. [0-9a-fA-F]+ ) [pP][+-]?\d+` after `0x`.
fn parse_hex_float(body: &str) -> Option<f64> {
    let (mantissa, exponent) = body.split_once(['p', 'P'])?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if !all_hex(int_part) || !all_hex(frac_part) {
        return None;
    }
    let exp_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Saturate huge exponents: the result is 0 or infinity long before i32 overflows.
    let mut exp: i64 = exp_digits
        .parse::<i64>()
        .unwrap_or(i64::from(i32::MAX))
        .min(100_000);
    if exponent.starts_with('-') {
        exp = -exp;
    }
    // Accumulate up to 28 significant hex digits (112 bits) exactly; later digits only matter as
    // a sticky bit for rounding.
    let mut significand: u128 = 0;
    let mut digits = 0;
    let mut sticky = false;
    for (i, b) in int_part.bytes().chain(frac_part.bytes()).enumerate() {
        let d = u128::from(hex_value(b));
        let is_frac = i >= int_part.len();
        if significand == 0 && d == 0 {
            if is_frac {
                exp -= 4;
            }
            continue;
        }
        if digits < 28 {
            significand = significand * 16 + d;
            digits += 1;
            if is_frac {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !is_frac {
                exp += 4;
            }
        }
    }
    if significand == 0 {
        return Some(0.0);
    }
    if sticky {
        significand = (significand << 1) | 1;
        exp -= 1;
    }
    Some(scale_by_power_of_two(significand, exp))
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// `significand × 2^exp`, rounded once, to nearest even.
fn scale_by_power_of_two(significand: u128, exp: i64) -> f64 {
    let bits = 128 - i64::from(significand.leading_zeros());
    // The value lies in [2^(top-1), 2^top).
    let top = bits + exp;
    if top > 1024 {
        return f64::INFINITY;
    }
    if top < -1074 {
        return 0.0;
    }
    if top < -1021 {
        // Subnormal (or rounding up to the smallest normal): round the integer multiple of
        // 2^-1074 directly, so there is exactly one rounding.
        let q = match exp + 1074 {
            up if up >= 0 => significand << up,
            down => round_shift(significand, (-down) as u32),
        };
        return q as f64 * f64::from_bits(1);
    }
    // Normal: the conversion rounds once; scaling by powers of two is then exact.
    let mut result = significand as f64;
    let mut e = exp;
    while e != 0 {
        let step = e.clamp(-1000, 1000);
        result *= 2f64.powi(step as i32);
        e -= step;
    }
    result
}

/// `value >> shift`, rounded to nearest even.
fn round_shift(value: u128, shift: u32) -> u128 {
    if shift > 128 {
        return 0;
    }
    let (q, rem, half) = if shift == 128 {
        (0, value, 1u128 << 127)
    } else {
        (
            value >> shift,
            value & ((1u128 << shift) - 1),
            1u128 << (shift - 1),
        )
    };
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// Kotlin's `String.toLongOrNull` on ASCII: an optional sign and digits that fit in `i64`.
pub fn parse_java_long(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Java's `Double.compare`: numeric, `-0.0 < 0.0`, NaN equal to itself and above everything.
pub fn java_compare(a: f64, b: f64) -> Ordering {
    if a < b {
        return Ordering::Less;
    }
    if a > b {
        return Ordering::Greater;
    }
    let canonical = |d: f64| {
        if d.is_nan() {
            0x7ff8_0000_0000_0000_i64
        } else {
            d.to_bits() as i64
        }
    };
    canonical(a).cmp(&canonical(b))
}

/// Java's `String.compareTo`: by UTF-16 code units, a proper prefix first.
pub fn java_string_compare(a: &str, b: &str) -> Ordering {
    // UTF-8 byte order equals UTF-16 order except between supplementary characters and
    // U+E000..U+FFFF, so only strings holding such characters need the slow path.
    if a.is_ascii() || b.is_ascii() {
        return a.as_bytes().cmp(b.as_bytes());
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A semantic version as the reference engine parses it (spec §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    major: i32,
    minor: i32,
    patch: i32,
    pre_release: Option<Box<str>>,
}

impl Version {
    /// Parses `MAJOR.MINOR[.PATCH[-PRE][+BUILD]]`; `None` when `s` is not such a version.
    pub fn parse(s: &str) -> Option<Version> {
        let (major, rest) = split_number(s)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, rest) = split_number(rest)?;
        let major: i32 = major.parse().ok()?;
        let minor: i32 = minor.parse().ok()?;
        if rest.is_empty() {
            return Some(Version {
                major,
                minor,
                patch: 0,
                pre_release: None,
            });
        }
        let rest = rest.strip_prefix('.')?;
        let (patch, rest) = split_number(rest)?;
        // A patch too large for i32 reads as 0 in the reference engine.
        let patch: i32 = patch.parse().unwrap_or(0);
        let (pre, build) = match rest.split_once('+') {
            Some((pre, build)) => (pre, Some(build)),
            None => (rest, None),
        };
        let pre_release = match pre {
            "" => None,
            _ => {
                let pre = pre.strip_prefix('-')?;
                if !pre.split('.').all(is_pre_release_identifier) {
                    return None;
                }
                Some(pre.into())
            }
        };
        if let Some(build) = build {
            let valid = |id: &str| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if !build.split('.').all(valid) {
                return None;
            }
        }
        Some(Version {
            major,
            minor,
            patch,
            pre_release,
        })
    }
}

fn split_number(s: &str) -> Option<(&str, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    (n > 0).then(|| s.split_at(n))
}

/// `0 | [1-9]\d* | \d*[A-Za-z-][0-9A-Za-z-]*`
fn is_pre_release_identifier(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return id == "0" || bytes[0] != b'0';
    }
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.major
            .cmp(&other.major)
            .then(self.minor.cmp(&other.minor))
            .then(self.patch.cmp(&other.patch))
            .then_with(|| match (&self.pre_release, &other.pre_release) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => java_string_compare(a, b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_double_grammar() {
        let accepted: &[(&str, f64)] = &[
            ("1e3", 1000.0),
            (" 12 ", 12.0),
            ("\t12\n", 12.0),
            ("1d", 1.0),
            ("1f", 1.0),
            ("+5", 5.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("-2.5E-1", -0.25),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("0x1p3", 8.0),
            ("0X.8p1", 1.0),
            ("0x1.8p0", 1.5),
            ("0xAp-1d", 5.0),
            ("0x0p0", 0.0),
            ("0x1p-1074", 5e-324),
            ("0x1p1024", f64::INFINITY),
            ("0x1.fffffffffffff8p0", 2.0),
            ("0x1p-1075", 0.0),
            ("0x3p-1076", 5e-324),
            ("0x1p-1022", f64::MIN_POSITIVE),
            ("0x1.fffffffffffffp1023", f64::MAX),
        ];
        for (s, expected) in accepted {
            let got = parse_java_double(s).unwrap_or_else(|| panic!("{s:?} should parse"));
            assert_eq!(
                got.to_bits(),
                expected.to_bits(),
                "{s:?}: {got} != {expected}"
            );
        }
        assert!(parse_java_double("NaN").unwrap().is_nan());
        for s in [
            "", "-", "inf", "nan", "0x10", "1_000", "１２", "1e", "e5", ".", "1.2.3", "0x", "0xp1",
            "1 2", "++1",
        ] {
            assert_eq!(parse_java_double(s), None, "{s:?} should not parse");
        }
    }

    #[test]
    fn long_hex_mantissas_round_once() {
        let expected = 0x0001_2345_6789_abcd_ef01_2345_6789_u128 as f64;
        assert_eq!(
            parse_java_double("0x123456789abcdef0123456789p0"),
            Some(expected)
        );
        assert_eq!(
            parse_java_double("0x1.000000000000080000000001p0"),
            Some(1.0 + f64::EPSILON)
        );
    }

    #[test]
    fn double_order_is_javas() {
        assert_eq!(java_compare(-0.0, 0.0), Ordering::Less);
        assert_eq!(java_compare(f64::NAN, f64::NAN), Ordering::Equal);
        assert_eq!(java_compare(f64::NAN, f64::INFINITY), Ordering::Greater);
        assert_eq!(java_compare(1.0, 2.0), Ordering::Less);
    }

    #[test]
    fn string_order_is_utf16() {
        assert_eq!(java_string_compare("abc", "b"), Ordering::Less);
        assert_eq!(java_string_compare("ab", "abc"), Ordering::Less);
        // U+FF21 sorts after a surrogate pair in UTF-16, before it in UTF-8.
        assert_eq!(
            java_string_compare("\u{FF21}", "\u{1F600}"),
            Ordering::Greater
        );
    }

    #[test]
    fn versions_parse_and_order() {
        let v = |s: &str| Version::parse(s);
        assert!(v("1.2").is_some());
        assert!(v("1.2.3-alpha.1+build.5").is_some());
        assert!(v("1.2.3+b").is_some());
        assert!(v("01.002.3").is_some());
        for bad in [
            "1",
            "1.2-beta",
            "1.2.3-01",
            "1.2.3-",
            "1.2.3+",
            "1.2.3.4",
            "a.b",
            "99999999999.1",
            "1.2.3-a..b",
        ] {
            assert_eq!(v(bad), None, "{bad}");
        }
        assert_eq!(v("1.2.99999999999").unwrap(), v("1.2.0").unwrap());
        assert!(v("1.10").unwrap() > v("1.9").unwrap());
        assert!(v("1.2.3-alpha").unwrap() < v("1.2.3").unwrap());
        assert!(v("1.0.0-alpha.10").unwrap() < v("1.0.0-alpha.9").unwrap());
        assert_eq!(
            v("1.2.3+a").unwrap().cmp(&v("1.2.3+b").unwrap()),
            Ordering::Equal
        );
    }
}
