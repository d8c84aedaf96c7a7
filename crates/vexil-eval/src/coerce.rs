//! String coercion of context values (spec §4.2, §4.3): how a JSON value becomes the string or
//! the set of strings that operators compare, exactly as the reference engine does it.

use std::borrow::Cow;
use std::fmt::Write;

use crate::number::{parse_java_double, parse_java_long};
use crate::value::{Object, Value};

/// `coerce_string` of spec §4.2: `None` for null, the string itself for strings, and the
/// reference engine's text for everything else.
pub fn coerce_string(value: &Value) -> Option<Cow<'_, str>> {
    Some(match value {
        Value::Null => return None,
        Value::String(s) => Cow::Borrowed(&**s),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::UInt(u) => Cow::Owned(java_double(*u as f64)),
        Value::Double(d) => Cow::Owned(java_double(*d)),
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            write_compact(value, &mut out);
            Cow::Owned(out)
        }
    })
}

/// Formats a double like Java's `Double.toString`: shortest round-trip digits, plain between
/// 1e-3 and 1e7, scientific (`1.0E7`) outside, always with a digit after the point.
pub fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let magnitude = d.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let mut s = format!("{d}");
        if !s.contains('.') {
            s.push_str(".0");
        }
        s
    } else {
        // Rust's `{:e}` gives the same shortest digits as `{}`: `1e7`, `1.2345e-5`.
        let s = format!("{d:e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let mut out = String::with_capacity(s.len() + 3);
        out.push_str(mantissa);
        if !mantissa.contains('.') {
            out.push_str(".0");
        }
        out.push('E');
        out.push_str(exponent);
        out
    }
}

/// Compact JSON with the reference engine's number formatting (spec §4.2, objects and arrays).
fn write_compact(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => out.push_str(&java_double(*u as f64)),
        Value::Double(d) => out.push_str(&java_double(*d)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => write_object(object, out),
    }
}

fn write_object(object: &Object, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in object.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, out);
        out.push(':');
        write_compact(v, out);
    }
    out.push('}');
}

/// A JSON string literal, escaped the way serde_json escapes it.
fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The de-duplicated strings of a list-valued prop, in first-seen order.
pub type StrList<'a> = Vec<Cow<'a, str>>;

/// `coerce_string_list` of spec §4.3: arrays, and strings that start with `[` and parse
/// (leniently) as an array, become a set of strings; anything else is not a list.
pub fn coerce_string_list(value: &Value) -> Option<StrList<'_>> {
    match value {
        Value::Array(items) => Some(dedup(items.iter().filter_map(coerce_string))),
        Value::String(s) => string_list(s),
        _ => None,
    }
}

/// The list a string prop stands for, when it starts with `[` and parses as an array.
pub fn string_list(s: &str) -> Option<StrList<'static>> {
    if !s.starts_with('[') {
        return None;
    }
    let items = parse_lenient_array(s)?;
    let strings = items
        .iter()
        .filter_map(|v| coerce_string(v).map(|c| Cow::Owned(c.into_owned())))
        .collect::<Vec<_>>();
    Some(dedup(strings.into_iter()))
}

fn dedup<'a>(items: impl Iterator<Item = Cow<'a, str>>) -> StrList<'a> {
    let mut out: StrList<'a> = Vec::new();
    let mut seen: Option<rustc_hash::FxHashSet<Cow<'a, str>>> = None;
    for item in items {
        // Linear de-duplication is fastest for the few elements props usually have.
        if out.len() < 16 {
            if !out.contains(&item) {
                out.push(item);
            }
        } else {
            let seen = seen.get_or_insert_with(|| out.iter().cloned().collect());
            if seen.insert(item.clone()) {
                out.push(item);
            }
        }
    }
    out
}

/// Parses a JSON array the way the reference engine's lenient JSON reader does: strict JSON,
/// plus unquoted tokens (spec §4.3). `None` when the text is not such an array.
pub fn parse_lenient_array(text: &str) -> Option<Vec<Value>> {
    let mut parser = Lenient {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    parser.skip_ws();
    let value = parser.array()?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return None;
    }
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

struct Lenient<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Nesting deeper than this is refused rather than risking the stack on hostile input.
const MAX_DEPTH: usize = 128;

impl Lenient<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match self.peek()? {
            b'[' => self.array_at(depth),
            b'{' => self.object(depth),
            b'"' => self.string().map(Value::String),
            _ => self.token(),
        }
    }

    fn array(&mut self) -> Option<Value> {
        self.array_at(0)
    }

    fn array_at(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(Value::Array(items));
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1; // '{'
        let mut object = Object::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(Value::Object(object));
        }
        loop {
            self.skip_ws();
            let key: Box<str> = match self.peek()? {
                b'"' => self.string()?,
                _ => self.raw_token()?.into(),
            };
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            object.insert(key, value);
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(Value::Object(object));
                }
                _ => return None,
            }
        }
    }

    fn string(&mut self) -> Option<Box<str>> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        let literal = self.text.get(start..self.pos)?;
        serde_json::from_str::<String>(literal).ok().map(Into::into)
    }

    fn raw_token(&mut self) -> Option<&str> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(
                b,
                b' ' | b'\n' | b'\r' | b'\t' | b',' | b':' | b'[' | b']' | b'{' | b'}' | b'"'
            ) {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.text[start..self.pos])
    }

    /// An unquoted token: a boolean (any case), an integer, a double, or dropped (null).
    fn token(&mut self) -> Option<Value> {
        let token = self.raw_token()?;
        Some(if token.eq_ignore_ascii_case("true") {
            Value::Bool(true)
        } else if token.eq_ignore_ascii_case("false") {
            Value::Bool(false)
        } else if let Some(i) = parse_java_long(token) {
            Value::Int(i)
        } else if let Some(d) = parse_java_double(token) {
            Value::Double(d)
        } else {
            Value::Null
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_format_like_java() {
        let cases: &[(f64, &str)] = &[
            (3.0, "3.0"),
            (3.5, "3.5"),
            (100.0, "100.0"),
            (9_999_999.0, "9999999.0"),
            (0.001, "0.001"),
            (123_456.789, "123456.789"),
            (1e7, "1.0E7"),
            (1e-4, "1.0E-4"),
            (1.2345678901234567e19, "1.2345678901234567E19"),
            (1e21, "1.0E21"),
            (-2.5e-7, "-2.5E-7"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (d, expected) in cases {
            assert_eq!(java_double(*d), *expected, "{d}");
        }
    }

    #[test]
    fn scalars_and_structures_coerce_to_reference_strings() {
        let cases = [
            ("\"a\"", Some("a")),
            ("true", Some("true")),
            ("3", Some("3")),
            ("-0", Some("0")),
            ("3.0", Some("3.0")),
            ("1e21", Some("1.0E21")),
            ("18446744073709551615", Some("1.8446744073709552E19")),
            ("null", None),
            (
                r#"{"a":[1,2.0,"x\ny"],"b":{}}"#,
                Some(r#"{"a":[1,2.0,"x\ny"],"b":{}}"#),
            ),
            (r#"["\u0001"]"#, Some(r#"["\u0001"]"#)),
        ];
        for (json, expected) in cases {
            let v = Value::from_json_str(json).unwrap();
            assert_eq!(coerce_string(&v).as_deref(), expected, "{json}");
        }
    }

    #[test]
    fn lists_are_deduplicated_and_array_strings_parse_leniently() {
        let list = |json: &str| {
            coerce_string_list(&Value::from_json_str(json).unwrap())
                .map(|l| l.into_iter().map(Cow::into_owned).collect::<Vec<_>>())
        };
        assert_eq!(list(r#"["a","a",null,"",1]"#).unwrap(), ["a", "", "1"]);
        assert_eq!(list(r#""[\"a\", \"b\"]""#).unwrap(), ["a", "b"]);
        assert_eq!(
            list(r#""[1, 2.50, TRUE, null, beta, 0x1p3]""#).unwrap(),
            ["1", "2.5", "true", "8.0"]
        );
        assert_eq!(list(r#""[beta]""#).unwrap(), Vec::<String>::new());
        assert_eq!(
            list(r#""[{a: 1}, [x]]""#).unwrap(),
            [r#"{"a":1}"#, "[null]"]
        );
        for not_a_list in [
            r#""[broken""#,
            r#""[1,]""#,
            r#""[1] x""#,
            r#"" [1]""#,
            r#""a""#,
            "1",
            "{}",
        ] {
            assert_eq!(list(not_a_list), None, "{not_a_list}");
        }
        assert_eq!(list(r#""[1] ""#).unwrap(), ["1"]);
    }

    #[test]
    fn deeply_nested_array_strings_are_refused_not_overflowed() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_lenient_array(&deep), None);
    }
}
