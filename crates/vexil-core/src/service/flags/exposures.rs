//! Exposures and assignments of one flag over time, per variant: what the flag page charts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vexil_store::ExposureQuery;

use super::{load, resolve, FlagService};
use crate::error::{Error, Result};
use crate::model::OFF;
use crate::service::now_ms;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Which records to count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExposureKind {
    /// Exposures: tracked by SDKs (client and server) and by remote evaluation on request.
    #[default]
    Exposure,
    /// Assignments: what remote evaluation and assignment events recorded.
    Assignment,
    /// Both.
    All,
}

impl ExposureKind {
    fn kinds(self) -> Vec<String> {
        let names: &[&str] = match self {
            ExposureKind::Exposure => &["client_exposure", "server_exposure", "remote_exposure"],
            ExposureKind::Assignment => &["assignment", "remote_assignment"],
            ExposureKind::All => &[],
        };
        names.iter().map(|k| (*k).to_owned()).collect()
    }
}

/// The width of a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Hour,
    #[default]
    Day,
}

/// What to count.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExposureParams {
    /// The project key; needed only when several projects have a flag with this key.
    pub project: Option<String>,
    /// How many days back from now, 1 to 90 (default 7).
    #[param(minimum = 1, maximum = 90)]
    pub days: Option<u32>,
    /// Bucket width (default `day`).
    pub interval: Option<Interval>,
    /// Which records (default `exposure`).
    pub kind: Option<ExposureKind>,
}

/// One variant's count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct VariantCount {
    pub count: i64,
    /// Distinct users (by user id, else device id).
    pub users: i64,
}

/// One time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExposureBucket {
    /// Start of the bucket (Unix milliseconds, UTC).
    pub start: i64,
    /// By variant key; `off` counts records without a real variant.
    pub variants: BTreeMap<String, VariantCount>,
}

/// A flag's exposures over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExposureStats {
    pub project: String,
    pub flag: String,
    pub kind: ExposureKind,
    pub interval: Interval,
    /// `[from, to)` in Unix milliseconds.
    pub from: i64,
    pub to: i64,
    /// Every bucket of the range, empty ones included, oldest first.
    pub buckets: Vec<ExposureBucket>,
    /// Over the whole range, by variant.
    pub totals: BTreeMap<String, VariantCount>,
}

impl FlagService {
    /// Counts the flag's exposures (or assignments) per variant and time bucket.
    pub fn exposures(&self, key: &str, params: &ExposureParams) -> Result<ExposureStats> {
        let days = params.days.unwrap_or(7);
        if !(1..=90).contains(&days) {
            return Err(Error::invalid(
                "days",
                "out_of_range",
                "days is between 1 and 90",
            ));
        }
        let interval = params.interval.unwrap_or_default();
        let kind = params.kind.unwrap_or_default();
        let width = match interval {
            Interval::Hour => HOUR_MS,
            Interval::Day => DAY_MS,
        };
        let now = now_ms();
        let to = now - now % width + width;
        let from = to - i64::from(days) * DAY_MS;
        self.core.read(|tx| {
            let project = resolve(tx, params.project.as_deref(), key)?;
            load(tx, &project, key)?;
            let mut query = ExposureQuery {
                project: project.clone(),
                flag_key: key.to_owned(),
                kinds: kind.kinds(),
                from,
                to,
                bucket: width,
            };
            let rows = tx.exposure_counts(&query)?;
            query.bucket = to - from;
            let total_rows = tx.exposure_counts(&query)?;
            let label = |v: &Option<String>| v.clone().unwrap_or_else(|| OFF.to_owned());
            let mut buckets: Vec<ExposureBucket> = (0..(to - from) / width)
                .map(|i| ExposureBucket {
                    start: from + i * width,
                    variants: BTreeMap::new(),
                })
                .collect();
            for row in rows {
                let index = usize::try_from((row.bucket - from) / width).unwrap_or(usize::MAX);
                if let Some(bucket) = buckets.get_mut(index) {
                    let slot = bucket.variants.entry(label(&row.variant)).or_default();
                    slot.count += row.count;
                    slot.users += row.users;
                }
            }
            let mut totals: BTreeMap<String, VariantCount> = BTreeMap::new();
            for row in total_rows {
                let slot = totals.entry(label(&row.variant)).or_default();
                slot.count += row.count;
                slot.users += row.users;
            }
            Ok(ExposureStats {
                project,
                flag: key.to_owned(),
                kind,
                interval,
                from,
                to,
                buckets,
                totals,
            })
        })
    }
}
