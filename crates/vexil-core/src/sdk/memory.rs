//! What remote evaluation looks up besides the flags, held in memory so that SDK requests
//! never wait on the database: cohort members ([`CohortData`]) and the users'
//! `[Experiment] <flag_key>` properties ([`UserProperties`]).

use std::collections::hash_map::Entry;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::Serialize;

/// The group type of user cohorts (members are `user_id`s).
pub const USER_GROUP_TYPE: &str = "User";

/// One cohort's members, sorted so that membership is a binary search and the download body
/// is deterministic.
#[derive(Debug)]
pub struct CohortData {
    pub id: String,
    /// `User` or a group type.
    pub group_type: String,
    /// The cohort row's version; a new version means the members may have changed.
    pub version: i64,
    /// Unix milliseconds of the last change of membership.
    pub last_modified: i64,
    members: Vec<Box<str>>,
    /// The `/sdk/v1/cohort` body, built on the first download.
    body: OnceLock<Arc<str>>,
}

impl CohortData {
    pub fn new(
        id: String,
        group_type: String,
        version: i64,
        last_modified: i64,
        members: Vec<String>,
    ) -> CohortData {
        let mut members: Vec<Box<str>> = members.into_iter().map(String::into_boxed_str).collect();
        members.sort_unstable();
        members.dedup();
        CohortData {
            id,
            group_type,
            version,
            last_modified,
            members,
            body: OnceLock::new(),
        }
    }

    pub fn contains(&self, member: &str) -> bool {
        self.members.binary_search_by(|m| (**m).cmp(member)).is_ok()
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The members, sorted and without duplicates.
    pub fn members(&self) -> &[Box<str>] {
        &self.members
    }

    /// Whether both hold the same members (a re-upload of the same list keeps `last_modified`).
    pub fn same_members(&self, members: &[String]) -> bool {
        let mut sorted: Vec<&str> = members.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        sorted.len() == self.members.len()
            && sorted.iter().zip(&self.members).all(|(a, b)| *a == &**b)
    }

    /// The stable small integer SDKs receive as `groupTypeId`: 0 for users, otherwise derived
    /// from the group type's name so that every node gives the same number.
    pub fn group_type_id(&self) -> u32 {
        if self.group_type == USER_GROUP_TYPE {
            0
        } else {
            1 + vexil_eval::murmur3_x86_32(self.group_type.as_bytes(), 0) % 99_999
        }
    }

    /// The body of `GET /sdk/v1/cohort/{id}` (`sdk-protocol.md` §A9).
    pub fn download_body(&self) -> Arc<str> {
        self.body
            .get_or_init(|| {
                #[derive(Serialize)]
                #[serde(rename_all = "camelCase")]
                struct Body<'a> {
                    cohort_id: &'a str,
                    group_type: &'a str,
                    group_type_id: u32,
                    last_computed: i64,
                    last_modified: i64,
                    size: usize,
                    member_ids: &'a [Box<str>],
                }
                let body = Body {
                    cohort_id: &self.id,
                    group_type: &self.group_type,
                    group_type_id: self.group_type_id(),
                    last_computed: self.last_modified,
                    last_modified: self.last_modified,
                    size: self.members.len(),
                    member_ids: &self.members,
                };
                serde_json::to_string(&body)
                    .unwrap_or_default()
                    .into_boxed_str()
                    .into()
            })
            .clone()
    }
}

/// Which identifier a stored property hangs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    User,
    Device,
}

impl IdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::User => "user",
            IdKind::Device => "device",
        }
    }

    pub fn parse(s: &str) -> Option<IdKind> {
        match s {
            "user" => Some(IdKind::User),
            "device" => Some(IdKind::Device),
            _ => None,
        }
    }
}

/// A user's properties: flag key to variant key.
type Props = Vec<(Box<str>, Box<str>)>;
/// One shard: id to properties.
type Shard = RwLock<FxHashMap<Box<str>, Props>>;

const SHARDS: usize = 16;

/// The `[Experiment] <flag_key>` user properties of one project, by user id and by device id,
/// in shards so that readers and the writer rarely meet on one lock.
///
/// Only the properties of flags that some targeting condition reads are kept (the publisher
/// says which, [`UserProperties::keep_only`]): memory grows with the users of those flags, not
/// with every user times every flag. The store keeps them all.
#[derive(Debug)]
pub struct UserProperties {
    kept: RwLock<std::collections::BTreeSet<Box<str>>>,
    users: Box<[Shard]>,
    devices: Box<[Shard]>,
    /// How many (id, flag) pairs are stored; lets evaluation skip the lookup entirely while
    /// nothing is.
    len: AtomicUsize,
}

impl Default for UserProperties {
    fn default() -> Self {
        let shards = || (0..SHARDS).map(|_| RwLock::default()).collect();
        UserProperties {
            kept: RwLock::default(),
            users: shards(),
            devices: shards(),
            len: AtomicUsize::new(0),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl UserProperties {
    fn shard(&self, kind: IdKind, id: &str) -> &Shard {
        let index = (FxBuildHasher.hash_one(id) as usize) % SHARDS;
        match kind {
            IdKind::User => &self.users[index],
            IdKind::Device => &self.devices[index],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Number of stored (id, flag) properties.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Calls `f` with each (flag key, variant key) stored for the id.
    pub fn for_each(&self, kind: IdKind, id: &str, mut f: impl FnMut(&str, &str)) {
        if self.is_empty() || id.is_empty() {
            return;
        }
        let shard = read(self.shard(kind, id));
        if let Some(props) = shard.get(id) {
            for (flag, variant) in props {
                f(flag, variant);
            }
        }
    }

    /// Whether the properties of `flag` are kept.
    pub fn keeps(&self, flag: &str) -> bool {
        read(&self.kept).contains(flag)
    }

    /// Keeps the properties of these flags from now on, forgets the others; returns the flags
    /// that were not kept before (whose stored properties the caller should load).
    pub fn keep_only(&self, flags: &std::collections::BTreeSet<String>) -> Vec<String> {
        let mut kept = write(&self.kept);
        let added: Vec<String> = flags
            .iter()
            .filter(|f| !kept.contains(f.as_str()))
            .cloned()
            .collect();
        let dropped = kept.iter().any(|f| !flags.contains(&**f));
        *kept = flags.iter().map(|f| f.as_str().into()).collect();
        drop(kept);
        if dropped {
            for shard in self.users.iter().chain(self.devices.iter()) {
                let mut shard = write(shard);
                shard.retain(|_, props| {
                    let before = props.len();
                    props.retain(|(f, _)| flags.contains(&**f));
                    self.len.fetch_sub(before - props.len(), Ordering::Relaxed);
                    !props.is_empty()
                });
            }
        }
        added
    }

    /// Sets (`Some`) or unsets (`None`) the property of `flag` for the id, if `flag`'s are kept.
    pub fn apply(&self, kind: IdKind, id: &str, flag: &str, variant: Option<&str>) {
        if id.is_empty() || !self.keeps(flag) {
            return;
        }
        let mut shard = write(self.shard(kind, id));
        match (shard.entry(id.into()), variant) {
            (Entry::Occupied(mut e), Some(v)) => {
                let props = e.get_mut();
                match props.iter_mut().find(|(f, _)| &**f == flag) {
                    Some((_, old)) => *old = v.into(),
                    None => {
                        props.push((flag.into(), v.into()));
                        self.len.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (Entry::Vacant(e), Some(v)) => {
                e.insert(vec![(flag.into(), v.into())]);
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            (Entry::Occupied(mut e), None) => {
                let props = e.get_mut();
                if let Some(i) = props.iter().position(|(f, _)| &**f == flag) {
                    props.swap_remove(i);
                    self.len.fetch_sub(1, Ordering::Relaxed);
                }
                if props.is_empty() {
                    e.remove();
                }
            }
            (Entry::Vacant(_), None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohort_membership_and_download() {
        let c = CohortData::new(
            "c1".into(),
            "User".into(),
            3,
            1_767_225_600_000,
            vec!["u2".into(), "u1".into(), "u2".into()],
        );
        assert!(c.contains("u1") && c.contains("u2") && !c.contains("u3"));
        assert_eq!(c.size(), 2);
        assert!(c.same_members(&["u1".into(), "u2".into()]));
        assert!(!c.same_members(&["u1".into()]));
        assert_eq!(
            &*c.download_body(),
            r#"{"cohortId":"c1","groupType":"User","groupTypeId":0,"lastComputed":1767225600000,"lastModified":1767225600000,"size":2,"memberIds":["u1","u2"]}"#
        );
        let org = CohortData::new("c2".into(), "org".into(), 1, 0, vec![]);
        let id = org.group_type_id();
        assert!(id > 0 && id < 100_000);
        assert_eq!(
            id,
            CohortData::new("x".into(), "org".into(), 9, 5, vec![]).group_type_id()
        );
    }

    #[test]
    fn properties_set_replace_and_unset() {
        let p = UserProperties::default();
        let get = |kind, id| {
            let mut out = Vec::new();
            p.for_each(kind, id, |f, v| out.push(format!("{f}={v}")));
            out.sort();
            out
        };
        assert!(p.is_empty());
        let kept = |flags: &[&str]| flags.iter().map(|f| (*f).to_owned()).collect();
        assert_eq!(p.keep_only(&kept(&["a", "b"])), ["a", "b"]);
        p.apply(IdKind::User, "u1", "ignored", Some("on"));
        p.apply(IdKind::User, "u1", "a", Some("on"));
        p.apply(IdKind::User, "u1", "b", Some("x"));
        p.apply(IdKind::User, "u1", "a", Some("control"));
        p.apply(IdKind::Device, "u1", "a", Some("on"));
        p.apply(IdKind::User, "", "a", Some("on"));
        assert_eq!(get(IdKind::User, "u1"), ["a=control", "b=x"]);
        assert_eq!(get(IdKind::Device, "u1"), ["a=on"]);
        assert_eq!(p.len(), 3);
        p.apply(IdKind::User, "u1", "a", None);
        p.apply(IdKind::User, "u1", "b", None);
        p.apply(IdKind::User, "nobody", "b", None);
        assert_eq!(get(IdKind::User, "u1"), Vec::<String>::new());
        assert_eq!(p.len(), 1);
        // Forgetting a flag drops its properties; keeping it again starts empty.
        p.apply(IdKind::User, "u2", "b", Some("x"));
        assert_eq!(p.keep_only(&kept(&["b", "c"])), ["c"]);
        assert_eq!(get(IdKind::Device, "u1"), Vec::<String>::new());
        assert_eq!(get(IdKind::User, "u2"), ["b=x"]);
        assert_eq!(p.len(), 1);
    }
}
