//! Posted event batches (`/2/httpapi`, `/batch`) read in bounded memory.
//!
//! A batch is read twice from its bytes. The first pass checks the whole document and finds
//! the `api_key` and the number of events without building anything, so that a malformed
//! batch is refused before any of it is stored and the caller can authenticate (and throttle)
//! the key first. The second pass turns one event at a time into its records and stores them
//! in transactions of [`CHUNK`] events, so the memory a batch holds is its bytes plus one chunk
//! of records, whatever the number of events, and no transaction holds the database's write
//! lock for long (management writes interleave instead of timing out).
//!
//! A batch is stored once every chunk is: a `200` means every event is durable. A failure
//! part-way leaves the chunks before it stored; the client's retry of the same batch then skips
//! them by their insert ids, and a batch spooled after such a failure remembers how many events
//! were stored, so that its replay starts after them.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;
use std::collections::BTreeMap;

use vexil_store::{EventRow, ExposureRow};

use super::tracking::{product_event, records, text, IngestError, Source};

/// Events stored per transaction.
pub const CHUNK: usize = 1_000;

/// What the first pass finds: the key and the number of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHead {
    pub api_key: String,
    pub events: usize,
}

/// The most event indexes a refusal lists per field.
const MAX_LISTED: usize = 1_000;

/// Checks a whole batch body and reads its key and event count, holding nothing but them and
/// the indexes of malformed events: an event without an `event_type` string, or whose `time`
/// is not an integer, is refused with its index (as Amplitude's API does), and nothing of the
/// batch is stored.
pub fn head(body: &[u8]) -> Result<BatchHead, IngestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut missing: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    let mut invalid: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    let mut index = 0usize;
    let mut check = |event: Json| {
        let note = |list: &mut BTreeMap<&'static str, Vec<usize>>, field: &'static str| {
            let at = list.entry(field).or_default();
            if at.len() < MAX_LISTED {
                at.push(index);
            }
        };
        match event.get("event_type") {
            Some(Json::String(t)) if !t.is_empty() => {}
            None | Some(Json::Null) => note(&mut missing, "event_type"),
            Some(_) => note(&mut invalid, "event_type"),
        }
        if event
            .get("time")
            .is_some_and(|t| !t.is_null() && !t.is_i64())
        {
            note(&mut invalid, "time");
        }
        index += 1;
        Ok(())
    };
    let found = de
        .deserialize_map(Pass { sink: &mut check })
        .and_then(|found| de.end().map(|()| found))
        .map_err(|e| IngestError::Invalid(e.to_string()))?;
    let api_key = match found.api_key {
        Some(Json::String(key)) => key,
        _ => return Err(IngestError::MissingField("api_key")),
    };
    let Some(events) = found.events else {
        return Err(IngestError::MissingField("events"));
    };
    if !missing.is_empty() || !invalid.is_empty() {
        return Err(IngestError::BadEvents { missing, invalid });
    }
    Ok(BatchHead { api_key, events })
}

/// What one event is stored as, with its insert id: exposure records for Vexil's experiment
/// events, a product event for the rest.
#[derive(Debug, Clone)]
pub(crate) struct EventRecords {
    pub insert_id: Option<String>,
    pub exposures: Vec<ExposureRow>,
    pub event: Option<EventRow>,
}

/// Reads the events of a body [`head`] accepted, handing their records to `store` in chunks
/// of [`CHUNK`] events (events without records count towards a chunk but add nothing), with
/// the number of events read so far; returns the number of events. The first `skip` events
/// (stored before, by a run that failed part-way) are read but add nothing, so chunks keep
/// their boundaries.
pub(crate) fn each_chunk(
    body: &[u8],
    source: &Source,
    now: i64,
    skip: usize,
    store: &mut dyn FnMut(&[EventRecords], usize) -> crate::Result<()>,
) -> Result<usize, IngestError> {
    let mut chunk: Vec<EventRecords> = Vec::new();
    let mut seen = 0usize;
    let mut failed: Option<crate::Error> = None;
    let mut sink = |event: Json| -> Result<(), String> {
        seen += 1;
        if seen > skip {
            let exposures = records(source, &event, now);
            let product = product_event(source, &event, now);
            if !exposures.is_empty() || product.is_some() {
                chunk.push(EventRecords {
                    insert_id: text(&event, "insert_id"),
                    exposures,
                    event: product,
                });
            }
        }
        if seen % CHUNK == 0 && !chunk.is_empty() {
            if let Err(err) = store(&chunk, seen) {
                failed = Some(err);
                return Err("storing the events failed".to_owned());
            }
            chunk.clear();
        }
        Ok(())
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = de.deserialize_map(Pass { sink: &mut sink });
    if let Some(err) = failed {
        return Err(IngestError::Failed(err));
    }
    read.map_err(|e| IngestError::Invalid(e.to_string()))?;
    if !chunk.is_empty() {
        store(&chunk, seen)?;
    }
    Ok(seen)
}

/// What a pass over the top-level object found.
struct Found {
    api_key: Option<Json>,
    events: Option<usize>,
}

/// One pass over the top-level object; each event goes to `sink` and is dropped after it.
struct Pass<'s> {
    sink: &'s mut dyn FnMut(Json) -> Result<(), String>,
}

impl<'de> Visitor<'de> for Pass<'_> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with api_key and events")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = Found {
            api_key: None,
            events: None,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "api_key" => found.api_key = Some(map.next_value()?),
                "events" => {
                    let count = map.next_value_seed(Events {
                        sink: &mut *self.sink,
                    })?;
                    found.events = Some(count);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// The `events` array: counts its elements and hands each to the sink.
struct Events<'s> {
    sink: &'s mut dyn FnMut(Json) -> Result<(), String>,
}

impl<'de> DeserializeSeed<'de> for Events<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<usize, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Events<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("events as an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(event) = seq.next_element::<Json>()? {
            n += 1;
            (self.sink)(event).map_err(de::Error::custom)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_name_what_is_missing_or_malformed() {
        // (body, Ok((api_key, events)) or Err(what is missing, or "invalid"))
        type Case = (&'static [u8], Result<(&'static str, usize), &'static str>);
        let cases: [Case; 9] = [
            (
                br#"{"api_key": "k", "events": [{"event_type": "a"}, {"event_type": "b", "time": 5}]}"#,
                Ok(("k", 2)),
            ),
            (
                br#"{"events": [{"event_type": "a"}], "x": [1, {"y": 2}], "api_key": "k"}"#,
                Ok(("k", 1)),
            ),
            (br#"{"api_key": "k", "events": [{"event_type": "a"}, {}]}"#, Err("bad events")),
            (br#"{"api_key": "k", "events": [{"event_type": "a", "time": "x"}]}"#, Err("bad events")),
            (br#"{"api_key": "k"}"#, Err("events")),
            (br#"{"events": []}"#, Err("api_key")),
            (br#"{"api_key": 5, "events": []}"#, Err("api_key")),
            (br#"{"api_key": "k", "events": [{}, {]}"#, Err("invalid")),
            (b"[1", Err("invalid")),
        ];
        for (body, expected) in cases {
            let got = match head(body) {
                Ok(h) => Ok((h.api_key, h.events)),
                Err(IngestError::MissingField(f)) => Err(f),
                Err(IngestError::Invalid(_)) => Err("invalid"),
                Err(IngestError::BadEvents { .. }) => Err("bad events"),
                Err(e) => panic!("{e}"),
            };
            let expected = expected.map(|(k, n)| (k.to_owned(), n));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn events_arrive_in_chunks_with_their_insert_ids() {
        let events: Vec<Json> = (0..2 * CHUNK + 5)
            .map(|i| {
                serde_json::json!({"event_type": if i % 2 == 0 { "$exposure" } else { "click" },
                    "user_id": format!("u{i}"), "insert_id": format!("i{i}"),
                    "event_properties": {"flag_key": "f", "variant": "on"}})
            })
            .collect();
        let body = serde_json::json!({"api_key": "k", "events": events}).to_string();
        let source = Source {
            project: "p".into(),
            deployment: None,
            trusted: true,
        };
        let mut chunks = Vec::new();
        let mut read = Vec::new();
        each_chunk(body.as_bytes(), &source, 1, 0, &mut |chunk, seen| {
            chunks.push(
                chunk
                    .iter()
                    .map(|r| (r.insert_id.clone(), r.exposures.len(), r.event.is_some()))
                    .collect::<Vec<_>>(),
            );
            read.push(seen);
            Ok(())
        })
        .unwrap();
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [CHUNK, CHUNK, 5],
            "exposures and product events alike"
        );
        assert_eq!(read, [CHUNK, 2 * CHUNK, 2 * CHUNK + 5]);
        assert_eq!(chunks[0][2], (Some("i2".to_owned()), 1, false));
        assert_eq!(
            chunks[0][1],
            (Some("i1".to_owned()), 0, true),
            "click is a product event"
        );

        // Skipping the events stored before keeps the chunks' boundaries.
        let mut first = Vec::new();
        each_chunk(body.as_bytes(), &source, 1, CHUNK, &mut |chunk, seen| {
            first.push((chunk[0].insert_id.clone(), chunk.len(), seen));
            Ok(())
        })
        .unwrap();
        let at = |i: usize| Some(format!("i{i}"));
        assert_eq!(
            first,
            [
                (at(CHUNK), CHUNK, 2 * CHUNK),
                (at(2 * CHUNK), 5, 2 * CHUNK + 5)
            ]
        );
    }
}
