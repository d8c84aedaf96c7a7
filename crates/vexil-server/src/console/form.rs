//! Form bodies as ordered name/value pairs, and the pieces of URLs the console builds.

/// The fields of an `application/x-www-form-urlencoded` body, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name` (checkbox groups).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The pairs whose name starts with `prefix`, with the prefix removed.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
    }

    /// These fields when they were submitted by form `id` (its hidden `_form`): a page shows a
    /// refused form's fields in that form only.
    pub fn of_form<'a>(fields: Option<&'a Fields>, id: &str) -> Option<&'a Fields> {
        fields.filter(|f| f.get("_form") == Some(id))
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: String) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value));
    }

    /// The choice of select `name` (`default` when absent) as the enum whose serde name it is,
    /// or an error naming the field, with `code` and the choices (`expected`).
    pub fn choice<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        default: &str,
        code: &'static str,
        expected: &str,
    ) -> vexil_core::Result<T> {
        let value = self.get(name).unwrap_or(default);
        serde_json::from_value(serde_json::Value::String(value.to_owned())).map_err(|_| {
            vexil_core::Error::invalid(name, code, format!("{name} is {expected}, not {value:?}"))
        })
    }

    /// The version a change is based on (`version` field).
    pub fn version(&self) -> Option<i64> {
        self.get("version").and_then(|v| v.trim().parse().ok())
    }
}

/// Percent-encodes one URL component.
pub(crate) fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Splits a list typed into a text box: one item per line or comma, trimmed, blanks dropped.
pub(crate) fn items(text: &str) -> Vec<String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One item per line, trimmed, blanks dropped (values that may contain commas).
pub(crate) fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_and_repeats() {
        let f = Fields::parse(b"a=1&b=+x+&deployments=p&deployments=q&seg.0=z&version=7");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.text("b").as_deref(), Some("x"));
        assert_eq!(f.all("deployments"), ["p", "q"]);
        assert_eq!(f.with_prefix("seg.").collect::<Vec<_>>(), [("0", "z")]);
        assert_eq!(f.version(), Some(7));
        assert_eq!(f.text("missing"), None);
        assert_eq!(items("a, b\nc,,"), ["a", "b", "c"]);
        assert_eq!(lines("a, b\n\n c "), ["a, b", "c"]);
        assert_eq!(encode("a b/é"), "a+b%2F%C3%A9");
    }
}
