//! A deployment's `/sdk/v2/flags` bodies (`sdk-protocol.md` §A3), held once. The remote body
//! is every config the deployment serves as one JSON array; the local body (local-mode flags
//! and their ancestors, a subset in the same order) is made of slices of that text, so each
//! config's JSON is in memory once however many bodies serve it.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use vexil_eval::FlagConfig;

use super::ArcStr;

/// One body, as the parts that make its text in order (shared, never copied) and a digest of
/// that text.
#[derive(Debug, Clone)]
pub struct FlagsBody {
    parts: Vec<Bytes>,
    len: usize,
    /// SHA-256 of the text: two bodies are equal exactly when their digests are.
    digest: [u8; 32],
}

impl FlagsBody {
    fn new(parts: Vec<Bytes>) -> FlagsBody {
        let mut hash = Sha256::new();
        for part in &parts {
            hash.update(part);
        }
        FlagsBody {
            len: parts.iter().map(Bytes::len).sum(),
            digest: hash.finalize().into(),
            parts,
        }
    }

    /// The parts that, in order, make the body's text.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The length of the text in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a body with no text (never the case of a built one: the least is `[]`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// SHA-256 of the text: two bodies are equal exactly when their digests are (what a
    /// stream compares to know whether the body changed).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The text, copied into one string.
    pub fn to_text(&self) -> String {
        let mut out = Vec::with_capacity(self.len);
        for part in &self.parts {
            out.extend_from_slice(part);
        }
        // The parts are slices of one JSON text cut between configs, and ASCII punctuation.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Both bodies of a deployment.
#[derive(Debug)]
pub(crate) struct FlagsBodies {
    /// Every config, as one JSON array (also what [`super::persist`] keeps).
    pub all_text: Arc<str>,
    pub all: FlagsBody,
    /// The configs `build`'s `keep` selected.
    pub local: FlagsBody,
}

impl FlagsBodies {
    /// The bodies of `configs`: all of them, and those for which `keep` (given each config's
    /// index) is true.
    pub fn build(configs: &[FlagConfig], keep: impl Fn(usize) -> bool) -> FlagsBodies {
        let mut text = Vec::with_capacity(configs.len() * 512);
        // Byte range of each config in `text`.
        let mut ranges = Vec::with_capacity(configs.len());
        text.push(b'[');
        for (i, config) in configs.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            let start = text.len();
            // Flag configs are plain data; serializing them cannot fail.
            let _ = serde_json::to_writer(&mut text, config);
            ranges.push(start..text.len());
        }
        text.push(b']');
        let all_text: Arc<str> = String::from_utf8(text).unwrap_or_default().into();
        let shared = Bytes::from_owner(ArcStr(all_text.clone()));
        let all = FlagsBody::new(vec![shared.clone()]);

        // Runs of consecutive kept configs are contiguous in the text, commas included.
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        let mut kept = 0;
        for (i, range) in ranges.iter().enumerate().filter(|&(i, _)| keep(i)) {
            kept += 1;
            match runs.last_mut() {
                Some(run) if i > 0 && keep(i - 1) => run.end = range.end,
                _ => runs.push(range.clone()),
            }
        }
        let local = if kept == ranges.len() {
            all.clone()
        } else if runs.is_empty() {
            FlagsBody::new(vec![Bytes::from_static(b"[]")])
        } else {
            // Each run takes the punctuation before it from the text: the comma ahead of its
            // first config, or the opening bracket for the first config of all; the last run
            // takes the closing bracket when it ends the text's configs.
            let text_end = shared.len() - 1;
            let last = runs.len() - 1;
            let mut parts = Vec::with_capacity(runs.len() + 2);
            for (n, run) in runs.into_iter().enumerate() {
                if n == 0 && run.start > 1 {
                    parts.push(Bytes::from_static(b"["));
                }
                let start = if n == 0 && run.start > 1 {
                    run.start
                } else {
                    run.start - 1
                };
                let closes = n == last && run.end == text_end;
                parts.push(shared.slice(start..run.end + usize::from(closes)));
                if n == last && !closes {
                    parts.push(Bytes::from_static(b"]"));
                }
            }
            FlagsBody::new(parts)
        };
        FlagsBodies {
            all_text,
            all,
            local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(n: usize) -> Vec<FlagConfig> {
        (0..n)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "key": format!("f{i}"), "variants": {"on": {"key": "on", "value": i}},
                    "segments": [{"variant": "on"}], "metadata": {"note": "ü,\"]["}
                }))
                .unwrap()
            })
            .collect()
    }

    /// Whatever configs are kept, the local body is the JSON of exactly those, in order, and
    /// equal texts have equal digests.
    #[test]
    fn local_bodies_are_the_kept_configs() {
        let all = configs(6);
        let cases: [&[usize]; 8] = [
            &[],
            &[0],
            &[5],
            &[0, 1, 2, 3, 4, 5],
            &[1, 2],
            &[0, 2, 4],
            &[0, 1, 3, 4, 5],
            &[2, 3, 5],
        ];
        for kept in cases {
            let bodies = FlagsBodies::build(&all, |i| kept.contains(&i));
            let picked: Vec<&FlagConfig> = kept.iter().map(|&i| &all[i]).collect();
            let want = serde_json::to_string(&picked).unwrap();
            assert_eq!(bodies.local.to_text(), want, "{kept:?}");
            assert_eq!(bodies.local.len(), want.len(), "{kept:?}");
            assert_eq!(
                bodies.local.digest(),
                FlagsBody::new(vec![Bytes::from(want)]).digest(),
                "{kept:?}"
            );
            assert_eq!(&*bodies.all_text, serde_json::to_string(&all).unwrap());
            assert_eq!(bodies.all.to_text(), &*bodies.all_text);
            assert_eq!(
                bodies.local.digest() == bodies.all.digest(),
                kept.len() == all.len(),
                "{kept:?}"
            );
            // One part per run of consecutive configs, plus a bracket where a run cannot take
            // it from the text.
            let runs = kept
                .iter()
                .enumerate()
                .filter(|&(n, &i)| n == 0 || kept[n - 1] + 1 != i)
                .count();
            let brackets = usize::from(kept.first().is_some_and(|&i| i > 0))
                + usize::from(kept.last().is_some_and(|&i| i + 1 < all.len()));
            if !kept.is_empty() && kept.len() < all.len() {
                assert_eq!(bodies.local.parts().len(), runs + brackets, "{kept:?}");
            }
        }
        assert_eq!(FlagsBodies::build(&[], |_| true).local.to_text(), "[]");
    }
}
