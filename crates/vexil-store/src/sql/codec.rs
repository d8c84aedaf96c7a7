//! How rows and parameters cross the SQL boundary: the column lists, cell decoding, list and
//! cohort-member encodings, and the `WHERE` clause of `list_flags`.

use super::Val;
use crate::rows::{
    ApiKeyRow, CohortRow, DeploymentRow, FlagFilter, FlagRow, HistoryRow, ProjectRow,
};
use crate::{Result, StoreError};

pub(super) const PROJECT_COLS: &str = "key, name, api_key, doc, version, created_at, updated_at";
pub(super) const DEPLOYMENT_COLS: &str =
    "project, key, label, kind, api_key, archived, doc, version, created_at, updated_at";
pub(super) const FLAG_COLS: &str =
    "f.project, f.key, f.name, f.kind, f.state, f.mode, f.archived, f.tags, \
     f.deployments, f.prerequisites, f.doc, f.version, f.created_at, f.updated_at";
pub(super) const COHORT_COLS: &str =
    "project, id, name, group_type, size, doc, version, created_at, updated_at";
pub(super) const HISTORY_COLS: &str =
    "project, entity, key, version, actor, at, action, summary, doc, comment, role, changes";
pub(super) const API_KEY_COLS: &str = "id, name, hash, prefix, role, created_at, revoked_at";

pub(super) fn text(s: &str) -> Val {
    Val::Text(s.to_owned())
}

/// '' stands for "none" in the optional text columns of exposures and events (see the version
/// 2 migration).
pub(super) fn opt_text(value: &Option<String>) -> Val {
    text(value.as_deref().unwrap_or(""))
}

/// The optional text a column holds: '' is none.
pub(super) fn none_if_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// The written columns of a project, in the order of `PROJECT_COLS` (inserts and updates
/// number their parameters the same way; an update adds the expected version last).
pub(super) fn project_params(row: &ProjectRow) -> Vec<Val> {
    vec![
        text(&row.key),
        text(&row.name),
        text(&row.api_key),
        text(&row.doc),
        Val::Int(row.version),
        Val::Int(row.created_at),
        Val::Int(row.updated_at),
    ]
}

/// The written columns of a deployment, in the order of `DEPLOYMENT_COLS`.
pub(super) fn deployment_params(row: &DeploymentRow) -> Vec<Val> {
    vec![
        text(&row.project),
        text(&row.key),
        text(&row.label),
        text(&row.kind),
        text(&row.api_key),
        Val::Bool(row.archived),
        text(&row.doc),
        Val::Int(row.version),
        Val::Int(row.created_at),
        Val::Int(row.updated_at),
    ]
}

/// The written columns of a flag: `FLAG_COLS` plus the two search columns after `archived`.
pub(super) fn flag_params(row: &FlagRow) -> Result<Vec<Val>> {
    Ok(vec![
        text(&row.project),
        text(&row.key),
        text(&row.name),
        text(&row.kind),
        text(&row.state),
        text(&row.mode),
        Val::Bool(row.archived),
        search_form(&row.key),
        search_form(&row.name),
        json_list(&row.tags)?,
        json_list(&row.deployments)?,
        json_list(&row.prerequisites)?,
        text(&row.doc),
        Val::Int(row.version),
        Val::Int(row.created_at),
        Val::Int(row.updated_at),
    ])
}

/// The written columns of a cohort, in the order of `COHORT_COLS`.
pub(super) fn cohort_params(row: &CohortRow) -> Vec<Val> {
    vec![
        text(&row.project),
        text(&row.id),
        text(&row.name),
        text(&row.group_type),
        Val::Int(row.size),
        text(&row.doc),
        Val::Int(row.version),
        Val::Int(row.created_at),
        Val::Int(row.updated_at),
    ]
}

pub(super) fn json_list(values: &[String]) -> Result<Val> {
    serde_json::to_string(values)
        .map(Val::Text)
        .map_err(|err| StoreError::Backend(Box::new(err)))
}

/// The lowercased form `text` filters compare against (Unicode-aware on both backends, which
/// SQL's `lower()` is not on SQLite).
pub(super) fn search_form(s: &str) -> Val {
    Val::Text(s.to_lowercase())
}

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` taken literally.
pub(super) fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Cohort members are stored as one blob, each id followed by `\n` (ids never contain `\n`):
/// one row to write, read or replace, whatever the cohort's size.
pub(super) fn encode_members(members: &[String]) -> Val {
    let mut blob = Vec::with_capacity(members.iter().map(|m| m.len() + 1).sum());
    for member in members {
        blob.extend_from_slice(member.as_bytes());
        blob.push(b'\n');
    }
    Val::Bytes(blob)
}

pub(super) fn decode_members(blob: Vec<u8>) -> Result<Vec<String>> {
    let text = String::from_utf8(blob)
        .map_err(|_| StoreError::Corrupt("cohort members are not UTF-8".to_owned()))?;
    let Some(body) = text.strip_suffix('\n') else {
        return Ok(Vec::new());
    };
    Ok(body.split('\n').map(str::to_owned).collect())
}

/// Reads one result row's cells in order.
pub(super) struct Cells(pub(super) std::vec::IntoIter<Val>);

impl Cells {
    pub(super) fn next(&mut self) -> Result<Val> {
        self.0
            .next()
            .ok_or_else(|| StoreError::Corrupt("a row has too few columns".to_owned()))
    }

    pub(super) fn text(&mut self) -> Result<String> {
        match self.next()? {
            Val::Text(s) => Ok(s),
            other => Err(StoreError::Corrupt(format!("expected text, got {other:?}"))),
        }
    }

    pub(super) fn int(&mut self) -> Result<i64> {
        match self.next()? {
            Val::Int(i) => Ok(i),
            other => Err(StoreError::Corrupt(format!(
                "expected an integer, got {other:?}"
            ))),
        }
    }

    pub(super) fn opt_int(&mut self) -> Result<Option<i64>> {
        match self.next()? {
            Val::Null => Ok(None),
            Val::Int(i) => Ok(Some(i)),
            other => Err(StoreError::Corrupt(format!(
                "expected an integer, got {other:?}"
            ))),
        }
    }

    /// SQLite stores booleans as 0/1.
    pub(super) fn bool(&mut self) -> Result<bool> {
        match self.next()? {
            Val::Bool(b) => Ok(b),
            Val::Int(i) => Ok(i != 0),
            other => Err(StoreError::Corrupt(format!(
                "expected a boolean, got {other:?}"
            ))),
        }
    }

    pub(super) fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.next()? {
            Val::Bytes(b) => Ok(b),
            other => Err(StoreError::Corrupt(format!(
                "expected bytes, got {other:?}"
            ))),
        }
    }

    pub(super) fn list(&mut self) -> Result<Vec<String>> {
        let json = self.text()?;
        serde_json::from_str(&json)
            .map_err(|err| StoreError::Corrupt(format!("a list column is not JSON: {err}")))
    }
}

pub(super) fn project_row(c: &mut Cells) -> Result<ProjectRow> {
    Ok(ProjectRow {
        key: c.text()?,
        name: c.text()?,
        api_key: c.text()?,
        doc: c.text()?,
        version: c.int()?,
        created_at: c.int()?,
        updated_at: c.int()?,
    })
}

pub(super) fn deployment_row(c: &mut Cells) -> Result<DeploymentRow> {
    Ok(DeploymentRow {
        project: c.text()?,
        key: c.text()?,
        label: c.text()?,
        kind: c.text()?,
        api_key: c.text()?,
        archived: c.bool()?,
        doc: c.text()?,
        version: c.int()?,
        created_at: c.int()?,
        updated_at: c.int()?,
    })
}

pub(super) fn flag_row(c: &mut Cells) -> Result<FlagRow> {
    Ok(FlagRow {
        project: c.text()?,
        key: c.text()?,
        name: c.text()?,
        kind: c.text()?,
        state: c.text()?,
        mode: c.text()?,
        archived: c.bool()?,
        tags: c.list()?,
        deployments: c.list()?,
        prerequisites: c.list()?,
        doc: c.text()?,
        version: c.int()?,
        created_at: c.int()?,
        updated_at: c.int()?,
    })
}

pub(super) fn cohort_row(c: &mut Cells) -> Result<CohortRow> {
    Ok(CohortRow {
        project: c.text()?,
        id: c.text()?,
        name: c.text()?,
        group_type: c.text()?,
        size: c.int()?,
        doc: c.text()?,
        version: c.int()?,
        created_at: c.int()?,
        updated_at: c.int()?,
    })
}

pub(super) fn history_row(c: &mut Cells) -> Result<HistoryRow> {
    Ok(HistoryRow {
        project: c.text()?,
        entity: c.text()?,
        key: c.text()?,
        version: c.int()?,
        actor: c.text()?,
        at: c.int()?,
        action: c.text()?,
        summary: c.text()?,
        doc: c.text()?,
        comment: c.text()?,
        role: c.text()?,
        changes: c.text()?,
    })
}

pub(super) fn api_key_row(c: &mut Cells) -> Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: c.text()?,
        name: c.text()?,
        hash: c.text()?,
        prefix: c.text()?,
        role: c.text()?,
        created_at: c.int()?,
        revoked_at: c.opt_int()?,
    })
}

/// Collects the `WHERE` clause of [`Tx::list_flags`] and its parameters.
#[derive(Default)]
pub(super) struct Where {
    clauses: Vec<String>,
    pub(super) params: Vec<Val>,
}

impl Where {
    /// Adds a parameter and returns its placeholder.
    pub(super) fn bind(&mut self, val: Val) -> String {
        self.params.push(val);
        format!("${}", self.params.len())
    }

    fn eq(&mut self, column: &str, value: Option<&String>) {
        if let Some(value) = value {
            let p = self.bind(text(value));
            self.clauses.push(format!("{column} = {p}"));
        }
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// The `WHERE` clause and parameters selecting the flags `filter` asks for (aliased `f`).
pub(super) fn flag_filter(filter: &FlagFilter) -> Where {
    let mut w = Where::default();
    w.eq("f.project", filter.project.as_ref());
    w.eq("f.key", filter.key.as_ref());
    w.eq("f.state", filter.state.as_ref());
    w.eq("f.kind", filter.kind.as_ref());
    w.eq("f.mode", filter.mode.as_ref());
    if let Some(archived) = filter.archived {
        let p = w.bind(Val::Bool(archived));
        w.clauses.push(format!("f.archived = {p}"));
    }
    // Membership through the side tables' (value, project, flag) indexes: a selective tag
    // or deployment drives the lookup instead of probing every flag.
    if let Some(tag) = &filter.tag {
        let p = w.bind(text(tag));
        w.clauses.push(format!(
            "(f.project, f.key) IN (SELECT t.project, t.flag FROM flag_tags t WHERE t.tag = {p})"
        ));
    }
    if let Some(deployment) = &filter.deployment {
        let p = w.bind(text(deployment));
        w.clauses.push(format!(
            "(f.project, f.key) IN (SELECT d.project, d.flag FROM flag_deployments d \
             WHERE d.deployment = {p})"
        ));
    }
    if let Some(needle) = &filter.text {
        let p = w.bind(Val::Text(contains_pattern(needle)));
        w.clauses.push(format!(
            "(f.search_key LIKE {p} ESCAPE '\\' OR f.search_name LIKE {p} ESCAPE '\\')"
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_like_wildcards() {
        assert_eq!(contains_pattern("A%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn members_round_trip_including_empty_ids() {
        for members in [
            vec![],
            vec![String::new()],
            vec!["a".to_owned(), String::new()],
        ] {
            let Val::Bytes(blob) = encode_members(&members) else {
                panic!("members encode to bytes");
            };
            assert_eq!(decode_members(blob).ok(), Some(members));
        }
    }
}
