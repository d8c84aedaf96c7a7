//! Evaluation counters: how many times each deployment served each (flag, variant), for the
//! `/metrics` evaluation counters.
//!
//! Remote evaluation adds one per flag of every answer, from every server thread at once, so a
//! counter is striped: each thread adds to its own stripe and reading sums them, where one shared
//! atomic would bounce between cores. The stripes of all counters of a deployment live in a few
//! large chunks, stripe-major (one stripe of every counter of a chunk, then the next stripe), so
//! that a counter costs 8 bytes per stripe and threads on different stripes never share a cache
//! line. One counter per (flag, variant) of a deployment with 10,000 flags costs a few hundred
//! kilobytes, not the tens of megabytes that one cache-line-padded allocation per counter took.
//!
//! Counts survive publishes: a deployment's [`DeploymentCounts`] gives every snapshot the same
//! slot for the same (flag, variant). A (flag, variant) the new snapshot cannot serve leaves the
//! counters; its slot is reused only after one more publish, so that a request still answering
//! from the snapshot before cannot add to another counter's slot, and is zeroed then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::snapshot::Snapshot;

/// Counters per chunk.
const CHUNK: usize = 1024;

/// Stripes per counter: one per core the process may run on, at most 8.
fn stripes() -> usize {
    static STRIPES: OnceLock<usize> = OnceLock::new();
    *STRIPES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8)
    })
}

/// Where the calling thread's stripe starts in a chunk, worked out once per thread.
fn my_stripe_start() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static START: usize = NEXT.fetch_add(1, Ordering::Relaxed) % stripes() * CHUNK;
    }
    START.with(|s| *s)
}

/// [`CHUNK`] counters, stripe-major.
#[derive(Debug)]
struct Chunk {
    cells: Box<[AtomicU64]>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            cells: (0..CHUNK * stripes()).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn add(&self, at: usize) {
        if let Some(cell) = self.cells.get(my_stripe_start() + at) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self, at: usize) -> u64 {
        (0..stripes())
            .filter_map(|s| self.cells.get(s * CHUNK + at))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn zero(&self, at: usize) {
        for s in 0..stripes() {
            if let Some(cell) = self.cells.get(s * CHUNK + at) {
                cell.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// The counters of one deployment, by (flag key, variant key). The server keeps one per
/// deployment and hands every snapshot of it [`DeploymentCounts::serve`].
#[derive(Debug, Default)]
pub struct DeploymentCounts {
    slots: HashMap<(Box<str>, Box<str>), u32>,
    chunks: Vec<Arc<Chunk>>,
    /// Slots the last publish released: free from the next one.
    released: Vec<u32>,
    free: Vec<u32>,
    /// Slots ever handed out: the next new one.
    next: u32,
}

impl DeploymentCounts {
    fn slot(&self, slot: u32) -> Option<(&Chunk, usize)> {
        let slot = slot as usize;
        Some((self.chunks.get(slot / CHUNK)?, slot % CHUNK))
    }

    /// The counters of what `snapshot` can serve, for it to add to. Counters of the (flag,
    /// variant)s it cannot serve are forgotten.
    pub fn serve(&mut self, snapshot: &Snapshot) -> ServedCounts {
        // Slots released a publish ago are no longer added to by anyone still answering.
        for slot in std::mem::take(&mut self.released) {
            if let Some((chunk, at)) = self.slot(slot) {
                chunk.zero(at);
            }
            self.free.push(slot);
        }
        let mut kept: HashMap<(Box<str>, Box<str>), u32> = HashMap::new();
        let mut flag_start = Vec::with_capacity(snapshot.flag_infos().len() + 1);
        let mut outcome_slots = Vec::new();
        for (flag, info) in snapshot.flag_infos().iter().enumerate() {
            flag_start.push(outcome_slots.len() as u32);
            for outcome in &info.outcomes {
                let variant = snapshot.variant_key(flag, outcome).unwrap_or_default();
                let label = (
                    Box::<str>::from(info.key.as_str()),
                    Box::<str>::from(variant),
                );
                let slot = match kept.get(&label) {
                    Some(&slot) => slot,
                    None => {
                        let slot = match self.slots.remove(&label) {
                            Some(slot) => slot,
                            None => self.take_slot(),
                        };
                        kept.insert(label, slot);
                        slot
                    }
                };
                outcome_slots.push(slot);
            }
        }
        flag_start.push(outcome_slots.len() as u32);
        self.released.extend(self.slots.values());
        self.slots = kept;
        ServedCounts {
            chunks: self.chunks.clone().into(),
            flag_start,
            outcome_slots,
        }
    }

    fn take_slot(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        let slot = self.next;
        self.next = self.next.saturating_add(1);
        // Slots are handed out in order, so the next one is in the last chunk or a new one.
        if slot as usize >= self.chunks.len() * CHUNK {
            self.chunks.push(Arc::new(Chunk::new()));
        }
        slot
    }

    /// Every counter, as (flag key, variant key, count), in no particular order.
    pub fn counts(&self) -> impl Iterator<Item = (&str, &str, u64)> {
        self.slots.iter().map(|((flag, variant), &slot)| {
            let n = self.slot(slot).map_or(0, |(chunk, at)| chunk.get(at));
            (&**flag, &**variant, n)
        })
    }
}

/// One snapshot's view of its deployment's counters: the counter of each result it can give.
#[derive(Debug, Default)]
pub struct ServedCounts {
    chunks: Arc<[Arc<Chunk>]>,
    /// Where each flag's outcomes start in `outcome_slots`, by flag index (one more at the end).
    flag_start: Vec<u32>,
    outcome_slots: Vec<u32>,
}

impl ServedCounts {
    /// Counts one served result: outcome `outcome` of flag `flag` (indexes of the snapshot).
    pub fn add(&self, flag: usize, outcome: usize) {
        let (Some(&start), Some(&end)) = (self.flag_start.get(flag), self.flag_start.get(flag + 1))
        else {
            return;
        };
        let at = start as usize + outcome;
        let Some(&slot) = self.outcome_slots.get(at).filter(|_| at < end as usize) else {
            return;
        };
        let slot = slot as usize;
        if let Some(chunk) = self.chunks.get(slot / CHUNK) {
            chunk.add(slot % CHUNK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::persist::tests::{configs, project, snapshot_of};

    fn read(counts: &DeploymentCounts) -> Vec<(String, String, u64)> {
        let mut all: Vec<_> = counts
            .counts()
            .map(|(f, v, n)| (f.to_owned(), v.to_owned(), n))
            .collect();
        all.sort();
        all
    }

    fn row(flag: &str, variant: &str, n: u64) -> (String, String, u64) {
        (flag.to_owned(), variant.to_owned(), n)
    }

    #[test]
    fn counts_survive_publishes_and_forget_what_is_no_longer_served() {
        let data = project(&[]);
        let mut counts = DeploymentCounts::default();
        let first = snapshot_of(&data, 1, configs("green"));
        let served = counts.serve(&first);
        let beta = first.flag_set().index_of("beta-only").unwrap();
        let outcome_of = |s: &Snapshot, variant: &str| {
            s.flag_infos()[beta]
                .outcomes
                .iter()
                .position(|o| s.variant_key(beta, o) == Some(variant))
                .unwrap()
        };
        for _ in 0..3 {
            served.add(beta, outcome_of(&first, "on"));
        }
        served.add(beta, outcome_of(&first, "off"));
        // Out of range: ignored, not counted elsewhere.
        served.add(beta, 99);
        served.add(99, 0);
        assert_eq!(
            read(&counts),
            [
                row("beta-only", "off", 1),
                row("beta-only", "on", 3),
                row("infra", "on", 0)
            ]
        );

        // A publish keeps the counts; a request still on the old snapshot adds to them too.
        let second = snapshot_of(&data, 2, configs("blue"));
        let now = counts.serve(&second);
        now.add(beta, outcome_of(&second, "on"));
        served.add(beta, outcome_of(&first, "on"));
        assert_eq!(
            read(&counts),
            [
                row("beta-only", "off", 1),
                row("beta-only", "on", 5),
                row("infra", "on", 0)
            ]
        );

        // `beta-only` gone: its counters leave, and their slots come back zeroed for new ones
        // only after one more publish.
        let only_infra = vec![configs("blue").remove(0)];
        let third = snapshot_of(&data, 3, only_infra.clone());
        counts.serve(&third);
        assert_eq!(read(&counts), [row("infra", "on", 0)]);
        let mut renamed = only_infra;
        renamed.extend(
            serde_json::from_value::<Vec<vexil_eval::FlagConfig>>(serde_json::json!([
                {"key": "fresh", "variants": {"a": {"key": "a"}, "b": {"key": "b"}},
                 "segments": [{"variant": "a"}, {"variant": "b"}]}
            ]))
            .unwrap(),
        );
        let fourth = snapshot_of(&data, 4, renamed);
        let latest = counts.serve(&fourth);
        let fresh = fourth.flag_set().index_of("fresh").unwrap();
        latest.add(fresh, 0);
        assert_eq!(
            read(&counts),
            [
                row("fresh", "a", 1),
                row("fresh", "b", 0),
                row("infra", "on", 0)
            ]
        );
        assert_eq!(counts.next, 3, "the released slots were reused");
    }
}
