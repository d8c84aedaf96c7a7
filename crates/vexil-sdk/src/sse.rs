//! A small server-sent events parser (the WHATWG `text/event-stream` format) over the chunks of
//! a response body. The flag stream (`sdk-protocol.md` §A4) sends one `data:` line per event,
//! but the parser follows the format in full: `\n`, `\r\n` and `\r` line endings, comments,
//! several `data:` lines joined by `\n`, `event:` and `id:` fields, chunks split anywhere.
//!
//! Public so that other followers of Vexil's streams (`vexil edge` follows its upstream's
//! relay stream with it) parse them the same way:
//!
//! ```
//! use vexil_sdk::sse::SseParser;
//!
//! let mut parser = SseParser::new(1 << 20);
//! assert!(parser.push(b"event: revision\ndata: {\"rev").unwrap().is_empty());
//! let events = parser.push(b"ision\":3}\n\n").unwrap();
//! assert_eq!(events[0].event.as_deref(), Some("revision"));
//! assert_eq!(events[0].data, r#"{"revision":3}"#);
//! ```

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// A line longer than the parser accepts: the connection is dropped rather than buffering
/// without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event-stream line is longer than the parser accepts")
    }
}

impl std::error::Error for LineTooLong {}

/// Incremental parser: feed it chunks, get the events they complete.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one ends nothing.
    after_cr: bool,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    max_line: usize,
}

impl SseParser {
    /// A parser that refuses lines (and events) over `max_line` bytes.
    pub fn new(max_line: usize) -> SseParser {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            data: Vec::new(),
            has_data: false,
            event: None,
            id: None,
            max_line,
        }
    }

    /// Parses `chunk`, returning the events it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        let mut out = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        out.push(event);
                    }
                }
                _ => {
                    self.line.push(byte);
                    if self.line.len() + self.data.len() > self.max_line {
                        return Err(LineTooLong);
                    }
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Some(SseEvent {
            event,
            data: String::from_utf8_lossy(&data).into_owned(),
            id: self.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An expected event: (event, data, id).
    type Expected<'a> = (Option<&'a str>, &'a str, Option<&'a str>);

    /// Feeds `chunks` in order and returns each event's (event, data, id), or `None` when a line
    /// was too long.
    fn check(chunks: &[&str], max_line: usize, expected: Option<&[Expected<'_>]>) {
        let mut parser = SseParser::new(max_line);
        let mut got = Vec::new();
        let mut failed = false;
        for chunk in chunks {
            match parser.push(chunk.as_bytes()) {
                Ok(events) => got.extend(events),
                Err(LineTooLong) => {
                    failed = true;
                    break;
                }
            }
        }
        match expected {
            None => assert!(failed, "{chunks:?} should fail, got {got:?}"),
            Some(expected) => {
                assert!(!failed, "{chunks:?} failed");
                let got: Vec<(Option<&str>, &str, Option<&str>)> = got
                    .iter()
                    .map(|e| (e.event.as_deref(), e.data.as_str(), e.id.as_deref()))
                    .collect();
                assert_eq!(got, expected, "{chunks:?}");
            }
        }
    }

    #[test]
    fn parses_event_streams() {
        type Case<'a> = (
            &'a [&'a str],
            Option<&'a [(Option<&'a str>, &'a str, Option<&'a str>)]>,
        );
        let cases: &[Case] = &[
            // The flag stream's shape: one data line, then an empty line.
            (&["data: [{\"key\":\"a\"}]\n\n"], Some(&[(None, "[{\"key\":\"a\"}]", None)])),
            // Keep-alive: `data:` and two spaces keep one space.
            (&["data:  \n\n"], Some(&[(None, " ", None)])),
            // Split anywhere, even inside the CRLF.
            (&["da", "ta: x", "y\r", "\n\r", "\n"], Some(&[(None, "xy", None)])),
            // Lone CR line endings.
            (&["data: a\r\rdata: b\r\r"], Some(&[(None, "a", None), (None, "b", None)])),
            // Several data lines join with \n; comments and unknown fields are skipped.
            (
                &[": ping\nretry: 5000\nevent: message\nid: 42\ndata: one\ndata:two\nfoo: bar\n\n"],
                Some(&[(Some("message"), "one\ntwo", Some("42"))]),
            ),
            // No data: nothing dispatched, and the event name does not leak into the next one.
            (&["event: x\n\ndata: d\n\n"], Some(&[(None, "d", None)])),
            // A field without a colon is a field with an empty value.
            (&["data\n\n"], Some(&[(None, "", None)])),
            // An unfinished event is not dispatched.
            (&["data: partial\n"], Some(&[])),
            // The id persists across events.
            (&["id: 7\ndata: a\n\ndata: b\n\n"], Some(&[(None, "a", Some("7")), (None, "b", Some("7"))])),
            // Invalid UTF-8 is replaced, never a panic.
            (&["data: \u{fffd}\n\n"], Some(&[(None, "\u{fffd}", None)])),
            // Over the limit: refused.
            (&["data: 0123456789012345678901234567890123456789"], None),
        ];
        for (chunks, expected) in cases {
            check(chunks, 32, *expected);
        }
        // Raw invalid bytes.
        let mut parser = SseParser::new(64);
        let events = parser.push(b"data: \xff\xfe\n\n").unwrap();
        assert_eq!(events[0].data, "\u{fffd}\u{fffd}");
    }
}
