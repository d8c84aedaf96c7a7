//! The evaluation driver (spec §3): dependency order, first-match segments, bucketing. One code
//! path serves both plain evaluation and explained evaluation; the [`Tracer`] type parameter
//! compiles the explanation away when it is not wanted.

use std::borrow::Cow;
use std::cell::Cell;

use crate::coerce::coerce_string;
use crate::compile::{
    Bucket, CompiledCondition, CycleError, FlagSet, Plan, Segment, Selector, VariantRef,
};
use crate::context::Context;
use crate::explain::{
    BucketExplanation, ConditionsExplanation, FailedCondition, FlagExplanation, SegmentExplanation,
    SegmentOutcome,
};
use crate::model::SegmentConfig;
use crate::murmur::murmur3_parts;
use crate::results::{Entry, Results};
use crate::value::{Object, Value};

/// Evaluates `flag_keys` (all flags when empty) and their ancestors for `context`.
///
/// Fails only when the flags to evaluate reach a dependency cycle; a flag whose segments give
/// no variant is simply absent from the results.
pub fn evaluate<'a, K: AsRef<str>>(
    flags: &'a FlagSet,
    context: &Context,
    flag_keys: &[K],
) -> Result<Results<'a>, CycleError> {
    run(flags, context, flag_keys, &mut NoTrace)
}

/// Evaluates the flags of `plan` (made by [`FlagSet::plan`] on this same set) in its order.
/// Cannot fail: the plan was computed, cycles included, when it was made.
pub fn evaluate_plan<'a>(flags: &'a FlagSet, context: &Context, plan: &Plan) -> Results<'a> {
    run_order(flags, context, &plan.order, &mut NoTrace)
}

/// Like [`evaluate`], with an explanation per evaluated flag, in evaluation order.
pub fn explain<'a, K: AsRef<str>>(
    flags: &'a FlagSet,
    context: &Context,
    flag_keys: &[K],
) -> Result<(Results<'a>, Vec<FlagExplanation>), CycleError> {
    let mut trace = Trace::default();
    let results = run(flags, context, flag_keys, &mut trace)?;
    Ok((results, trace.flags))
}

fn run<'a, K: AsRef<str>, T: Tracer>(
    flags: &'a FlagSet,
    context: &Context,
    flag_keys: &[K],
    tracer: &mut T,
) -> Result<Results<'a>, CycleError> {
    let computed;
    let order: &[usize] = if flag_keys.is_empty() {
        flags.full_order.as_ref().map_err(Clone::clone)?
    } else {
        computed = flags.order(flag_keys)?;
        &computed
    };
    Ok(run_order(flags, context, order, tracer))
}

fn run_order<'a, T: Tracer>(
    flags: &'a FlagSet,
    context: &Context,
    order: &[usize],
    tracer: &mut T,
) -> Results<'a> {
    let mut state = State {
        flags,
        context: context.as_value(),
        paths: vec![Cell::new(Path::Unread); flags.context_slots],
        results: Results::with_capacity(flags, order.len()),
    };
    // A plan made on another set could name indexes this one lacks; they are skipped.
    for &flag in order.iter().filter(|&&f| f < flags.flags.len()) {
        if let Some(entry) = state.evaluate_flag(flag, tracer) {
            state.results.push(entry);
        }
    }
    state.results
}

struct State<'a, 'c> {
    flags: &'a FlagSet,
    context: &'c Value,
    /// What each `context` path of the set (by slot) found, once read: the same paths recur
    /// across the conditions of many flags.
    paths: Vec<Cell<Path<'c>>>,
    results: Results<'a>,
}

/// What a `context` path found in this evaluation's context.
#[derive(Debug, Clone, Copy)]
enum Path<'c> {
    Unread,
    Null,
    Found(&'c Value),
}

/// What a selector picked out of the target.
enum Prop<'s> {
    Null,
    Ref(&'s Value),
    Str(&'s str),
    Owned(Value),
}

impl Prop<'_> {
    fn to_value(&self) -> Option<Value> {
        match self {
            Prop::Null => None,
            Prop::Ref(v) => Some((*v).clone()),
            Prop::Str(s) => Some(Value::from(*s)),
            Prop::Owned(v) => Some(v.clone()),
        }
    }

    fn coerce(&self) -> Option<Cow<'_, str>> {
        match self {
            Prop::Null => None,
            Prop::Ref(v) => coerce_string(v),
            Prop::Str(s) => Some(Cow::Borrowed(s)),
            Prop::Owned(v) => coerce_string(v),
        }
    }
}

/// How a bucket treated the user.
struct Bucketed {
    /// `None` when the bucketing value was missing or empty.
    hash: Option<u32>,
    /// The allocation and distribution that held the user.
    hit: Option<(usize, usize)>,
}

impl<'a> State<'a, '_> {
    fn evaluate_flag<T: Tracer>(&self, flag_index: usize, tracer: &mut T) -> Option<Entry> {
        let flag = &self.flags.flags[flag_index];
        let mut segments = Vec::new();
        let mut chosen = None;
        for (segment_index, segment) in flag.segments.iter().enumerate() {
            if !self.conditions_match(segment) {
                if T::ENABLED {
                    let config = &flag.config.segments[segment_index];
                    segments.push(self.explain_segment(
                        segment_index,
                        segment,
                        config,
                        None,
                        SegmentOutcome::NotMatched,
                    ));
                }
                continue;
            }
            let (variant, bucketed) = match &segment.bucket {
                None => (segment.variant.as_ref(), None),
                Some(bucket) => {
                    let b = self.bucket(bucket);
                    let variant = match b.hit {
                        Some((a, d)) => Some(&bucket.allocations[a].distributions[d].variant),
                        None => segment.variant.as_ref(),
                    };
                    (variant, Some(b))
                }
            };
            let from_distribution = bucketed.as_ref().is_some_and(|b| b.hit.is_some());
            let missing_bucket_value = bucketed.as_ref().is_some_and(|b| b.hash.is_none());
            let index = variant.and_then(|v| v.index);
            if T::ENABLED {
                let outcome = segment_outcome(variant, index, from_distribution, bucketed.as_ref());
                let config = &flag.config.segments[segment_index];
                segments.push(self.explain_segment(
                    segment_index,
                    segment,
                    config,
                    bucketed.as_ref(),
                    outcome,
                ));
            }
            if let Some(variant) = index {
                chosen = Some(Entry {
                    flag: flag_index,
                    segment: segment_index,
                    variant,
                    bucketed: from_distribution,
                    missing_bucket_value,
                });
                break;
            }
        }
        if T::ENABLED {
            tracer.flag(FlagExplanation {
                flag_key: flag.config.key.clone(),
                variant: chosen.map(|e| flag.variant_keys[e.variant].to_string()),
                segment_index: chosen.map(|e| e.segment),
                segments,
            });
        }
        chosen
    }

    fn conditions_match(&self, segment: &Segment) -> bool {
        match &segment.conditions {
            None => true,
            Some(groups) => groups
                .iter()
                .any(|group| group.iter().all(|c| self.condition_matches(c))),
        }
    }

    #[inline]
    fn condition_matches(&self, c: &CompiledCondition) -> bool {
        match self.select(&c.selector) {
            Prop::Null => c.condition.matches(None),
            Prop::Ref(v) => c.condition.matches(Some(v)),
            Prop::Str(s) => c.condition.matches_str(s),
            Prop::Owned(v) => c.condition.matches(Some(&v)),
        }
    }

    /// `select(target, selector)` of spec §2.2.
    fn select(&self, selector: &Selector) -> Prop<'_> {
        match selector {
            Selector::Null => Prop::Null,
            Selector::Context { path, slot } => {
                let Some(cell) = self.paths.get(*slot as usize) else {
                    return walk(self.context, path);
                };
                match cell.get() {
                    Path::Found(v) => Prop::Ref(v),
                    Path::Null => Prop::Null,
                    Path::Unread => {
                        let found = walk(self.context, path);
                        cell.set(match found {
                            Prop::Ref(v) => Path::Found(v),
                            _ => Path::Null,
                        });
                        found
                    }
                }
            }
            Selector::AllResults => Prop::Owned(self.results.to_target_value()),
            Selector::Result { flag, path } => {
                let Some(result) = flag.and_then(|f| self.results.get_index(f)) else {
                    return Prop::Null;
                };
                match path.first().map(|s| &**s) {
                    None => Prop::Owned(result.target_value()),
                    Some("key") if path.len() == 1 => Prop::Str(result.key()),
                    Some("value") => match result.value() {
                        Some(v) => walk(v, &path[1..]),
                        None => Prop::Null,
                    },
                    Some("metadata") => match result.metadata() {
                        Some(metadata) => match walk(&Value::Object(metadata), &path[1..]) {
                            Prop::Ref(v) => Prop::Owned(v.clone()),
                            _ => Prop::Null,
                        },
                        None => Prop::Null,
                    },
                    Some(_) => Prop::Null,
                }
            }
        }
    }

    /// Spec §3.4, steps 2 to 5.
    fn bucket(&self, bucket: &Bucket) -> Bucketed {
        let prop = self.select(&bucket.selector);
        let Some(value) = prop.coerce().filter(|s| !s.is_empty()) else {
            return Bucketed {
                hash: None,
                hit: None,
            };
        };
        let hash = murmur3_parts(&[&bucket.prefix, value.as_bytes()], 0);
        let allocation_value = i64::from(hash % 100);
        let distribution_value = i64::from(hash / 100);
        for (a, allocation) in bucket.allocations.iter().enumerate() {
            if allocation.start <= allocation_value && allocation_value < allocation.end {
                for (d, distribution) in allocation.distributions.iter().enumerate() {
                    if distribution.start <= distribution_value
                        && distribution_value < distribution.end
                    {
                        return Bucketed {
                            hash: Some(hash),
                            hit: Some((a, d)),
                        };
                    }
                }
            }
        }
        Bucketed {
            hash: Some(hash),
            hit: None,
        }
    }

    fn explain_segment(
        &self,
        index: usize,
        segment: &Segment,
        config: &SegmentConfig,
        bucketed: Option<&Bucketed>,
        outcome: SegmentOutcome,
    ) -> SegmentExplanation {
        let bucket = match (bucketed, &segment.bucket, &config.bucket) {
            (Some(b), Some(compiled), Some(config)) => {
                let value = self
                    .select(&compiled.selector)
                    .coerce()
                    .map(Cow::into_owned);
                Some(BucketExplanation::new(config, value, b.hash, b.hit))
            }
            _ => None,
        };
        SegmentExplanation {
            index,
            name: segment.name.as_deref().map(str::to_owned),
            conditions: self.explain_conditions(segment, config),
            bucket,
            outcome,
        }
    }

    fn explain_conditions(
        &self,
        segment: &Segment,
        config: &SegmentConfig,
    ) -> ConditionsExplanation {
        let (Some(groups), Some(config_groups)) = (&segment.conditions, &config.conditions) else {
            return ConditionsExplanation::Absent;
        };
        if groups.is_empty() {
            return ConditionsExplanation::NotMatched { failed: Vec::new() };
        }
        let mut failed = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            match group.iter().position(|c| !self.condition_matches(c)) {
                None => return ConditionsExplanation::Matched { group: g },
                Some(c) => {
                    let config = &config_groups[g][c];
                    failed.push(FailedCondition {
                        group: g,
                        condition: c,
                        selector: config.selector.clone(),
                        op: config.op.clone(),
                        values: config.values.clone(),
                        actual: self.select(&group[c].selector).to_value(),
                    });
                }
            }
        }
        ConditionsExplanation::NotMatched { failed }
    }
}

fn segment_outcome(
    variant: Option<&VariantRef>,
    index: Option<usize>,
    from_distribution: bool,
    bucketed: Option<&Bucketed>,
) -> SegmentOutcome {
    let reason = match bucketed {
        None => "segment has no bucket",
        Some(b) if b.hash.is_none() => "no bucketing value",
        Some(b) if b.hit.is_none() => "not allocated",
        Some(_) => "bucketed",
    };
    match (variant, index) {
        (Some(v), Some(_)) => SegmentOutcome::Served {
            variant: v.key.to_string(),
            bucketed: from_distribution,
            reason: reason.into(),
        },
        (Some(v), None) => SegmentOutcome::FellThrough {
            reason: format!("{reason}; variant {:?} does not exist", v.key),
        },
        (None, _) => SegmentOutcome::FellThrough {
            reason: format!("{reason}; segment has no variant"),
        },
    }
}

/// Walks `path` from `root`: every step but the last needs an object (spec §2.2).
#[inline]
fn walk<'v>(root: &'v Value, path: &[Box<str>]) -> Prop<'v> {
    let mut current = root;
    for key in path {
        match current.get(key) {
            Some(next) => current = next,
            None => return Prop::Null,
        }
    }
    if current.is_null() {
        Prop::Null
    } else {
        Prop::Ref(current)
    }
}

/// Receives the explanation of each flag as it is evaluated.
trait Tracer {
    /// False for plain evaluation: explanation code is then compiled out.
    const ENABLED: bool;
    fn flag(&mut self, explanation: FlagExplanation);
}

struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;
    fn flag(&mut self, _: FlagExplanation) {}
}

#[derive(Default)]
struct Trace {
    flags: Vec<FlagExplanation>,
}

impl Tracer for Trace {
    const ENABLED: bool = true;
    fn flag(&mut self, explanation: FlagExplanation) {
        self.flags.push(explanation);
    }
}

/// Merged metadata helper shared with results: `flag`, then `segment`, then `variant`.
pub(crate) fn merge_metadata(layers: [Option<&Object>; 3]) -> Option<Object> {
    let mut merged = Object::new();
    for layer in layers.into_iter().flatten() {
        for (k, v) in layer.iter() {
            merged.insert(k, v.clone());
        }
    }
    (!merged.is_empty()).then_some(merged)
}
