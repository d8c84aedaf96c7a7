//! The [`Tx`] implementation both backends share: every query of the store, written once.
//!
//! The SQL here is the common subset of SQLite and PostgreSQL (`$n` placeholders, which the
//! SQLite connection rewrites to `?n`; `ON CONFLICT`; `LIKE … ESCAPE`). A backend only supplies a
//! [`Conn`]: run a statement with [`Val`] parameters, return rows of [`Val`]s, and turn a unique
//! violation into [`StoreError::Conflict`] without spoiling the transaction. Keeping one
//! implementation is what makes the two backends behave the same, which the conformance suite
//! then checks.

mod codec;
mod documents;
mod events;
mod sdk;
mod sessions;
pub(crate) mod upgrade;
mod webhooks;

use self::codec::{
    api_key_row, cohort_params, cohort_row, decode_members, deployment_params, deployment_row,
    encode_members, flag_filter, flag_params, flag_row, history_row, project_params, project_row,
    text, Cells, API_KEY_COLS, COHORT_COLS, DEPLOYMENT_COLS, FLAG_COLS, HISTORY_COLS, PROJECT_COLS,
};
use crate::rows::{
    ApiKeyRow, AuditQuery, CohortRow, DeploymentRow, ExperimentPropertyRow, ExposureCount,
    ExposureQuery, ExposureRow, FlagFilter, FlagRow, FlagSort, HistoryRow, Page, ProjectRow,
    SdkRevisionRow, SessionRow,
};
use crate::rows::{
    DeliveryRow, DocumentRow, EventColumns, EventFact, EventRow, ExposureFact, OutboxRow,
    WebhookRow,
};
use crate::{Result, StoreError, Tx};

/// A parameter or a result cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// SQL NULL. The store only binds it to `BIGINT` columns (`revoked_at`).
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

/// Which SQL dialect a connection speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection inside an open transaction.
pub(crate) trait Conn {
    fn dialect(&self) -> Dialect;
    /// Runs a statement and returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64>;
    /// Runs a query and returns every row.
    fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>>;
    /// Runs a statement that may hit a unique constraint: a violation becomes
    /// `Conflict { entity, key, field }` and the transaction stays usable.
    fn execute_unique(
        &mut self,
        sql: &str,
        params: &[Val],
        entity: &'static str,
        key: &str,
    ) -> Result<u64>;
}

/// The `field` of a conflict from a constraint or column name (see `migrations.rs`).
pub(crate) fn conflict_field(name: &str) -> &'static str {
    let column = name.rsplit(['.', ' ']).next().unwrap_or(name);
    let column = column.rsplit("__").next().unwrap_or(column);
    match column {
        "label" => "label",
        "api_key" => "api_key",
        "hash" => "hash",
        "id" => "id",
        "version" => "version",
        _ => "key",
    }
}

/// Rows of a side table written by one `INSERT`.
const LINKS_PER_STATEMENT: usize = 100;

/// The transaction handed to the closures of [`crate::Store::write`] and [`crate::Store::read`].
pub(crate) struct SqlTx<'c> {
    conn: &'c mut dyn Conn,
    writing: bool,
}

impl<'c> SqlTx<'c> {
    pub(crate) fn new(conn: &'c mut dyn Conn, writing: bool) -> Self {
        SqlTx { conn, writing }
    }

    fn rows<T>(
        &mut self,
        sql: &str,
        params: &[Val],
        decode: fn(&mut Cells) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = self.conn.query(sql, params)?;
        rows.into_iter()
            .map(|row| decode(&mut Cells(row.into_iter())))
            .collect()
    }

    fn row<T>(
        &mut self,
        sql: &str,
        params: &[Val],
        decode: fn(&mut Cells) -> Result<T>,
    ) -> Result<Option<T>> {
        Ok(self.rows(sql, params, decode)?.into_iter().next())
    }

    /// Refuses writes in a read transaction, the same way on both backends (SQLite's deferred
    /// transaction would otherwise accept them).
    fn writable(&self) -> Result<()> {
        if self.writing {
            Ok(())
        } else {
            Err(StoreError::Backend(
                "cannot write in a read-only transaction".into(),
            ))
        }
    }

    /// After an update that changed nothing: `NotFound` or `VersionMismatch`.
    fn stale(&mut self, entity: &'static str, sql: &str, params: &[Val], key: &str) -> StoreError {
        match self.row(sql, params, |c| c.int()) {
            Ok(Some(current)) => StoreError::VersionMismatch {
                entity,
                key: key.to_owned(),
                current,
            },
            Ok(None) => StoreError::NotFound {
                entity,
                key: key.to_owned(),
            },
            Err(err) => err,
        }
    }

    /// Runs an `INSERT … ON CONFLICT DO NOTHING`; when it inserts nothing, a unique column was
    /// taken and `probes` (field, query, parameters), tried in order, name the first taken one
    /// (`field` when there is none to try). Probing keeps the field the same on both backends
    /// (a database reports whichever constraint it checks first) and, unlike a failed insert,
    /// leaves a PostgreSQL transaction usable without a savepoint.
    fn insert_new(
        &mut self,
        sql: &str,
        params: &[Val],
        (entity, key, field): (&'static str, &str, &'static str),
        probes: &[(&'static str, &str, &[Val])],
    ) -> Result<()> {
        if self.conn.execute(sql, params)? > 0 {
            return Ok(());
        }
        let mut taken = field;
        for (probe_field, probe_sql, probe_params) in probes {
            if self.row(probe_sql, probe_params, |c| c.int())?.is_some() {
                taken = probe_field;
                break;
            }
        }
        Err(StoreError::Conflict {
            entity,
            key: key.to_owned(),
            field: taken,
        })
    }

    /// Rewrites the side tables that index a flag's tags, deployments and prerequisites.
    fn write_flag_links(&mut self, row: &FlagRow, replace: bool) -> Result<()> {
        let links: [(&str, &str, &[String]); 3] = [
            ("flag_tags", "tag", &row.tags),
            ("flag_deployments", "deployment", &row.deployments),
            ("flag_prerequisites", "prerequisite", &row.prerequisites),
        ];
        for (table, column, values) in links {
            let key = [text(&row.project), text(&row.key)];
            if replace {
                let sql = format!("DELETE FROM {table} WHERE project = $1 AND flag = $2");
                self.conn.execute(&sql, &key)?;
            }
            // One multi-row statement per table (per chunk, to stay far below the drivers'
            // parameter limits); duplicates in the list collapse.
            for chunk in values.chunks(LINKS_PER_STATEMENT) {
                let mut sql = format!("INSERT INTO {table} (project, flag, {column}) VALUES ");
                let mut params = key.to_vec();
                for (i, value) in chunk.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("($1, $2, ${})", i + 3));
                    params.push(text(value));
                }
                sql.push_str(" ON CONFLICT DO NOTHING");
                self.conn.execute(&sql, &params)?;
            }
        }
        Ok(())
    }
}

impl Tx for SqlTx<'_> {
    fn lock_project(&mut self, project: &str) -> Result<Option<ProjectRow>> {
        // SQLite's write transactions already hold the database's single write lock, and a
        // read-only PostgreSQL transaction may not take row locks.
        let lock = self.writing && self.conn.dialect() == Dialect::Postgres;
        let sql = format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE key = $1{}",
            if lock { " FOR UPDATE" } else { "" }
        );
        self.row(&sql, &[text(project)], project_row)
    }

    fn get_project(&mut self, project: &str) -> Result<Option<ProjectRow>> {
        let sql = format!("SELECT {PROJECT_COLS} FROM projects WHERE key = $1");
        self.row(&sql, &[text(project)], project_row)
    }

    fn project_by_api_key(&mut self, api_key: &str) -> Result<Option<ProjectRow>> {
        let sql = format!("SELECT {PROJECT_COLS} FROM projects WHERE api_key = $1");
        self.row(&sql, &[text(api_key)], project_row)
    }

    fn list_projects(&mut self) -> Result<Vec<ProjectRow>> {
        let sql = format!("SELECT {PROJECT_COLS} FROM projects ORDER BY key");
        self.rows(&sql, &[], project_row)
    }

    fn insert_project(&mut self, row: &ProjectRow) -> Result<()> {
        self.writable()?;
        let sql = format!(
            "INSERT INTO projects ({PROJECT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT DO NOTHING"
        );
        let params = project_params(row);
        let probes: [(_, _, &[Val]); 2] = [
            (
                "key",
                "SELECT 1 FROM projects WHERE key = $1",
                &[text(&row.key)],
            ),
            (
                "api_key",
                "SELECT 1 FROM projects WHERE api_key = $1",
                &[text(&row.api_key)],
            ),
        ];
        self.insert_new(&sql, &params, ("project", &row.key, "key"), &probes)
    }

    fn update_project(&mut self, row: &ProjectRow, expected_version: i64) -> Result<()> {
        self.writable()?;
        let sql = "UPDATE projects SET name = $2, api_key = $3, doc = $4, version = $5, \
                   created_at = $6, updated_at = $7 WHERE key = $1 AND version = $8";
        let mut params = project_params(row);
        params.push(Val::Int(expected_version));
        if self
            .conn
            .execute_unique(sql, &params, "project", &row.key)?
            == 0
        {
            let check = "SELECT version FROM projects WHERE key = $1";
            return Err(self.stale("project", check, &[text(&row.key)], &row.key));
        }
        Ok(())
    }

    fn get_deployment(&mut self, project: &str, key: &str) -> Result<Option<DeploymentRow>> {
        let sql =
            format!("SELECT {DEPLOYMENT_COLS} FROM deployments WHERE project = $1 AND key = $2");
        self.row(&sql, &[text(project), text(key)], deployment_row)
    }

    fn deployment_by_api_key(&mut self, api_key: &str) -> Result<Option<DeploymentRow>> {
        let sql = format!("SELECT {DEPLOYMENT_COLS} FROM deployments WHERE api_key = $1");
        self.row(&sql, &[text(api_key)], deployment_row)
    }

    fn list_deployments(&mut self, project: &str) -> Result<Vec<DeploymentRow>> {
        let sql =
            format!("SELECT {DEPLOYMENT_COLS} FROM deployments WHERE project = $1 ORDER BY key");
        self.rows(&sql, &[text(project)], deployment_row)
    }

    fn all_deployments(&mut self) -> Result<Vec<DeploymentRow>> {
        let sql = format!("SELECT {DEPLOYMENT_COLS} FROM deployments ORDER BY project, key");
        self.rows(&sql, &[], deployment_row)
    }

    fn insert_deployment(&mut self, row: &DeploymentRow) -> Result<()> {
        self.writable()?;
        let sql = format!(
            "INSERT INTO deployments ({DEPLOYMENT_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING"
        );
        let params = deployment_params(row);
        let probes: [(_, _, &[Val]); 3] = [
            (
                "key",
                "SELECT 1 FROM deployments WHERE project = $1 AND key = $2",
                &[text(&row.project), text(&row.key)],
            ),
            (
                "label",
                "SELECT 1 FROM deployments WHERE project = $1 AND label = $2",
                &[text(&row.project), text(&row.label)],
            ),
            (
                "api_key",
                "SELECT 1 FROM deployments WHERE api_key = $1",
                &[text(&row.api_key)],
            ),
        ];
        self.insert_new(&sql, &params, ("deployment", &row.key, "key"), &probes)
    }

    fn update_deployment(&mut self, row: &DeploymentRow, expected_version: i64) -> Result<()> {
        self.writable()?;
        let sql = "UPDATE deployments SET label = $3, kind = $4, api_key = $5, archived = $6, \
                   doc = $7, version = $8, created_at = $9, updated_at = $10 \
                   WHERE project = $1 AND key = $2 AND version = $11";
        let mut params = deployment_params(row);
        params.push(Val::Int(expected_version));
        if self
            .conn
            .execute_unique(sql, &params, "deployment", &row.key)?
            == 0
        {
            let check = "SELECT version FROM deployments WHERE project = $1 AND key = $2";
            let key = [text(&row.project), text(&row.key)];
            return Err(self.stale("deployment", check, &key, &row.key));
        }
        Ok(())
    }

    fn get_flag(&mut self, project: &str, key: &str) -> Result<Option<FlagRow>> {
        let sql = format!("SELECT {FLAG_COLS} FROM flags f WHERE f.project = $1 AND f.key = $2");
        self.row(&sql, &[text(project), text(key)], flag_row)
    }

    fn list_flags(&mut self, filter: &FlagFilter) -> Result<Page<FlagRow>> {
        let mut w = flag_filter(filter);
        let where_sql = w.sql();

        let count_sql = format!("SELECT COUNT(*) FROM flags f{where_sql}");
        let total = self.row(&count_sql, &w.params, |c| c.int())?.unwrap_or(0);
        let total = u64::try_from(total).unwrap_or(0);

        let items = if filter.limit == 0 || filter.offset >= total {
            Vec::new()
        } else {
            let limit = w.bind(Val::Int(i64::from(filter.limit)));
            let offset = w.bind(Val::Int(i64::try_from(filter.offset).unwrap_or(i64::MAX)));
            // Page the keys first (from narrow indexes), then read only those rows: skipping
            // `offset` rows never reads their documents.
            let order = match filter.sort {
                FlagSort::Key => "f.project, f.key",
                FlagSort::Name => "f.search_name, f.project, f.key",
                FlagSort::Updated => "f.updated_at DESC, f.project, f.key",
            };
            let sql = format!(
                "SELECT {FLAG_COLS} FROM flags f WHERE (f.project, f.key) IN \
                 (SELECT f.project, f.key FROM flags f{where_sql} \
                  ORDER BY {order} LIMIT {limit} OFFSET {offset}) \
                 ORDER BY {order}"
            );
            self.rows(&sql, &w.params, flag_row)?
        };
        Ok(Page { items, total })
    }

    fn project_flags(&mut self, project: &str) -> Result<Vec<FlagRow>> {
        let sql = format!("SELECT {FLAG_COLS} FROM flags f WHERE f.project = $1 ORDER BY f.key");
        self.rows(&sql, &[text(project)], flag_row)
    }

    fn dependents(&mut self, project: &str, key: &str) -> Result<Vec<FlagRow>> {
        let sql = format!(
            "SELECT {FLAG_COLS} FROM flags f WHERE f.project = $1 AND f.key IN \
             (SELECT p.flag FROM flag_prerequisites p \
              WHERE p.project = $1 AND p.prerequisite = $2) \
             ORDER BY f.key"
        );
        self.rows(&sql, &[text(project), text(key)], flag_row)
    }

    fn insert_flag(&mut self, row: &FlagRow) -> Result<()> {
        self.writable()?;
        let sql = "INSERT INTO flags (project, key, name, kind, state, mode, archived, \
                   search_key, search_name, tags, deployments, prerequisites, doc, version, \
                   created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                   ON CONFLICT DO NOTHING";
        let params = flag_params(row)?;
        self.insert_new(sql, &params, ("flag", &row.key, "key"), &[])?;
        self.write_flag_links(row, false)
    }

    fn update_flag(&mut self, row: &FlagRow, expected_version: i64) -> Result<()> {
        self.writable()?;
        let sql = "UPDATE flags SET name = $3, kind = $4, state = $5, mode = $6, archived = $7, \
                   search_key = $8, search_name = $9, tags = $10, deployments = $11, \
                   prerequisites = $12, doc = $13, version = $14, created_at = $15, \
                   updated_at = $16 WHERE project = $1 AND key = $2 AND version = $17";
        let mut params = flag_params(row)?;
        params.push(Val::Int(expected_version));
        if self.conn.execute(sql, &params)? == 0 {
            let check = "SELECT version FROM flags WHERE project = $1 AND key = $2";
            let key = [text(&row.project), text(&row.key)];
            return Err(self.stale("flag", check, &key, &row.key));
        }
        self.write_flag_links(row, true)
    }

    fn get_document(
        &mut self,
        project: &str,
        collection: &str,
        key: &str,
    ) -> Result<Option<DocumentRow>> {
        documents::get(self, project, collection, key)
    }

    fn list_documents(
        &mut self,
        project: &str,
        collection: &str,
        kind: Option<&str>,
    ) -> Result<Vec<DocumentRow>> {
        documents::list(self, project, collection, kind)
    }

    fn insert_document(&mut self, row: &DocumentRow) -> Result<()> {
        documents::insert(self, row)
    }

    fn update_document(&mut self, row: &DocumentRow, expected_version: i64) -> Result<()> {
        documents::update(self, row, expected_version)
    }

    fn get_cohort(&mut self, project: &str, id: &str) -> Result<Option<CohortRow>> {
        let sql = format!("SELECT {COHORT_COLS} FROM cohorts WHERE project = $1 AND id = $2");
        self.row(&sql, &[text(project), text(id)], cohort_row)
    }

    fn list_cohorts(&mut self, project: &str) -> Result<Vec<CohortRow>> {
        let sql = format!("SELECT {COHORT_COLS} FROM cohorts WHERE project = $1 ORDER BY id");
        self.rows(&sql, &[text(project)], cohort_row)
    }

    fn insert_cohort(&mut self, row: &CohortRow, members: &[String]) -> Result<()> {
        self.writable()?;
        let sql = format!(
            "INSERT INTO cohorts ({COHORT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT DO NOTHING"
        );
        let params = cohort_params(row);
        self.insert_new(&sql, &params, ("cohort", &row.id, "id"), &[])?;
        let sql = "INSERT INTO cohort_members (project, cohort, members) VALUES ($1, $2, $3)";
        let params = [text(&row.project), text(&row.id), encode_members(members)];
        self.conn.execute(sql, &params)?;
        Ok(())
    }

    fn update_cohort(
        &mut self,
        row: &CohortRow,
        members: Option<&[String]>,
        expected_version: i64,
    ) -> Result<()> {
        self.writable()?;
        let sql = "UPDATE cohorts SET name = $3, group_type = $4, size = $5, doc = $6, \
                   version = $7, created_at = $8, updated_at = $9 \
                   WHERE project = $1 AND id = $2 AND version = $10";
        let mut params = cohort_params(row);
        params.push(Val::Int(expected_version));
        if self.conn.execute(sql, &params)? == 0 {
            let check = "SELECT version FROM cohorts WHERE project = $1 AND id = $2";
            let key = [text(&row.project), text(&row.id)];
            return Err(self.stale("cohort", check, &key, &row.id));
        }
        if let Some(members) = members {
            let sql = "INSERT INTO cohort_members (project, cohort, members) VALUES ($1, $2, $3) \
                       ON CONFLICT (project, cohort) DO UPDATE SET members = excluded.members";
            let params = [text(&row.project), text(&row.id), encode_members(members)];
            self.conn.execute(sql, &params)?;
        }
        Ok(())
    }

    fn delete_cohort(&mut self, project: &str, id: &str) -> Result<()> {
        self.writable()?;
        let key = [text(project), text(id)];
        // Members first: the cascade would do it, but not rely on SQLite's foreign_keys pragma.
        let sql = "DELETE FROM cohort_members WHERE project = $1 AND cohort = $2";
        self.conn.execute(sql, &key)?;
        let sql = "DELETE FROM cohorts WHERE project = $1 AND id = $2";
        if self.conn.execute(sql, &key)? == 0 {
            return Err(StoreError::NotFound {
                entity: "cohort",
                key: id.to_owned(),
            });
        }
        Ok(())
    }

    fn cohort_members(&mut self, project: &str, id: &str) -> Result<Vec<String>> {
        let sql = "SELECT members FROM cohort_members WHERE project = $1 AND cohort = $2";
        match self.row(sql, &[text(project), text(id)], |c| c.bytes())? {
            Some(blob) => decode_members(blob),
            None => Err(StoreError::NotFound {
                entity: "cohort",
                key: id.to_owned(),
            }),
        }
    }

    fn append_history(&mut self, row: &HistoryRow) -> Result<()> {
        self.writable()?;
        let sql = format!(
            "INSERT INTO history ({HISTORY_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING"
        );
        let params = [
            text(&row.project),
            text(&row.entity),
            text(&row.key),
            Val::Int(row.version),
            text(&row.actor),
            Val::Int(row.at),
            text(&row.action),
            text(&row.summary),
            text(&row.doc),
            text(&row.comment),
            text(&row.role),
            text(&row.changes),
        ];
        self.insert_new(&sql, &params, ("history", &row.key, "version"), &[])
    }

    fn list_history(
        &mut self,
        project: &str,
        entity: &str,
        key: &str,
        before_version: Option<i64>,
        limit: u32,
    ) -> Result<Vec<HistoryRow>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut params = vec![
            text(project),
            text(entity),
            text(key),
            Val::Int(i64::from(limit)),
        ];
        let before = match before_version {
            Some(version) => {
                params.push(Val::Int(version));
                " AND version < $5"
            }
            None => "",
        };
        let sql = format!(
            "SELECT {HISTORY_COLS} FROM history \
             WHERE project = $1 AND entity = $2 AND key = $3{before} \
             ORDER BY version DESC LIMIT $4"
        );
        self.rows(&sql, &params, history_row)
    }

    fn audit(&mut self, q: &AuditQuery) -> Result<Vec<HistoryRow>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let mut params: Vec<Val> = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let mut equal = |column: &str, value: &Option<String>, params: &mut Vec<Val>| {
            if let Some(v) = value {
                params.push(text(v));
                conditions.push(format!("{column} = ${}", params.len()));
            }
        };
        equal("project", &q.project, &mut params);
        equal("actor", &q.actor, &mut params);
        equal("entity", &q.entity, &mut params);
        equal("key", &q.key, &mut params);
        if let Some(from) = q.from {
            params.push(Val::Int(from));
            conditions.push(format!("at >= ${}", params.len()));
        }
        if let Some(to) = q.to {
            params.push(Val::Int(to));
            conditions.push(format!("at < ${}", params.len()));
        }
        if let Some(c) = &q.after {
            let n = params.len();
            params.extend([
                Val::Int(c.at),
                text(&c.project),
                text(&c.entity),
                text(&c.key),
                Val::Int(c.version),
            ]);
            conditions.push(format!(
                "(at < ${a} OR (at = ${a} AND (project, entity, key, version) < (${p}, ${e}, ${k}, ${v})))",
                a = n + 1,
                p = n + 2,
                e = n + 3,
                k = n + 4,
                v = n + 5
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {HISTORY_COLS} FROM history {filter} \
             ORDER BY at DESC, project DESC, entity DESC, key DESC, version DESC LIMIT {}",
            q.limit
        );
        self.rows(&sql, &params, history_row)
    }

    fn get_history(
        &mut self,
        project: &str,
        entity: &str,
        key: &str,
        version: i64,
    ) -> Result<Option<HistoryRow>> {
        let sql = format!(
            "SELECT {HISTORY_COLS} FROM history \
             WHERE project = $1 AND entity = $2 AND key = $3 AND version = $4"
        );
        let params = [text(project), text(entity), text(key), Val::Int(version)];
        self.row(&sql, &params, history_row)
    }

    fn insert_api_key(&mut self, row: &ApiKeyRow) -> Result<()> {
        self.writable()?;
        let sql = format!(
            "INSERT INTO api_keys ({API_KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT DO NOTHING"
        );
        let params = [
            text(&row.id),
            text(&row.name),
            text(&row.hash),
            text(&row.prefix),
            text(&row.role),
            Val::Int(row.created_at),
            row.revoked_at.map_or(Val::Null, Val::Int),
        ];
        let probes: [(_, _, &[Val]); 2] = [
            (
                "id",
                "SELECT 1 FROM api_keys WHERE id = $1",
                &[text(&row.id)],
            ),
            (
                "hash",
                "SELECT 1 FROM api_keys WHERE hash = $1",
                &[text(&row.hash)],
            ),
        ];
        self.insert_new(&sql, &params, ("api key", &row.id, "id"), &probes)
    }

    fn list_api_keys(&mut self) -> Result<Vec<ApiKeyRow>> {
        let sql = format!("SELECT {API_KEY_COLS} FROM api_keys ORDER BY created_at, id");
        self.rows(&sql, &[], api_key_row)
    }

    fn api_key_by_hash(&mut self, hash: &str) -> Result<Option<ApiKeyRow>> {
        let sql = format!("SELECT {API_KEY_COLS} FROM api_keys WHERE hash = $1");
        self.row(&sql, &[text(hash)], api_key_row)
    }

    fn revoke_api_key(&mut self, id: &str, at: i64) -> Result<()> {
        self.writable()?;
        let sql = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1";
        if self.conn.execute(sql, &[text(id), Val::Int(at)])? == 0 {
            return Err(StoreError::NotFound {
                entity: "api key",
                key: id.to_owned(),
            });
        }
        Ok(())
    }

    fn insert_session(&mut self, row: &SessionRow) -> Result<()> {
        sessions::insert_session(self, row)
    }

    fn session_by_hash(&mut self, hash: &str) -> Result<Option<SessionRow>> {
        sessions::session_by_hash(self, hash)
    }

    fn delete_session(&mut self, hash: &str) -> Result<bool> {
        sessions::delete_session(self, hash)
    }

    fn delete_key_sessions(&mut self, key_id: &str) -> Result<u64> {
        sessions::delete_key_sessions(self, key_id)
    }

    fn purge_sessions(&mut self, now: i64) -> Result<u64> {
        sessions::purge_sessions(self, now)
    }

    fn insert_webhook(&mut self, row: &WebhookRow) -> Result<()> {
        webhooks::insert_webhook(self, row)
    }

    fn get_webhook(&mut self, project: &str, id: &str) -> Result<Option<WebhookRow>> {
        webhooks::get_webhook(self, project, id)
    }

    fn list_webhooks(&mut self, project: &str) -> Result<Vec<WebhookRow>> {
        webhooks::list_webhooks(self, project)
    }

    fn update_webhook(&mut self, row: &WebhookRow, expected_version: i64) -> Result<()> {
        webhooks::update_webhook(self, row, expected_version)
    }

    fn delete_webhook(&mut self, project: &str, id: &str) -> Result<()> {
        webhooks::delete_webhook(self, project, id)
    }

    fn insert_outbox(&mut self, row: &OutboxRow) -> Result<()> {
        webhooks::insert_outbox(self, row)
    }

    fn claim_outbox(&mut self, now: i64, lease_until: i64, limit: u32) -> Result<Vec<OutboxRow>> {
        webhooks::claim_outbox(self, now, lease_until, limit)
    }

    fn update_outbox(&mut self, row: &OutboxRow) -> Result<()> {
        webhooks::update_outbox(self, row)
    }

    fn get_outbox(&mut self, id: &str) -> Result<Option<OutboxRow>> {
        webhooks::get_outbox(self, id)
    }

    fn purge_outbox(&mut self, before: i64) -> Result<u64> {
        webhooks::purge_outbox(self, before)
    }

    fn insert_delivery(&mut self, row: &DeliveryRow, keep: u32) -> Result<()> {
        webhooks::insert_delivery(self, row, keep)
    }

    fn list_deliveries(
        &mut self,
        project: &str,
        webhook: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>> {
        webhooks::list_deliveries(self, project, webhook, limit)
    }

    fn get_setting(&mut self, key: &str) -> Result<Option<String>> {
        sdk::get_setting(self, key)
    }

    fn insert_setting(&mut self, key: &str, value: &str) -> Result<bool> {
        sdk::insert_setting(self, key, value)
    }

    fn put_setting(&mut self, key: &str, value: &str) -> Result<()> {
        sdk::put_setting(self, key, value)
    }

    fn delete_setting(&mut self, key: &str) -> Result<bool> {
        sdk::delete_setting(self, key)
    }

    fn sdk_revisions(&mut self, project: Option<&str>) -> Result<Vec<SdkRevisionRow>> {
        sdk::sdk_revisions(self, project)
    }

    fn put_sdk_revision(&mut self, row: &SdkRevisionRow) -> Result<()> {
        sdk::put_sdk_revision(self, row)
    }

    fn claim_insert_id(
        &mut self,
        project: &str,
        insert_id: &str,
        at: i64,
        window_start: i64,
    ) -> Result<bool> {
        sdk::claim_insert_id(self, project, insert_id, at, window_start)
    }

    fn purge_insert_ids(&mut self, before: i64) -> Result<u64> {
        sdk::purge_insert_ids(self, before)
    }

    fn insert_exposures(&mut self, rows: &[ExposureRow]) -> Result<()> {
        sdk::insert_exposures(self, rows)
    }

    fn insert_events(&mut self, rows: &[EventRow]) -> Result<()> {
        events::insert(self, rows)
    }

    fn last_ids(&mut self) -> Result<(i64, i64)> {
        events::last_ids(self)
    }

    fn recent_events(&mut self, project: &str, limit: u32) -> Result<Vec<EventFact>> {
        events::recent(self, project, limit)
    }

    fn exposures_since(
        &mut self,
        project: &str,
        flag_key: &str,
        kinds: &[&str],
        after: (i64, i64),
        limit: u32,
    ) -> Result<Vec<ExposureFact>> {
        events::exposures_since(self, project, flag_key, kinds, after, limit)
    }

    fn events_since(
        &mut self,
        project: &str,
        event_types: &[&str],
        after: (i64, i64),
        columns: EventColumns,
        limit: u32,
    ) -> Result<Vec<EventFact>> {
        events::events_since(self, project, event_types, after, columns, limit)
    }

    fn purge_events(&mut self, before: i64) -> Result<u64> {
        events::purge(self, before)
    }

    fn latest_events(
        &mut self,
        project: &str,
        event_type: &str,
        limit: u32,
    ) -> Result<Vec<EventRow>> {
        events::latest(self, project, event_type, limit)
    }

    fn exposure_counts(&mut self, query: &ExposureQuery) -> Result<Vec<ExposureCount>> {
        sdk::exposure_counts(self, query)
    }

    fn put_experiment_properties(&mut self, rows: &[ExperimentPropertyRow]) -> Result<()> {
        sdk::put_experiment_properties(self, rows)
    }

    fn experiment_properties(&mut self, since: i64) -> Result<Vec<ExperimentPropertyRow>> {
        sdk::experiment_properties(self, since)
    }

    fn flag_experiment_properties(
        &mut self,
        project: &str,
        flag_key: &str,
    ) -> Result<Vec<ExperimentPropertyRow>> {
        sdk::flag_experiment_properties(self, project, flag_key)
    }

    fn user_experiment_properties(
        &mut self,
        project: &str,
        id_kind: &str,
        id: &str,
    ) -> Result<Vec<ExperimentPropertyRow>> {
        sdk::user_experiment_properties(self, project, id_kind, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_fields_from_constraints_and_columns() {
        assert_eq!(conflict_field("deployments__label"), "label");
        assert_eq!(
            conflict_field("deployments.project, deployments.api_key"),
            "api_key"
        );
        assert_eq!(conflict_field("flags.project, flags.key"), "key");
        assert_eq!(conflict_field("api_keys__hash"), "hash");
        assert_eq!(conflict_field("history.version"), "version");
    }
}
