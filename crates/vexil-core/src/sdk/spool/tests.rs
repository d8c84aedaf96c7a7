//! The spool's promises: what was appended survives a crash and comes back in order, damaged
//! bytes go to quarantine rather than away, the cap holds, and replay progress survives a
//! restart.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vexil-spool-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn options(&self) -> SpoolOptions {
        SpoolOptions::new(&self.0)
    }

    /// The names of the files in the spool directory (not in quarantine).
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != QUARANTINE)
            .collect();
        names.sort();
        names
    }

    fn quarantined(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.0.join(QUARANTINE))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|p| fs::read(p).unwrap()).collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn record(project: &str, deployment: Option<&str>, stored: usize, body: &str) -> Record {
    Record {
        source: Source {
            project: project.into(),
            deployment: deployment.map(str::to_owned),
            trusted: deployment.is_none(),
        },
        stored,
        body: body.as_bytes().to_vec(),
    }
}

fn append(spool: &Spool, r: &Record) {
    spool.append(&r.source, r.stored, &r.body).unwrap();
}

/// Replays everything, storing each record; returns them in order.
fn drain(spool: &Spool) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        let step = spool
            .replay_one(&mut |r, _| {
                out.push(r.clone());
                Verdict::Stored
            })
            .unwrap();
        match step {
            Step::Empty => return out,
            Step::Advanced => {}
            Step::Waiting(e) => panic!("{e}"),
        }
    }
}

fn batches() -> Vec<Record> {
    vec![
        record(
            "checkout",
            Some("prod"),
            0,
            r#"{"api_key":"a","events":[{"n":1}]}"#,
        ),
        record("checkout", None, 1000, r#"{"api_key":"b","events":[]}"#),
        record(
            "search",
            Some("web"),
            0,
            r#"{"api_key":"c","events":[{"n":3},{"n":4}]}"#,
        ),
    ]
}

#[test]
fn appended_records_survive_a_crash_and_come_back_in_order() {
    let dir = TempDir::new("crash");
    let spool = Spool::open(dir.options()).unwrap();
    assert!(spool.is_empty());
    for r in batches() {
        append(&spool, &r);
    }
    let before = spool.stats();
    assert_eq!(before.batches, 3);
    // A crash: the spool goes away without any cleanup; what `append` returned for is on disk.
    drop(spool);
    let spool = Spool::open(dir.options()).unwrap();
    assert_eq!(
        spool.stats(),
        before,
        "the batches are counted again on opening"
    );
    assert!(!spool.is_empty());
    // New appends go to a new segment, behind the old ones.
    let late = record(
        "checkout",
        Some("prod"),
        0,
        r#"{"api_key":"a","events":[]}"#,
    );
    append(&spool, &late);
    let mut expected = batches();
    expected.push(late);
    assert_eq!(spool.stats().batches, 4);
    assert_eq!(drain(&spool), expected);
    assert!(spool.is_empty());
    assert_eq!(spool.stats().bytes, 0);
    assert_eq!(spool.stats().batches, 0);
    assert_eq!(
        dir.files(),
        Vec::<String>::new(),
        "stored segments are removed"
    );
}

#[test]
fn damaged_and_torn_records_are_quarantined_not_lost() {
    let dir = TempDir::new("damage");
    let spool = Spool::open(dir.options()).unwrap();
    let mut ends = Vec::new();
    for r in batches() {
        append(&spool, &r);
        ends.push(spool.stats().bytes);
    }
    drop(spool);
    let segment = dir.0.join(&dir.files()[0]);
    let mut bytes = fs::read(&segment).unwrap();
    // A damaged block in the middle record's body...
    let second = (ends[0] as usize, ends[1] as usize);
    bytes[second.1 - 3] ^= 0x55;
    let damaged = bytes[second.0..second.1].to_vec();
    // ...and a record torn at the end, as a crash during an append leaves it.
    let torn = bytes[..20].to_vec();
    bytes.extend_from_slice(&torn);
    fs::write(&segment, &bytes).unwrap();

    let spool = Spool::open(dir.options()).unwrap();
    assert_eq!(
        spool.stats().batches,
        4,
        "two whole records, and two damaged stretches that replay quarantines"
    );
    let replayed = drain(&spool);
    assert_eq!(spool.stats().batches, 0);
    let all = batches();
    assert_eq!(
        replayed,
        [all[0].clone(), all[2].clone()],
        "the record after the damage is found again"
    );
    assert_eq!(dir.quarantined(), [damaged.clone(), torn.clone()]);
    assert_eq!(
        spool.stats().quarantined_bytes,
        (damaged.len() + torn.len()) as u64
    );
    assert!(spool.is_empty());
    // The count of quarantined bytes survives a restart.
    drop(spool);
    let spool = Spool::open(dir.options()).unwrap();
    assert_eq!(
        spool.stats().quarantined_bytes,
        (damaged.len() + torn.len()) as u64
    );
}

#[test]
fn the_cap_refuses_batches_past_it_until_replay_frees_room() {
    let dir = TempDir::new("cap");
    let r = record("p", Some("d"), 0, &"x".repeat(1000));
    let probe = Spool::open(dir.options()).unwrap();
    append(&probe, &r);
    let one = probe.stats().bytes;
    drain(&probe);
    drop(probe);

    let spool = Spool::open(SpoolOptions {
        dir: dir.0.clone(),
        max_bytes: 3 * one,
    })
    .unwrap();
    for _ in 0..3 {
        append(&spool, &r);
    }
    let full = spool.append(&r.source, 0, &r.body).unwrap_err();
    assert!(
        matches!(full, SpoolError::Full { held, max } if held == 3 * one && max == 3 * one),
        "{full}"
    );
    assert_eq!(drain(&spool).len(), 3);
    append(&spool, &r);
}

#[test]
fn progress_and_retries_keep_the_record_across_a_restart() {
    let dir = TempDir::new("progress");
    let spool = Spool::open(dir.options()).unwrap();
    let r = record("p", Some("d"), 0, r#"{"events":[]}"#);
    append(&spool, &r);
    append(&spool, &r);
    // The first record is stored; of the second the store takes the first chunk, then becomes
    // unreachable.
    assert!(matches!(
        spool.replay_one(&mut |_, _| Verdict::Stored).unwrap(),
        Step::Advanced
    ));
    let step = spool
        .replay_one(&mut |_, progress| {
            progress(1000);
            Verdict::Retry(IngestError::Invalid("unreachable".into()))
        })
        .unwrap();
    assert!(matches!(step, Step::Waiting(_)));
    assert_eq!(
        spool.stats().batches,
        1,
        "a record being stored still waits"
    );
    drop(spool);
    let spool = Spool::open(dir.options()).unwrap();
    assert_eq!(
        spool.stats().batches,
        1,
        "only the record not yet stored waits"
    );
    let mut seen = None;
    spool
        .replay_one(&mut |r, _| {
            seen = Some(r.stored);
            Verdict::Stored
        })
        .unwrap();
    assert_eq!(seen, Some(1000), "replay starts after the stored chunk");
    assert!(drain(&spool).is_empty());
}

#[test]
fn a_record_the_store_refuses_goes_to_quarantine() {
    let dir = TempDir::new("reject");
    let spool = Spool::open(dir.options()).unwrap();
    let [bad, good, ..] = &batches()[..] else {
        unreachable!()
    };
    append(&spool, bad);
    append(&spool, good);
    let step = spool
        .replay_one(&mut |_, _| Verdict::Reject(IngestError::Invalid("no".into())))
        .unwrap();
    assert!(matches!(step, Step::Advanced));
    assert_eq!(drain(&spool), std::slice::from_ref(good));
    assert_eq!(dir.quarantined().len(), 1);
    assert!(spool.stats().quarantined_bytes > 0);
}

#[test]
fn segments_roll_and_appends_during_replay_are_replayed_too() {
    let dir = TempDir::new("roll");
    let mut spool = Spool::open(dir.options()).unwrap();
    spool.segment_bytes = 1;
    let all = batches();
    append(&spool, &all[0]);
    append(&spool, &all[1]);
    assert_eq!(spool.stats().segments, 2);
    let mut replayed = Vec::new();
    spool
        .replay_one(&mut |r, _| {
            replayed.push(r.clone());
            Verdict::Stored
        })
        .unwrap();
    append(&spool, &all[2]);
    replayed.extend(drain(&spool));
    assert_eq!(replayed, all);
    assert_eq!(dir.files(), Vec::<String>::new());

    // The segment being appended to is read up to its last whole record.
    spool.segment_bytes = SEGMENT_BYTES;
    append(&spool, &all[0]);
    let first = drain(&spool);
    append(&spool, &all[1]);
    assert_eq!(first, [all[0].clone()]);
    assert_eq!(drain(&spool), [all[1].clone()]);
}
