//! The JSON value the engine evaluates against.
//!
//! `serde_json::Value` loses two distinctions the reference engine's string coercion depends on
//! (spec §2.4): a `-0` literal is the integer 0 while `-0.0` is a double, and integers above
//! `i64::MAX` are doubles. It also hashes object keys on every lookup, which costs more than the
//! whole rest of a condition on the small objects users are made of. [`Value`] keeps numbers
//! typed the way the spec wants and stores object members in a vector in document order, so a
//! selector step is a short linear scan.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value, typed as the evaluation spec requires (§2.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number written as an integer that fits in `i64` (`-0` included, as 0).
    Int(i64),
    /// An integer literal in `(i64::MAX, u64::MAX]`: kept exactly for output, coerced as a double.
    UInt(u64),
    /// Any other number: it has a fraction or an exponent, or does not fit in 64 bits.
    Double(f64),
    /// A string.
    String(Box<str>),
    /// An array.
    Array(Vec<Value>),
    /// An object, members in document order.
    Object(Object),
}

/// A JSON object: members in insertion order, keys unique (a repeated key replaces the value in
/// place, as an insertion-ordered map does).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    members: Vec<(Box<str>, Value)>,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of member `key`, if present.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.members
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    /// The value of member `key`, mutably, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.members
            .iter_mut()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    /// Sets member `key`, replacing an existing value in place or appending a new member.
    pub fn insert(&mut self, key: impl Into<Box<str>>, value: Value) {
        let key = key.into();
        match self.members.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.members.push((key, value)),
        }
    }

    /// Removes member `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.members.iter().position(|(k, _)| &**k == key)?;
        Some(self.members.remove(index).1)
    }

    /// Members in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.members.iter().map(|(k, v)| (&**k, v))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when the object has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Appends without checking for an existing key. Callers guarantee uniqueness.
    fn push_unchecked(&mut self, key: Box<str>, value: Value) {
        self.members.push((key, value));
    }
}

impl FromIterator<(String, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut object = Object::new();
        for (k, v) in iter {
            object.insert(k, v);
        }
        object
    }
}

impl Value {
    /// Parses JSON text, keeping `-0` as the integer 0 (spec §2.4).
    pub fn from_json_str(text: &str) -> Result<Value, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut value = Value::deserialize(&mut de)?;
        de.end()?;
        // serde_json reports the literal `-0` as the double -0.0, like `-0.0` itself. Only the
        // text tells them apart, so when a negative zero was read, look at the literals.
        if value.contains_negative_zero() {
            let mut literals = negative_zero_literals(text).into_iter();
            value.fix_negative_zeros(&mut literals);
        }
        Ok(value)
    }

    /// The member `key` of an object, or `None` for anything else.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(o) => o.get(key),
            _ => None,
        }
    }

    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, when this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// True for JSON `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    fn contains_negative_zero(&self) -> bool {
        match self {
            Value::Double(d) => *d == 0.0 && d.is_sign_negative(),
            Value::Array(a) => a.iter().any(Value::contains_negative_zero),
            Value::Object(o) => o.members.iter().any(|(_, v)| v.contains_negative_zero()),
            _ => false,
        }
    }

    /// Walks the value in document order (the order serde_json visited it) and turns each
    /// negative zero whose literal was exactly `-0` into the integer 0.
    fn fix_negative_zeros(&mut self, literals: &mut impl Iterator<Item = bool>) {
        match self {
            Value::Double(d)
                if *d == 0.0 && d.is_sign_negative() && literals.next() == Some(true) =>
            {
                *self = Value::Int(0);
            }
            Value::Array(a) => a.iter_mut().for_each(|v| v.fix_negative_zeros(literals)),
            Value::Object(o) => o
                .members
                .iter_mut()
                .for_each(|(_, v)| v.fix_negative_zeros(literals)),
            _ => {}
        }
    }
}

/// For every number literal in `text` (outside strings) whose value is a negative zero, in
/// document order: whether the literal is the integer `-0`. Only called on text serde_json
/// already accepted, so the scan can be simple.
fn negative_zero_literals(text: &str) -> Vec<bool> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' => {
                let start = i;
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let literal = &text[start..i];
                if literal
                    .parse::<f64>()
                    .is_ok_and(|d| d == 0.0 && d.is_sign_negative())
                {
                    out.push(literal == "-0");
                }
            }
            _ => i += 1,
        }
    }
    out
}

impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => number_from_serde(&n),
            serde_json::Value::String(s) => Value::String(s.into()),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                let mut object = Object::new();
                for (k, v) in o {
                    object.push_unchecked(k.into(), v.into());
                }
                Value::Object(object)
            }
        }
    }
}

fn number_from_serde(n: &serde_json::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Int(i)
    } else if let Some(u) = n.as_u64() {
        Value::UInt(u)
    } else {
        Value::Double(n.as_f64().unwrap_or(f64::NAN))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(a: Vec<T>) -> Self {
        Value::Array(a.into_iter().map(Into::into).collect())
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.into()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v.into()))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        // Configs are kept for as long as they are served: no spare capacity.
        out.shrink_to_fit();
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Object::new();
        // Large objects would make the duplicate check quadratic; only small ones are scanned,
        // larger ones are de-duplicated once at the end with a hash set.
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if object.len() < 32 {
                object.insert(key, value);
            } else {
                object.push_unchecked(key.into(), value);
            }
        }
        if object.len() > 32 {
            dedup_large(&mut object);
        }
        object.members.shrink_to_fit();
        Ok(Value::Object(object))
    }
}

/// Keeps the first position and the last value of each repeated key.
fn dedup_large(object: &mut Object) {
    let mut last: rustc_hash::FxHashMap<Box<str>, usize> = rustc_hash::FxHashMap::default();
    for (i, (k, _)) in object.members.iter().enumerate() {
        last.insert(k.clone(), i);
    }
    if last.len() == object.members.len() {
        return;
    }
    let mut members = std::mem::take(&mut object.members);
    let mut values: Vec<Option<Value>> = members
        .iter_mut()
        .map(|(_, v)| Some(std::mem::take(v)))
        .collect();
    let mut seen = rustc_hash::FxHashSet::default();
    for (k, _) in members {
        if seen.insert(k.clone()) {
            let value = last
                .get(&k)
                .and_then(|&i| values.get_mut(i))
                .and_then(Option::take)
                .unwrap_or_default();
            object.members.push((k, value));
        }
    }
}

impl From<Value> for serde_json::Value {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => serde_json::Value::from(i),
            Value::UInt(u) => serde_json::Value::from(u),
            Value::Double(d) => serde_json::Number::from_f64(d)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s.into()),
            Value::Array(a) => serde_json::Value::Array(a.into_iter().map(Into::into).collect()),
            Value::Object(o) => serde_json::Value::Object(
                o.members
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            // JSON has no NaN or infinity; they cannot come from JSON input either.
            Value::Double(d) if !d.is_finite() => serializer.serialize_unit(),
            Value::Double(d) => serializer.serialize_f64(*d),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(a) => {
                let mut seq = serializer.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(o) => o.serialize(serializer),
        }
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.members.len()))?;
        for (k, v) in &self.members {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Object(o) => Ok(o),
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other("a non-object"),
                &"a JSON object",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        Value::from_json_str(s).unwrap()
    }

    #[test]
    fn numbers_are_typed_like_the_reference_engine() {
        let cases = [
            ("3", Value::Int(3)),
            ("-3", Value::Int(-3)),
            ("-0", Value::Int(0)),
            ("3.0", Value::Double(3.0)),
            ("1e2", Value::Double(100.0)),
            ("9223372036854775807", Value::Int(i64::MAX)),
            (
                "9223372036854775808",
                Value::UInt(9_223_372_036_854_775_808),
            ),
            ("-9223372036854775808", Value::Int(i64::MIN)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), expected, "{text}");
        }
        assert!(matches!(parse("-0.0"), Value::Double(d) if d == 0.0 && d.is_sign_negative()));
        assert!(matches!(parse("-0e3"), Value::Double(d) if d == 0.0 && d.is_sign_negative()));
    }

    #[test]
    fn negative_zero_literals_are_told_apart_in_document_order() {
        let v = parse(r#"{"a":"-0 in a string","b":[-0.0,-0,{"c":-0}],"d":-0E1,"e":-10}"#);
        let expected = parse(r#"{"a":"-0 in a string","b":[-0.5,0,{"c":0}],"d":-0.5,"e":-10}"#);
        // Compare structure with the -0.0 positions swapped for a recognisable double.
        let Value::Object(o) = &v else { panic!() };
        let Value::Array(b) = o.get("b").unwrap() else {
            panic!()
        };
        assert!(matches!(b[0], Value::Double(d) if d == 0.0));
        assert_eq!(b[1], Value::Int(0));
        assert_eq!(b[2].get("c"), Some(&Value::Int(0)));
        assert!(matches!(o.get("d"), Some(Value::Double(_))));
        assert_eq!(o.get("e"), expected.get("e"));
    }

    #[test]
    fn objects_keep_order_and_the_last_duplicate() {
        let v = parse(r#"{"b":1,"a":2,"b":3}"#);
        let keys: Vec<_> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_owned())
            .collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(v.get("b"), Some(&Value::Int(3)));

        let mut big = String::from("{");
        for i in 0..40 {
            big.push_str(&format!("\"k{i}\":{i},"));
        }
        big.push_str("\"k3\":99}");
        let v = parse(&big);
        assert_eq!(v.as_object().unwrap().len(), 40);
        assert_eq!(v.get("k3"), Some(&Value::Int(99)));
        assert_eq!(v.as_object().unwrap().iter().nth(3).unwrap().0, "k3");
    }

    #[test]
    fn serializes_back_to_equivalent_json() {
        let text = r#"{"s":"x\"y","n":[1,2.5,true,null],"o":{"u":18446744073709551615}}"#;
        assert_eq!(serde_json::to_string(&parse(text)).unwrap(), text);
    }
}
