//! The spool: a bounded write-ahead log on local disk for the event batches the store could not
//! take. While the store is unreachable, a batch that [`super::ingest::head`] accepted is
//! appended here and flushed to the disk (`fsync`) before the client is answered, so a `200`
//! still means the events are durable. The [`super::Tracker`]'s replay thread stores the records
//! once the store answers again, oldest first, and deletes each only after it is stored.
//!
//! The directory holds segment files `<id>.seg` (20-digit ids, ascending) of records:
//!
//! ```text
//! "VXS1" | payload length (u32 LE) | CRC32 of the length and the payload (u32 LE) | payload
//! payload = events already stored (u64 LE) | trusted (u8) | project length (u32 LE), project
//!           | deployment present (u8) [| deployment length (u32 LE), deployment] | batch body
//! ```
//!
//! Records are never rewritten. How far the replay of a segment got is kept beside it in
//! `<id>.ack` (the offset of the first record not yet stored, and how many events of that
//! record are, with a checksum), rewritten after every stored chunk; a segment is removed once
//! every record in it is stored. A node that dies between storing a chunk and writing its
//! acknowledgement replays that chunk: events with an `insert_id` are then skipped by the
//! store's de-duplication, while events without one are stored a second time. That window is
//! one chunk of one record.
//!
//! A record that cannot be read back (a torn write at the end of a segment after a crash, or a
//! damaged disk block) is never dropped silently: its bytes are copied to
//! `quarantine/<segment>-<offset>.bad`, a warning names that file, [`SpoolStats`] counts the
//! quarantined bytes, and replay resumes at the next record whose checksum holds. A torn
//! record at the end was never acknowledged to its client (the answer waits for `fsync`), so
//! in practice quarantine holds only what a disk damaged.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::tracking::{IngestError, Source};

/// The default cap of the spool's size on disk: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Appends go to a new segment once the current one holds this much, so that stored records
/// free their space in steps of this size.
const SEGMENT_BYTES: u64 = 8 << 20;
const MAGIC: [u8; 4] = *b"VXS1";
/// Magic, length and checksum.
const HEADER: u64 = 12;
/// The largest payload a record may claim. A batch is at most 20 MiB once inflated (the
/// server's limit), so a larger length can only be damage.
const MAX_PAYLOAD: u64 = 64 << 20;
/// Consumed offset, stored events, checksum.
const ACK_LEN: usize = 20;
const QUARANTINE: &str = "quarantine";

/// Where the spool lives and how large it may grow.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    /// Bytes of segment files at most; past it batches are refused as they were before the
    /// spool existed (`503` with `Retry-After`).
    pub max_bytes: u64,
}

impl SpoolOptions {
    /// A spool in `dir` with the default cap.
    pub fn new(dir: impl Into<PathBuf>) -> SpoolOptions {
        SpoolOptions {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why a batch could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full: {held} bytes held, at most {max}")]
    Full { held: u64, max: u64 },
    #[error("a batch of {bytes} bytes is too large for the spool")]
    TooLarge { bytes: usize },
    #[error("the spool failed at {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One spooled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub source: Source,
    /// Events at the start of the batch that are stored already (a batch the outage cut in
    /// the middle); replay skips them.
    pub stored: usize,
    pub body: Vec<u8>,
}

/// What the spool holds, for probes and metrics (serialized as the probes show it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpoolStats {
    /// Batches waiting: records neither stored (or forwarded) nor quarantined yet. Counted by
    /// reading the spool when it opens, then kept by appends and replay.
    pub batches: u64,
    /// Bytes of segment files on disk (stored records free theirs when their segment goes).
    pub bytes: u64,
    pub segments: usize,
    /// Bytes moved to `quarantine/` because they could not be read back.
    pub quarantined_bytes: u64,
}

/// What the caller of [`Spool::replay_one`] did with a record.
pub enum Verdict {
    Stored,
    /// The store could not take it now; keep it.
    Retry(IngestError),
    /// It can never be stored; quarantine it.
    Reject(IngestError),
}

/// Stores one record for [`Spool::replay_one`]; the callback it is given records how many
/// events of the record are stored, after each chunk.
pub type Store<'a> = dyn FnMut(&Record, &mut dyn FnMut(usize)) -> Verdict + 'a;

/// What one replay step came to.
pub enum Step {
    /// Nothing is spooled.
    Empty,
    /// A record was stored or quarantined, or a finished segment removed.
    Advanced,
    /// The store could not take the oldest record; it stays.
    Waiting(IngestError),
}

struct Active {
    id: u64,
    file: File,
    /// Bytes of whole, flushed records.
    len: u64,
}

struct State {
    /// Segment ids on disk, oldest first; the last one is `active` when that is set.
    segments: VecDeque<u64>,
    active: Option<Active>,
    next_id: u64,
    bytes: u64,
    /// Records not yet replayed (see [`SpoolStats::batches`]).
    records: u64,
    quarantined: u64,
}

/// The spool of one node. Appends may come from any thread; replay from one at a time.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Spool {
    /// Opens (creating it when missing) the spool in `options.dir`. Segments left by an
    /// earlier run are kept for replay; appends go to a new segment.
    pub fn open(options: SpoolOptions) -> Result<Spool, SpoolError> {
        let dir = options.dir;
        let quarantine = dir.join(QUARANTINE);
        fs::create_dir_all(&quarantine).map_err(io_at(&quarantine))?;
        let mut ids = Vec::new();
        let mut acks = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if let Some(id) = parse_id(name, ".seg") {
                ids.push(id);
            } else if let Some(id) = parse_id(name, ".ack") {
                acks.push(id);
            }
        }
        ids.sort_unstable();
        let mut segments = VecDeque::new();
        let mut bytes = 0;
        let mut records = 0;
        for id in ids {
            let path = segment_path(&dir, id);
            let len = fs::metadata(&path).map_err(io_at(&path))?.len();
            if len == 0 {
                // Created, then the node stopped before its first record: nothing to keep.
                fs::remove_file(&path).map_err(io_at(&path))?;
                continue;
            }
            // A segment that cannot be read now is left to replay, which reports what it
            // finds; the node starts all the same, and the count misses its records.
            match count_records(&path, Ack::read(&dir, id).consumed, len) {
                Ok(n) => records += n,
                Err(e) => tracing::warn!(
                    error = %e,
                    path = %path.display(),
                    "counting the batches of a spool segment failed; they are replayed all the same"
                ),
            }
            bytes += len;
            segments.push_back(id);
        }
        for id in acks.into_iter().filter(|id| !segments.contains(id)) {
            // The segment was removed and the node stopped before its acknowledgement was.
            let path = ack_path(&dir, id);
            fs::remove_file(&path).map_err(io_at(&path))?;
        }
        let mut quarantined = 0;
        for entry in fs::read_dir(&quarantine).map_err(io_at(&quarantine))? {
            let entry = entry.map_err(io_at(&quarantine))?;
            quarantined += entry.metadata().map_err(io_at(&quarantine))?.len();
        }
        sync_dir(&dir)?;
        if !segments.is_empty() {
            tracing::info!(
                batches = records,
                bytes,
                segments = segments.len(),
                dir = %dir.display(),
                "the spool holds event batches from an earlier run; they are stored when the store answers"
            );
        }
        let next_id = segments.back().map_or(1, |id| id + 1);
        Ok(Spool {
            dir,
            max_bytes: options.max_bytes,
            segment_bytes: SEGMENT_BYTES,
            state: Mutex::new(State {
                segments,
                active: None,
                next_id,
                bytes,
                records,
                quarantined,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether no record waits for the store.
    pub fn is_empty(&self) -> bool {
        self.lock().segments.is_empty()
    }

    pub fn stats(&self) -> SpoolStats {
        let state = self.lock();
        SpoolStats {
            batches: state.records,
            bytes: state.bytes,
            segments: state.segments.len(),
            quarantined_bytes: state.quarantined,
        }
    }

    /// Appends a batch of which the first `stored` events are stored already, and flushes it
    /// to the disk: when this returns `Ok`, the record survives a crash of the node.
    pub fn append(&self, source: &Source, stored: usize, body: &[u8]) -> Result<(), SpoolError> {
        let head = encode_head(source, stored, body)?;
        let len = head.len() as u64 + body.len() as u64;
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.bytes + len > self.max_bytes {
            return Err(SpoolError::Full {
                held: state.bytes,
                max: self.max_bytes,
            });
        }
        if state
            .active
            .as_ref()
            .is_none_or(|a| a.len >= self.segment_bytes)
        {
            self.roll(state)?;
        }
        let Some(active) = state.active.as_mut() else {
            return Err(SpoolError::Io {
                path: self.dir.clone(),
                source: io::Error::other("no segment to append to"),
            });
        };
        let written = active
            .file
            .write_all(&head)
            .and_then(|()| active.file.write_all(body))
            .and_then(|()| active.file.sync_data());
        match written {
            Ok(()) => {
                active.len += len;
                state.bytes += len;
                state.records += 1;
                Ok(())
            }
            Err(source) => {
                // Leave no torn record behind: cut the segment back to its last whole record,
                // and give the next append a fresh segment.
                let _ = active.file.set_len(active.len);
                let _ = active.file.sync_data();
                let path = segment_path(&self.dir, active.id);
                state.active = None;
                Err(SpoolError::Io { path, source })
            }
        }
    }

    /// Starts a new segment for appends.
    fn roll(&self, state: &mut State) -> Result<(), SpoolError> {
        let id = state.next_id;
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_at(&path))?;
        // The new file's directory entry must be durable too, or a crash could lose the
        // segment along with records already acknowledged.
        sync_dir(&self.dir)?;
        state.next_id += 1;
        state.segments.push_back(id);
        state.active = Some(Active { id, file, len: 0 });
        Ok(())
    }

    /// Hands the oldest record to `store` (with a callback that records how many of its events
    /// are stored, after each chunk), and acknowledges it when stored. Call from one thread.
    pub fn replay_one(&self, store: &mut Store<'_>) -> Result<Step, SpoolError> {
        let (id, appending) = {
            let state = self.lock();
            let Some(&id) = state.segments.front() else {
                return Ok(Step::Empty);
            };
            let appending = state.active.as_ref().filter(|a| a.id == id).map(|a| a.len);
            (id, appending)
        };
        let path = segment_path(&self.dir, id);
        let mut file = File::open(&path).map_err(io_at(&path))?;
        // Of the segment being appended to, only the records already flushed are read.
        let end = match appending {
            Some(len) => len,
            None => file.metadata().map_err(io_at(&path))?.len(),
        };
        let ack = Ack::read(&self.dir, id);
        let at = ack.consumed.min(end);
        match read_record(&mut file, at, end).map_err(io_at(&path))? {
            Found::End => {
                self.finish(id, end)?;
                Ok(Step::Advanced)
            }
            Found::Damaged => {
                let next = resync(&mut file, at, end).map_err(io_at(&path))?;
                self.quarantine(
                    id,
                    &mut file,
                    at,
                    next,
                    "it cannot be read back (damaged or torn)",
                )?;
                Ack::new(next, 0).write(&self.dir, id)?;
                self.replayed();
                Ok(Step::Advanced)
            }
            Found::Record(mut record, next) => {
                if ack.consumed == at {
                    record.stored = record
                        .stored
                        .max(usize::try_from(ack.stored).unwrap_or(usize::MAX));
                }
                let dir = &self.dir;
                let mut progress = |stored: usize| {
                    if let Err(err) = Ack::new(at, stored as u64).write(dir, id) {
                        tracing::warn!(error = %crate::error::chain(&err), "recording the replay's progress failed; a restart replays this record again");
                    }
                };
                match store(&record, &mut progress) {
                    Verdict::Stored => {
                        Ack::new(next, 0).write(&self.dir, id)?;
                        self.replayed();
                        Ok(Step::Advanced)
                    }
                    Verdict::Retry(err) => Ok(Step::Waiting(err)),
                    Verdict::Reject(err) => {
                        let why = format!("the store refused it: {}", crate::error::chain(&err));
                        self.quarantine(id, &mut file, at, next, &why)?;
                        Ack::new(next, 0).write(&self.dir, id)?;
                        self.replayed();
                        Ok(Step::Advanced)
                    }
                }
            }
        }
    }

    /// Counts one record off the waiting ones: stored, or quarantined.
    fn replayed(&self) {
        let mut state = self.lock();
        state.records = state.records.saturating_sub(1);
    }

    /// Removes segment `id`, every record of which (up to `end`) is stored, unless records were
    /// appended to it meanwhile.
    fn finish(&self, id: u64, end: u64) -> Result<(), SpoolError> {
        let mut state = self.lock();
        match state.active.as_ref().map(|a| (a.id, a.len)) {
            // Records were appended meanwhile: replay them first.
            Some((active, len)) if active == id && len != end => return Ok(()),
            Some((active, _)) if active == id => state.active = None,
            _ => {}
        }
        // The segment goes first: were the acknowledgement removed first and the node to stop
        // in between, the whole segment would be replayed.
        let path = segment_path(&self.dir, id);
        fs::remove_file(&path).map_err(io_at(&path))?;
        let ack = ack_path(&self.dir, id);
        match fs::remove_file(&ack) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&ack)(e)),
        }
        sync_dir(&self.dir)?;
        state.segments.retain(|&s| s != id);
        state.bytes = state.bytes.saturating_sub(end);
        Ok(())
    }

    /// Copies bytes `from..to` of segment `id` to the quarantine directory and says so.
    fn quarantine(
        &self,
        id: u64,
        file: &mut File,
        from: u64,
        to: u64,
        why: &str,
    ) -> Result<(), SpoolError> {
        let dir = self.dir.join(QUARANTINE);
        let path = dir.join(format!("{id:020}-{from:020}.bad"));
        let segment = segment_path(&self.dir, id);
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(from))
            .and_then(|_| Read::take(&mut *file, to - from).read_to_end(&mut bytes))
            .map_err(io_at(&segment))?;
        let mut out = File::create(&path).map_err(io_at(&path))?;
        out.write_all(&bytes)
            .and_then(|()| out.sync_all())
            .map_err(io_at(&path))?;
        sync_dir(&dir)?;
        self.lock().quarantined += bytes.len() as u64;
        tracing::warn!(
            bytes = bytes.len(),
            path = %path.display(),
            reason = why,
            "a spooled record could not be replayed; its bytes are kept in quarantine for inspection"
        );
        Ok(())
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn ack_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.ack"))
}

fn parse_id(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Makes the directory's entries (files created, renamed or removed) durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// How far the replay of a segment got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ack {
    /// Offset of the first record not yet stored.
    consumed: u64,
    /// Events of that record stored already.
    stored: u64,
}

impl Ack {
    fn new(consumed: u64, stored: u64) -> Ack {
        Ack { consumed, stored }
    }

    /// The acknowledgement of segment `id`; from its start when there is none or it is
    /// damaged (replay then repeats stored records, which insert ids de-duplicate).
    fn read(dir: &Path, id: u64) -> Ack {
        let path = ack_path(dir, id);
        let Ok(bytes) = fs::read(&path) else {
            return Ack::default();
        };
        let parsed = (bytes.len() == ACK_LEN)
            .then(|| {
                let word = |at: usize| {
                    bytes[at..at + 8]
                        .try_into()
                        .map(u64::from_le_bytes)
                        .unwrap_or(u64::MAX)
                };
                let crc = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
                (crc32fast::hash(&bytes[..16]) == crc).then(|| Ack::new(word(0), word(8)))
            })
            .flatten();
        parsed.unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "a spool acknowledgement is damaged; its segment is replayed from the start");
            Ack::default()
        })
    }

    /// Overwrites the acknowledgement in place and flushes it. Twenty bytes at the start of a
    /// file sit in one disk sector; were they torn anyway, the checksum would tell.
    fn write(&self, dir: &Path, id: u64) -> Result<(), SpoolError> {
        let path = ack_path(dir, id);
        let mut bytes = [0u8; ACK_LEN];
        bytes[..8].copy_from_slice(&self.consumed.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.stored.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..16]);
        bytes[16..].copy_from_slice(&crc.to_le_bytes());
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_at(&path))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(io_at(&path))?;
        if !existed {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The header and source of a record, before its body.
fn encode_head(source: &Source, stored: usize, body: &[u8]) -> Result<Vec<u8>, SpoolError> {
    let too_large = || SpoolError::TooLarge { bytes: body.len() };
    let mut meta = Vec::with_capacity(32 + source.project.len());
    meta.extend_from_slice(&(stored as u64).to_le_bytes());
    meta.push(u8::from(source.trusted));
    put_str(&mut meta, &source.project).ok_or_else(too_large)?;
    match &source.deployment {
        Some(d) => {
            meta.push(1);
            put_str(&mut meta, d).ok_or_else(too_large)?;
        }
        None => meta.push(0),
    }
    let payload = meta.len() + body.len();
    let len = u32::try_from(payload)
        .ok()
        .filter(|&l| u64::from(l) <= MAX_PAYLOAD)
        .ok_or_else(too_large)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(&meta);
    crc.update(body);
    let mut head = Vec::with_capacity(HEADER as usize + meta.len());
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&crc.finalize().to_le_bytes());
    head.extend_from_slice(&meta);
    Ok(head)
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Option<()> {
    out.extend_from_slice(&u32::try_from(s.len()).ok()?.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

/// Reads the fields of a payload in order.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.u32()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The source and stored-event count at the start of a payload, and where its body starts.
fn decode_meta(payload: &[u8]) -> Option<(Source, usize, usize)> {
    let mut c = Cursor {
        buf: payload,
        at: 0,
    };
    let stored = usize::try_from(c.u64()?).ok()?;
    let trusted = match c.u8()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let project = c.string()?;
    let deployment = match c.u8()? {
        0 => None,
        1 => Some(c.string()?),
        _ => return None,
    };
    let source = Source {
        project,
        deployment,
        trusted,
    };
    Some((source, stored, c.at))
}

/// Whether `header` and `payload` make a whole record.
fn intact(header: &[u8; HEADER as usize], payload: &[u8]) -> bool {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[4..8]);
    crc.update(payload);
    header[..4] == MAGIC
        && header[8..12] == crc.finalize().to_le_bytes()
        && decode_meta(payload).is_some()
}

enum Found {
    Record(Record, u64),
    End,
    Damaged,
}

/// How many replay steps segment `path` of `len` bytes holds from offset `from`: its records,
/// and each damaged stretch, which replay quarantines in one step.
fn count_records(path: &Path, from: u64, len: u64) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let (mut at, mut count) = (from, 0);
    loop {
        at = match read_record(&mut file, at, len)? {
            Found::End => return Ok(count),
            Found::Record(_, next) => next,
            Found::Damaged => resync(&mut file, at, len)?,
        };
        count += 1;
    }
}

/// The record at `at` of a segment whose whole records end at `end`.
fn read_record(file: &mut File, at: u64, end: u64) -> io::Result<Found> {
    if at >= end {
        return Ok(Found::End);
    }
    if end - at < HEADER {
        return Ok(Found::Damaged);
    }
    file.seek(SeekFrom::Start(at))?;
    let mut header = [0u8; HEADER as usize];
    file.read_exact(&mut header)?;
    let len = u64::from(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    if header[..4] != MAGIC || len > MAX_PAYLOAD || at + HEADER + len > end {
        return Ok(Found::Damaged);
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact(&mut payload)?;
    if !intact(&header, &payload) {
        return Ok(Found::Damaged);
    }
    let Some((source, stored, body_at)) = decode_meta(&payload) else {
        return Ok(Found::Damaged);
    };
    let body = payload.split_off(body_at);
    Ok(Found::Record(
        Record {
            source,
            stored,
            body,
        },
        at + HEADER + len,
    ))
}

/// The offset of the first intact record after the damaged one at `at`, or `end`.
fn resync(file: &mut File, at: u64, end: u64) -> io::Result<u64> {
    let start = at + 1;
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(start))?;
    Read::take(&mut *file, end.saturating_sub(start)).read_to_end(&mut rest)?;
    let header_len = HEADER as usize;
    for i in 0..rest.len().saturating_sub(header_len - 1) {
        if rest[i..i + 4] != MAGIC {
            continue;
        }
        let mut header = [0u8; HEADER as usize];
        header.copy_from_slice(&rest[i..i + header_len]);
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let Some(payload) = rest.get(i + header_len..i + header_len + len) else {
            continue;
        };
        if intact(&header, payload) {
            return Ok(start + i as u64);
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests;
