//! A deployment's snapshot: everything the SDK endpoints need to answer without the database.
//! Its compiled flags, the `/sdk/v2/flags` bodies, evaluation plans computed once, the JSON of
//! every result each flag can give (so that answering is copying, not serializing), and the
//! cohorts its flags reference.
//!
//! A snapshot is immutable; the [`super::Publisher`] builds a new one after every change and
//! swaps it in whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use vexil_eval::{
    evaluate_plan, result_entry, CompileError, Context, CycleError, FlagConfig, FlagSet, Object,
    Plan, Value, VariantResult,
};

use super::counts::ServedCounts;
use super::enrich::{enrich, referenced_cohort_ids, Cohorts};
use super::flags_body::{FlagsBodies, FlagsBody};
use super::memory::{CohortData, UserProperties};
use crate::model::{Deployment, EvaluationMode, GroupKind};

/// What a project's snapshots share: its credentials, its cohorts and its users' properties.
#[derive(Debug)]
pub struct ProjectData {
    pub key: String,
    /// Project API key: event ingestion, and cohort downloads with the secret key.
    pub api_key: String,
    /// Hex SHA-256 of the secret key; the clear key is nowhere but with its holders.
    pub secret_key_hash: String,
    /// The API key and secret key hash a rotation replaced, accepted until
    /// `previous_key_expires_at` (Unix milliseconds).
    pub previous_api_key: Option<String>,
    pub previous_secret_key_hash: Option<String>,
    pub previous_key_expires_at: Option<i64>,
    /// Every cohort of the project, by id.
    pub cohorts: BTreeMap<String, Arc<CohortData>>,
    /// The users' `[Experiment] <flag_key>` properties; one instance per project, kept across
    /// snapshots.
    pub properties: Arc<UserProperties>,
    /// Keys of the project's mutual-exclusion groups, native and imported (no user property
    /// is set for them).
    pub mutex_flags: BTreeSet<String>,
}

impl ProjectData {
    /// Whether the previous credentials still count at `now_ms`.
    fn in_grace(&self, now_ms: i64) -> bool {
        self.previous_key_expires_at.is_some_and(|end| now_ms < end)
    }

    /// Whether `key` is the project's API key at `now_ms`: the current one, or the one a
    /// rotation replaced while its grace period lasts.
    pub fn accepts_api_key(&self, key: &str, now_ms: i64) -> bool {
        self.api_key == key
            || (self.in_grace(now_ms) && self.previous_api_key.as_deref() == Some(key))
    }

    /// Whether `secret` is the project's secret key at `now_ms` (the current one, or the one a
    /// rotation replaced while its grace period lasts). Hashes are compared without stopping
    /// at the first difference.
    pub fn accepts_secret(&self, secret: &str, now_ms: i64) -> bool {
        let hash = crate::keys::hash_secret(secret);
        let same = |stored: &str| crate::keys::same_secret(stored, &hash);
        same(&self.secret_key_hash)
            | (self.in_grace(now_ms) && self.previous_secret_key_hash.as_deref().is_some_and(same))
    }
}

/// One possible result of one flag, prepared: what serving reads on every request. What only
/// tracking and metrics read (the variant key, segment name, experiment key and flag version)
/// comes from the compiled flags, through [`Snapshot::labels`].
#[derive(Debug, Clone)]
pub struct Outcome {
    pub segment: usize,
    pub variant: usize,
    /// `"flag-key":{...}`: this result as an entry of the `/sdk/v2/vardata` object.
    json: Box<str>,
    /// Merged metadata has `default: true`.
    pub default: bool,
    /// Merged metadata does not have `deployed: false`.
    pub deployed: bool,
    /// Merged metadata does not have `trackExposure: false`.
    pub track_exposure: bool,
    /// The variant's value as JSON, for OFREP.
    value: Option<Piece>,
    /// The end of an OFREP success item.
    ofrep_tail: OfrepTail,
}

/// A part of an OFREP item: where it is in the outcome's `json`, or written out.
#[derive(Debug, Clone)]
enum Piece {
    Span(Span),
    Text(Box<str>),
}

/// A byte range of an [`Outcome`]'s `json`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

/// `,"variant":"k","metadata":{...}}`, the end of an OFREP success item (`sdk-protocol.md` §B5).
#[derive(Debug, Clone)]
enum OfrepTail {
    /// Read from the outcome's `json`: the variant key's JSON, and the merged metadata's (none:
    /// `{}`), when OFREP's metadata is that same object (every member a boolean, string or
    /// number, and no payload to add).
    Spans {
        variant: Span,
        metadata: Option<Span>,
    },
    /// Written out: the metadata drops members or adds the payload.
    Text(Box<str>),
}

/// How tracking and metrics name one [`Outcome`], borrowed from the compiled flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeLabels<'a> {
    pub variant_key: &'a str,
    /// Merged metadata's `segmentName`.
    pub segment_name: Option<&'a str>,
    /// Merged metadata's `experimentKey`.
    pub experiment_key: Option<&'a str>,
    /// Merged metadata's `flagVersion`, when an integer.
    pub flag_version: Option<i64>,
}

/// How a segment decides, for OFREP reasons (`sdk-protocol.md` §B5).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentInfo {
    pub user_id_bucket: bool,
    pub has_conditions: bool,
}

/// What the snapshot knows about one flag, by its index in the flag set.
#[derive(Debug)]
pub struct FlagInfo {
    pub key: String,
    /// The flag's own evaluation mode is local.
    pub local: bool,
    /// Attached to this deployment (not merely an ancestor of one that is).
    pub attached: bool,
    /// Deployed, as OFREP sees it (`sdk-protocol.md` §B3, §B4): attached, and the config does
    /// not say `deployed: false` (in its metadata, or in the merged metadata of every result
    /// it can give). Group flags and imported configs marked not deployed are attached to no
    /// OFREP client even when the deployment carries them.
    pub deployed: bool,
    /// A mutual-exclusion or holdout group (`flagType` `mutual-exclusion-group` or
    /// `holdout-group`, `evaluation.md` §7), native or imported: never in a remote
    /// evaluation's answer.
    pub group: Option<GroupKind>,
    /// Compiled to the single `default` segment (`evaluation.md` §10.3).
    pub inactive: bool,
    pub outcomes: Vec<Outcome>,
    /// `outcomes` index by `segment * variants + variant` (`u32::MAX`: impossible).
    outcome_index: Vec<u32>,
    variants: usize,
    pub(crate) segments: Vec<SegmentInfo>,
    /// `{"key":"flag-key"`: the start of every OFREP item of this flag.
    pub(crate) ofrep_head: Box<str>,
    /// The evaluation plan of this flag alone (OFREP single-flag requests).
    pub(crate) plan: Result<Plan, CycleError>,
}

impl FlagInfo {
    /// The position in `outcomes` of the result segment `segment` gives with `variant`.
    pub fn outcome_position(&self, segment: usize, variant: usize) -> Option<usize> {
        if variant >= self.variants {
            return None;
        }
        let i = *self.outcome_index.get(segment * self.variants + variant)?;
        (i != u32::MAX).then_some(i as usize)
    }

    pub fn outcome(&self, segment: usize, variant: usize) -> Option<&Outcome> {
        self.outcomes.get(self.outcome_position(segment, variant)?)
    }
}

/// Everything one deployment serves, at one revision.
#[derive(Debug)]
pub struct Snapshot {
    pub project: Arc<ProjectData>,
    pub deployment: Deployment,
    /// Bumped whenever what this deployment serves changes (`sdk-protocol.md` §A3).
    pub revision: i64,
    /// Unix milliseconds of the last revision change.
    pub changed_at: i64,
    /// Digest of the served content the revision stands for.
    pub hash: String,
    pub(crate) flags: FlagSet,
    pub(crate) infos: Vec<FlagInfo>,
    bodies: FlagsBodies,
    pub(crate) plan_all: Result<Plan, CycleError>,
    plan_local: Result<Plan, CycleError>,
    /// Flags deployed as OFREP sees them ([`FlagInfo::deployed`]), in ascending key order.
    pub(crate) deployed_by_key: Vec<usize>,
    /// The longest `/sdk/v2/vardata` body this snapshot can produce: one allocation per answer.
    max_body: usize,
    /// The cohorts the configs reference, which enrichment looks users up in.
    cohorts: Cohorts,
}

/// The inputs of [`Snapshot::build`].
pub struct SnapshotInput {
    pub project: Arc<ProjectData>,
    pub deployment: Deployment,
    pub revision: i64,
    pub changed_at: i64,
    pub hash: String,
    /// What the deployment serves, in served order (`crate::compile::deployment_flags`).
    pub configs: Vec<FlagConfig>,
    /// The evaluation mode of each flag of the project.
    pub modes: BTreeMap<String, EvaluationMode>,
    /// Keys of the flags attached to the deployment; the other configs are ancestors.
    pub attached: BTreeSet<String>,
}

/// What [`Snapshot::evaluate_remote`] evaluates.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteOptions<'a> {
    /// Only these flags and their ancestors; all flags when empty.
    pub flag_keys: &'a [String],
    /// Only local-mode flags (and their ancestors): `eval_mode=local`.
    pub local_only: bool,
    /// Leave out default and `deployed: false` results (the v1 endpoints).
    pub v1: bool,
    /// Keep what tracking needs (ids, groups and the results).
    pub track: bool,
    /// Count each served result here (the `/metrics` evaluation counters).
    pub counts: Option<&'a ServedCounts>,
}

/// The answer of a remote evaluation.
#[derive(Debug, Default)]
pub struct RemoteAnswer {
    /// The JSON object flag key -> variant.
    pub body: Vec<u8>,
    /// With `track`: who was evaluated and what each evaluated flag gave.
    pub tracked: Option<Tracked>,
}

/// The evaluated user and results, for assignment and exposure records.
#[derive(Debug, Default, Clone)]
pub struct Tracked {
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// The user's `groups` as JSON text.
    pub groups: Option<String>,
    /// (flag index, outcome index) of every evaluated flag, in evaluation order.
    pub hits: Vec<(u32, u32)>,
}

const ALL_OTHER_USERS: &str = "All Other Users";

impl Snapshot {
    /// Compiles and prepares a deployment's configs.
    pub fn build(input: SnapshotInput) -> Result<Snapshot, CompileError> {
        let SnapshotInput {
            project,
            deployment,
            revision,
            changed_at,
            hash,
            configs,
            modes,
            attached,
        } = input;
        let local = |key: &str| modes.get(key) == Some(&EvaluationMode::Local);
        let attached: Vec<bool> = configs.iter().map(|c| attached.contains(&c.key)).collect();
        // Local-mode flags attached here, plus whatever they depend on, in served order.
        let local_roots: Vec<String> = configs
            .iter()
            .zip(&attached)
            .filter(|(c, &d)| d && local(&c.key))
            .map(|(c, _)| c.key.clone())
            .collect();
        let root_refs: Vec<&str> = local_roots.iter().map(String::as_str).collect();
        let local_keys = closure(&configs, &root_refs);
        let bodies = FlagsBodies::build(&configs, |i| local_keys.contains(configs[i].key.as_str()));
        let cohorts = Cohorts::new(
            referenced_cohort_ids(&configs)
                .into_iter()
                .filter_map(|id| project.cohorts.get(id).cloned()),
        );

        let mut flags = FlagSet::compile(configs)?;
        let infos: Vec<FlagInfo> = (0..flags.len())
            .map(|i| flag_info(&flags, i, attached[i], local, &project))
            .collect();
        // Serving evaluates the compiled rules and answers from the prepared outcomes; the
        // rules' sources are in the served JSON already.
        flags.shed_rules();
        let plan_all = flags.plan(&[] as &[&str]);
        let local_indexes: Vec<usize> = local_roots
            .iter()
            .filter_map(|k| flags.index_of(k))
            .collect();
        let plan_local = flags.plan_indexes(&local_indexes);
        let max_body = 2 + infos
            .iter()
            .map(|i| 1 + i.outcomes.iter().map(|o| o.json.len()).max().unwrap_or(0))
            .sum::<usize>();
        let mut deployed_by_key: Vec<usize> =
            (0..infos.len()).filter(|&i| infos[i].deployed).collect();
        deployed_by_key.sort_by(|&a, &b| infos[a].key.cmp(&infos[b].key));
        Ok(Snapshot {
            project,
            deployment,
            revision,
            changed_at,
            hash,
            flags,
            infos,
            bodies,
            plan_all,
            plan_local,
            max_body,
            deployed_by_key,
            cohorts,
        })
    }

    /// The `/sdk/v2/flags` body: local-mode flags and their ancestors, or (`remote`) every
    /// flag. Client keys never see remote-mode configs (`sdk-protocol.md` §A3).
    pub fn flags_json(&self, remote: bool) -> &FlagsBody {
        if remote && self.deployment.kind == crate::model::DeploymentType::Server {
            &self.bodies.all
        } else {
            &self.bodies.local
        }
    }

    /// Every config the deployment serves, as JSON in served order, whatever its kind (what
    /// [`super::persist`] keeps to build the snapshot again).
    pub(crate) fn configs_json(&self) -> &str {
        &self.bodies.all_text
    }

    /// The compiled flags.
    pub fn flag_set(&self) -> &FlagSet {
        &self.flags
    }

    /// The variant key of outcome `outcome` of flag `flag` (an index in
    /// [`Snapshot::flag_infos`]), from the compiled flags: what the counters and the
    /// assignment de-duplication name it by.
    pub fn variant_key(&self, flag: usize, outcome: &Outcome) -> Option<&str> {
        Some(
            self.flags
                .result_at(flag, outcome.segment, outcome.variant)?
                .key(),
        )
    }

    /// How tracking records name outcome `outcome` of flag `flag`: its variant key, segment
    /// name, experiment key and flag version.
    pub fn labels(&self, flag: usize, outcome: &Outcome) -> Option<OutcomeLabels<'_>> {
        let r = self
            .flags
            .result_at(flag, outcome.segment, outcome.variant)?;
        let text = |k: &str| r.metadata_value(k).and_then(Value::as_str);
        Some(OutcomeLabels {
            variant_key: r.key(),
            segment_name: text("segmentName"),
            experiment_key: text("experimentKey"),
            flag_version: match r.metadata_value("flagVersion") {
                Some(Value::Int(v)) => Some(*v),
                _ => None,
            },
        })
    }

    /// What the snapshot knows of each flag, by index in [`Snapshot::flag_set`].
    pub fn flag_infos(&self) -> &[FlagInfo] {
        &self.infos
    }

    /// Adds what the server knows of the user (`sdk-protocol.md` §A7), from this snapshot's
    /// referenced cohorts and the project's stored properties ([`super::enrich::enrich`]).
    pub fn enrich(&self, user: &mut Object) {
        enrich(user, &self.cohorts, &*self.project.properties);
    }

    /// Remote evaluation (`/sdk/v2/vardata` and the v1 endpoints): enriches `user`, evaluates,
    /// and writes the result object from the prepared JSON of each result.
    pub fn evaluate_remote(
        &self,
        mut user: Object,
        options: RemoteOptions<'_>,
    ) -> Result<RemoteAnswer, CycleError> {
        self.enrich(&mut user);
        let tracked = options.track.then(|| Tracked {
            user_id: non_empty_str(&user, "user_id"),
            device_id: non_empty_str(&user, "device_id"),
            groups: user
                .get("groups")
                .filter(|g| !g.is_null())
                .and_then(|g| serde_json::to_string(g).ok()),
            hits: Vec::new(),
        });
        let context = Context::from_sdk_user(Value::Object(user));
        let selected;
        let plan = match (options.flag_keys.is_empty(), options.local_only) {
            (true, false) => self.plan_all.as_ref().map_err(Clone::clone)?,
            (true, true) => self.plan_local.as_ref().map_err(Clone::clone)?,
            (false, local_only) => {
                let keys: Vec<usize> = options
                    .flag_keys
                    .iter()
                    .filter_map(|k| self.flags.index_of(k))
                    .filter(|&i| !local_only || (self.infos[i].local && self.infos[i].attached))
                    .collect();
                selected = self.flags.plan_indexes(&keys)?;
                &selected
            }
        };
        let results = evaluate_plan(&self.flags, &context, plan);
        let mut body = Vec::with_capacity(self.max_body);
        body.push(b'{');
        let mut tracked = tracked;
        for r in results.iter() {
            let info = &self.infos[r.flag_index()];
            let segment = r.detail().segment_index;
            let found = info.outcome_position(segment, r.variant_index());
            if let (Some(t), Some(o)) = (tracked.as_mut(), found) {
                t.hits.push((r.flag_index() as u32, o as u32));
            }
            // Group flags are evaluated for their members and tracked (holdouts set their
            // `[Experiment]` property), but never returned, as Amplitude does.
            if info.group.is_some() {
                continue;
            }
            if let (Some(counts), Some(o)) = (options.counts, found) {
                counts.add(r.flag_index(), o);
            }
            if options.v1 {
                let (default, deployed) = match found {
                    Some(o) => (info.outcomes[o].default, info.outcomes[o].deployed),
                    None => (r.is_default(), !is_false(r.metadata_value("deployed"))),
                };
                if default || !deployed {
                    continue;
                }
            }
            if body.len() > 1 {
                body.push(b',');
            }
            match found {
                Some(o) => body.extend_from_slice(info.outcomes[o].json.as_bytes()),
                // Every result is prepared; should one not be, serialize it directly.
                None => body.extend_from_slice(result_entry(&r).as_bytes()),
            }
        }
        body.push(b'}');
        Ok(RemoteAnswer { body, tracked })
    }
}

fn is_false(v: Option<&Value>) -> bool {
    v == Some(&Value::Bool(false))
}

/// `roots` and every flag they depend on, transitively, among `configs`.
fn closure<'a>(configs: &'a [FlagConfig], roots: &[&'a str]) -> BTreeSet<&'a str> {
    let by_key: BTreeMap<&str, &FlagConfig> = configs.iter().map(|c| (c.key.as_str(), c)).collect();
    let mut out: BTreeSet<&str> = BTreeSet::new();
    let mut pending: Vec<&str> = roots.to_vec();
    while let Some(key) = pending.pop() {
        let Some((&key, config)) = by_key.get_key_value(key) else {
            continue;
        };
        if out.insert(key) {
            pending.extend(config.dependencies.iter().flatten().map(String::as_str));
        }
    }
    out
}

/// Which kind of group a config is, by its `flagType` (`evaluation.md` §7); `None` for flags.
pub fn group_kind(config: &FlagConfig) -> Option<GroupKind> {
    let flag_type = config.metadata.as_ref()?.get("flagType")?.as_str()?;
    match flag_type {
        "mutual-exclusion-group" => Some(GroupKind::MutualExclusion),
        "holdout-group" => Some(GroupKind::Holdout),
        _ => None,
    }
}

fn flag_info(
    flags: &FlagSet,
    index: usize,
    attached: bool,
    local: impl Fn(&str) -> bool,
    project: &ProjectData,
) -> FlagInfo {
    let config = flags
        .configs()
        .nth(index)
        .unwrap_or_else(|| unreachable_config());
    let key = config.key.clone();
    let group = match group_kind(config) {
        None if project.mutex_flags.contains(&key) => Some(GroupKind::MutualExclusion),
        kind => kind,
    };
    let inactive = config.segments.len() == 1
        && segment_name(config.segments[0].metadata.as_ref()) == Some("default")
        && config.segments[0].conditions.is_none()
        && config.segments[0].bucket.is_none();
    let segments = config
        .segments
        .iter()
        .map(|s| SegmentInfo {
            user_id_bucket: s
                .bucket
                .as_ref()
                .is_some_and(|b| b.selector == ["context", "user", "user_id"]),
            has_conditions: s.conditions.is_some()
                && segment_name(s.metadata.as_ref()) != Some(ALL_OTHER_USERS),
        })
        .collect();
    let key_json = serde_json::to_string(&key).unwrap_or_default();
    let outcomes: Vec<Outcome> = flags
        .possible_results(index)
        .into_iter()
        .filter_map(|(segment, variant)| {
            let r = flags.result_at(index, segment, variant)?;
            Some(outcome(&r, segment, variant))
        })
        .collect();
    let says_not_deployed = is_false(config.metadata.as_ref().and_then(|m| m.get("deployed")))
        || (!outcomes.is_empty() && outcomes.iter().all(|o| !o.deployed));
    let variants = config.variants.len();
    let mut outcome_index = vec![u32::MAX; config.segments.len() * variants];
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(slot) = outcome_index.get_mut(o.segment * variants + o.variant) {
            *slot = i as u32;
        }
    }
    FlagInfo {
        ofrep_head: format!("{{\"key\":{key_json}").into(),
        plan: flags.plan(&[key.as_str()]),
        local: local(&key),
        key,
        attached,
        deployed: attached && !says_not_deployed,
        group,
        inactive,
        outcomes,
        outcome_index,
        variants,
        segments,
    }
}

/// `configs().nth(i)` for `i < len()` always exists; this keeps the code free of panics.
fn unreachable_config() -> &'static FlagConfig {
    static EMPTY: std::sync::OnceLock<FlagConfig> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| FlagConfig {
        key: String::new(),
        variants: vexil_eval::OrderedMap(Vec::new()),
        segments: Vec::new(),
        dependencies: None,
        metadata: None,
    })
}

fn segment_name(metadata: Option<&Object>) -> Option<&str> {
    metadata?.get("segmentName")?.as_str()
}

fn outcome(r: &VariantResult<'_>, segment: usize, variant: usize) -> Outcome {
    let json = result_entry(r);
    // Where OFREP's parts are in the entry, trusted only when the entry written part by part is
    // the one served (always; otherwise the parts are written out).
    let spans = entry_spans(r)
        .filter(|(text, _)| *text == json)
        .map(|(_, spans)| spans);
    let value = match (&spans, r.value()) {
        (_, None) => None,
        (Some(s), Some(_)) => s.value.map(Piece::Span),
        (None, Some(v)) => Some(Piece::Text(to_json(v).into())),
    };
    let same_metadata = r.payload().is_none()
        && r.metadata()
            .iter()
            .flat_map(Object::iter)
            .all(|(_, v)| is_scalar(v));
    let ofrep_tail = match spans.filter(|_| same_metadata) {
        Some(s) => OfrepTail::Spans {
            variant: s.variant,
            metadata: s.metadata,
        },
        None => OfrepTail::Text(
            format!(
                ",\"variant\":{},\"metadata\":{}}}",
                to_json(r.key()),
                ofrep_metadata(r)
            )
            .into(),
        ),
    };
    Outcome {
        segment,
        variant,
        json: json.into(),
        default: r.is_default(),
        deployed: !is_false(r.metadata_value("deployed")),
        track_exposure: !is_false(r.metadata_value("trackExposure")),
        value,
        ofrep_tail,
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(
        v,
        Value::Bool(_) | Value::String(_) | Value::Int(_) | Value::UInt(_) | Value::Double(_)
    )
}

fn span(start: usize, end: usize) -> Option<Span> {
    Some(Span {
        start: u32::try_from(start).ok()?,
        end: u32::try_from(end).ok()?,
    })
}

/// Where the parts OFREP reuses are in a result's vardata entry.
struct EntrySpans {
    variant: Span,
    value: Option<Span>,
    metadata: Option<Span>,
}

/// The vardata entry of `r` written part by part (`"flag-key":{"key":…,"value":…,
/// "payload":…,"metadata":…}`, as [`result_entry`] writes it), with where the parts are. The
/// caller checks the text equals `result_entry`'s before trusting the spans.
fn entry_spans(r: &VariantResult<'_>) -> Option<(String, EntrySpans)> {
    let mut out = to_json(r.flag_key());
    out.push_str(":{\"key\":");
    let start = out.len();
    out.push_str(&to_json(r.key()));
    let variant = span(start, out.len())?;
    let value = match r.value() {
        Some(v) => {
            out.push_str(",\"value\":");
            let start = out.len();
            out.push_str(&to_json(v));
            Some(span(start, out.len())?)
        }
        None => None,
    };
    if let Some(p) = r.payload() {
        out.push_str(",\"payload\":");
        out.push_str(&to_json(p));
    }
    let metadata = match r.metadata() {
        Some(m) => {
            out.push_str(",\"metadata\":");
            let start = out.len();
            out.push_str(&to_json(&m));
            Some(span(start, out.len())?)
        }
        None => None,
    };
    out.push('}');
    Some((
        out,
        EntrySpans {
            variant,
            value,
            metadata,
        },
    ))
}

/// JSON text of a part of an entry.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Keys, values and metadata are plain data; serializing them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The merged metadata restricted to booleans, strings and numbers, plus `payload` as compact
/// JSON text (`sdk-protocol.md` §B5).
fn ofrep_metadata(r: &VariantResult<'_>) -> String {
    let mut out = Object::new();
    for (k, v) in r.metadata().iter().flat_map(Object::iter) {
        if is_scalar(v) {
            out.insert(k, v.clone());
        }
    }
    if let Some(payload) = r.payload() {
        out.insert("payload", Value::from(to_json(payload)));
    }
    serde_json::to_string(&out).unwrap_or_else(|_| "{}".to_owned())
}

fn non_empty_str(user: &Object, field: &str) -> Option<String> {
    user.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Outcome {
    /// This result as an entry of the vardata object.
    pub fn entry_json(&self) -> &str {
        &self.json
    }

    fn text(&self, span: Span) -> &str {
        self.json
            .get(span.start as usize..span.end as usize)
            .unwrap_or_default()
    }

    /// The variant's value as JSON, for OFREP; `None` when the variant has none.
    pub(crate) fn ofrep_value(&self) -> Option<&str> {
        match self.value.as_ref()? {
            Piece::Span(s) => Some(self.text(*s)),
            Piece::Text(text) => Some(text),
        }
    }

    /// Appends `,"variant":"k","metadata":{...}}`, the end of an OFREP success item.
    pub(crate) fn write_ofrep_tail(&self, out: &mut String) {
        match &self.ofrep_tail {
            OfrepTail::Spans { variant, metadata } => {
                out.push_str(",\"variant\":");
                out.push_str(self.text(*variant));
                out.push_str(",\"metadata\":");
                out.push_str(metadata.map_or("{}", |m| self.text(m)));
                out.push('}');
            }
            OfrepTail::Text(text) => out.push_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sdk::persist::tests::{project, snapshot_of};

    /// Every outcome's OFREP parts read from its vardata entry are what writing them out gives:
    /// the value, and the variant and metadata (scalars only, payload as text), whether the
    /// metadata is the entry's own object or differs from it.
    #[test]
    fn ofrep_parts_read_from_the_entry_equal_the_written_ones() {
        let configs: Vec<FlagConfig> = serde_json::from_value(json!([
            {"key": "plain", "metadata": {"flagVersion": 3, "flagType": "release", "deployed": true},
             "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
             "segments": [{"metadata": {"segmentName": "Beta \"q\""}, "variant": "on"}, {"variant": "off"}]},
            {"key": "payload \"ü\"", "variants": {"a": {"key": "a", "value": {"n": [1, 2.5]}, "payload": {"x": "y"}}},
             "segments": [{"variant": "a"}]},
            {"key": "nested", "metadata": {"tags": ["a"], "owner": {"team": "t"}, "n": 1},
             "variants": {"v": {"key": "v", "value": true}}, "segments": [{"variant": "v"}]},
            {"key": "bare", "variants": {"k": {}}, "segments": [{"variant": "k"}]}
        ]))
        .unwrap();
        let snapshot = snapshot_of(&project(&[]), 1, configs);
        let mut spans = 0;
        for (flag, info) in snapshot.flag_infos().iter().enumerate() {
            for o in &info.outcomes {
                let r = snapshot
                    .flags
                    .result_at(flag, o.segment, o.variant)
                    .unwrap();
                assert_eq!(o.entry_json(), result_entry(&r), "{}", info.key);
                assert_eq!(
                    o.ofrep_value(),
                    r.value().map(to_json).as_deref(),
                    "{}",
                    info.key
                );
                let mut tail = String::new();
                o.write_ofrep_tail(&mut tail);
                let written = format!(
                    ",\"variant\":{},\"metadata\":{}}}",
                    to_json(r.key()),
                    ofrep_metadata(&r)
                );
                assert_eq!(tail, written, "{}", info.key);
                spans += usize::from(matches!(o.ofrep_tail, OfrepTail::Spans { .. }));
            }
        }
        // "plain" (two outcomes) and "bare" read theirs from the entry.
        assert_eq!(spans, 3);
    }
}
