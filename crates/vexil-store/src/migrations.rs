//! The embedded schema migrations, one SQL script per dialect and version.
//!
//! Both dialects describe the same logical schema; only the column types differ (SQLite keeps
//! booleans as `INTEGER` 0/1 and blobs as `BLOB`, PostgreSQL uses `BOOLEAN`, `BIGINT` and
//! `BYTEA`). Applied versions are recorded in `vexil_schema_migrations`; each backend applies
//! the missing ones in order inside one transaction and refuses a database whose schema is newer
//! than this build (an older binary must not write rows it does not understand).
//!
//! PostgreSQL text columns use the `"C"` collation: keys then sort by code point as they do in
//! SQLite, whatever the database's locale, and comparisons and indexes skip locale rules.
//!
//! Unique constraints are named `<table>__<column>`: PostgreSQL reports the constraint name of a
//! unique violation, and the part after `__` is the `field` of [`crate::StoreError::Conflict`].
//! SQLite reports the columns instead; the last one is the field.
//!
//! A version may also change data in a way SQL cannot say once for both dialects (hashing
//! with SHA-256, which SQLite lacks); its `data` step, written over the shared `Conn`, runs
//! right after its script in the same transaction.
//!
//! Never edit a released migration: add a new version.

use crate::sql::{upgrade, Conn};

/// One schema version.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
    /// Data changes after the script, on the migrating transaction's connection.
    pub(crate) data: Option<fn(&mut dyn Conn) -> crate::Result<()>>,
}

/// Every migration, oldest first; versions are consecutive from 1.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: V1_SQLITE,
        postgres: V1_POSTGRES,
        data: None,
    },
    Migration {
        version: 2,
        sqlite: V2_SQLITE,
        postgres: V2_POSTGRES,
        data: None,
    },
    Migration {
        version: 3,
        sqlite: V3_SQLITE,
        postgres: V3_POSTGRES,
        data: Some(upgrade::hash_project_secrets),
    },
    Migration {
        version: 4,
        sqlite: V4_SQLITE,
        postgres: V4_POSTGRES,
        data: None,
    },
    Migration {
        version: 5,
        sqlite: V5_SQLITE,
        postgres: V5_POSTGRES,
        data: None,
    },
    Migration {
        version: 6,
        sqlite: V6_SQLITE,
        postgres: V6_POSTGRES,
        data: None,
    },
    Migration {
        version: 7,
        sqlite: V7_SQLITE,
        postgres: V7_POSTGRES,
        data: None,
    },
    Migration {
        version: 8,
        sqlite: V8_SQLITE,
        postgres: V8_POSTGRES,
        data: None,
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The table of applied versions, created before anything else (same text in both dialects).
pub(crate) const CREATE_VERSIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS vexil_schema_migrations (
    version BIGINT PRIMARY KEY NOT NULL,
    applied_at BIGINT NOT NULL
)";

// On SQLite a flag row holds its document inline, so scanning the table reads every document.
// `flags_list` is a narrow copy of the columns `list_flags` filters on, in key order: counts and
// pages of keys come from it alone, and only the rows of one page are then read.
const V1_SQLITE: &str = "
CREATE TABLE projects (
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    api_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    CONSTRAINT projects__key PRIMARY KEY (key),
    CONSTRAINT projects__api_key UNIQUE (api_key)
);

CREATE TABLE deployments (
    project TEXT NOT NULL REFERENCES projects (key),
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    kind TEXT NOT NULL,
    api_key TEXT NOT NULL,
    archived INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    CONSTRAINT deployments__key PRIMARY KEY (project, key),
    CONSTRAINT deployments__label UNIQUE (project, label),
    CONSTRAINT deployments__api_key UNIQUE (api_key)
);

CREATE TABLE flags (
    project TEXT NOT NULL REFERENCES projects (key),
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    mode TEXT NOT NULL,
    archived INTEGER NOT NULL,
    search_key TEXT NOT NULL,
    search_name TEXT NOT NULL,
    tags TEXT NOT NULL,
    deployments TEXT NOT NULL,
    prerequisites TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    CONSTRAINT flags__key PRIMARY KEY (project, key)
);
CREATE INDEX flags_list ON flags (project, key, search_key, search_name, state, kind, mode, archived);
CREATE INDEX flags_state ON flags (project, state, key);
CREATE INDEX flags_kind ON flags (project, kind, key);

CREATE TABLE flag_tags (
    project TEXT NOT NULL,
    flag TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (project, flag, tag),
    FOREIGN KEY (project, flag) REFERENCES flags (project, key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX flag_tags_tag ON flag_tags (tag, project, flag);

CREATE TABLE flag_deployments (
    project TEXT NOT NULL,
    flag TEXT NOT NULL,
    deployment TEXT NOT NULL,
    PRIMARY KEY (project, flag, deployment),
    FOREIGN KEY (project, flag) REFERENCES flags (project, key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX flag_deployments_deployment ON flag_deployments (deployment, project, flag);

CREATE TABLE flag_prerequisites (
    project TEXT NOT NULL,
    flag TEXT NOT NULL,
    prerequisite TEXT NOT NULL,
    PRIMARY KEY (project, flag, prerequisite),
    FOREIGN KEY (project, flag) REFERENCES flags (project, key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX flag_prerequisites_prerequisite ON flag_prerequisites (project, prerequisite, flag);

CREATE TABLE cohorts (
    project TEXT NOT NULL REFERENCES projects (key),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    group_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    CONSTRAINT cohorts__id PRIMARY KEY (project, id)
);

CREATE TABLE cohort_members (
    project TEXT NOT NULL,
    cohort TEXT NOT NULL,
    members BLOB NOT NULL,
    PRIMARY KEY (project, cohort),
    FOREIGN KEY (project, cohort) REFERENCES cohorts (project, id) ON DELETE CASCADE
);

CREATE TABLE history (
    project TEXT NOT NULL,
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    summary TEXT NOT NULL,
    doc TEXT NOT NULL,
    CONSTRAINT history__version PRIMARY KEY (project, entity, key, version)
);

CREATE TABLE api_keys (
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    CONSTRAINT api_keys__id PRIMARY KEY (id),
    CONSTRAINT api_keys__hash UNIQUE (hash)
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);
";

const V1_POSTGRES: &str = r#"
CREATE TABLE projects (
    key TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    api_key TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    doc TEXT COLLATE "C" NOT NULL,
    CONSTRAINT projects__key PRIMARY KEY (key),
    CONSTRAINT projects__api_key UNIQUE (api_key)
);

CREATE TABLE deployments (
    project TEXT COLLATE "C" NOT NULL REFERENCES projects (key),
    key TEXT COLLATE "C" NOT NULL,
    label TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    api_key TEXT COLLATE "C" NOT NULL,
    archived BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    doc TEXT COLLATE "C" NOT NULL,
    CONSTRAINT deployments__key PRIMARY KEY (project, key),
    CONSTRAINT deployments__label UNIQUE (project, label),
    CONSTRAINT deployments__api_key UNIQUE (api_key)
);

CREATE TABLE flags (
    project TEXT COLLATE "C" NOT NULL REFERENCES projects (key),
    key TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    mode TEXT COLLATE "C" NOT NULL,
    archived BOOLEAN NOT NULL,
    search_key TEXT COLLATE "C" NOT NULL,
    search_name TEXT COLLATE "C" NOT NULL,
    tags TEXT COLLATE "C" NOT NULL,
    deployments TEXT COLLATE "C" NOT NULL,
    prerequisites TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    doc TEXT COLLATE "C" NOT NULL,
    CONSTRAINT flags__key PRIMARY KEY (project, key)
);
CREATE INDEX flags_state ON flags (project, state, key);
CREATE INDEX flags_kind ON flags (project, kind, key);

CREATE TABLE flag_tags (
    project TEXT COLLATE "C" NOT NULL,
    flag TEXT COLLATE "C" NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (project, flag, tag),
    FOREIGN KEY (project, flag) REFERENCES flags (project, key) ON DELETE CASCADE
);
CREATE INDEX flag_tags_tag ON flag_tags (tag, project, flag);

CREATE TABLE flag_deployments (
    project TEXT COLLATE "C" NOT NULL,
    flag TEXT COLLATE "C" NOT NULL,
    deployment TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (project, flag, deployment),
    FOREIGN KEY (project, flag) REFERENCES flags (project, key) ON DELETE CASCADE
);
CREATE INDEX flag_deployments_deployment ON flag_deployments (deployment, project, flag);

CREATE TABLE flag_prerequisites (
    project TEXT COLLATE "C" NOT NULL,
    flag TEXT COLLATE "C" NOT NULL,
    prerequisite TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (project, flag, prerequisite),
    FOREIGN KEY (project, flag) REFERENCES flags (project, key) ON DELETE CASCADE
);
CREATE INDEX flag_prerequisites_prerequisite ON flag_prerequisites (project, prerequisite, flag);

CREATE TABLE cohorts (
    project TEXT COLLATE "C" NOT NULL REFERENCES projects (key),
    id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    group_type TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    doc TEXT COLLATE "C" NOT NULL,
    CONSTRAINT cohorts__id PRIMARY KEY (project, id)
);

CREATE TABLE cohort_members (
    project TEXT COLLATE "C" NOT NULL,
    cohort TEXT COLLATE "C" NOT NULL,
    members BYTEA NOT NULL,
    PRIMARY KEY (project, cohort),
    FOREIGN KEY (project, cohort) REFERENCES cohorts (project, id) ON DELETE CASCADE
);

CREATE TABLE history (
    project TEXT COLLATE "C" NOT NULL,
    entity TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    actor TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    summary TEXT COLLATE "C" NOT NULL,
    doc TEXT COLLATE "C" NOT NULL,
    CONSTRAINT history__version PRIMARY KEY (project, entity, key, version)
);

CREATE TABLE api_keys (
    id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    hash TEXT COLLATE "C" NOT NULL,
    prefix TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CONSTRAINT api_keys__id PRIMARY KEY (id),
    CONSTRAINT api_keys__hash UNIQUE (hash)
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);
"#;

// Version 2: what the SDK-facing API needs. Optional text columns of exposures hold '' for
// "none" (variant keys, ids and names are never empty), which keeps every text column NOT NULL
// and the two dialects' parameter types alike.
const V2_SQLITE: &str = "
CREATE TABLE settings (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    CONSTRAINT settings__key PRIMARY KEY (key)
);

CREATE TABLE sdk_revisions (
    project TEXT NOT NULL,
    deployment TEXT NOT NULL,
    revision INTEGER NOT NULL,
    hash TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (project, deployment)
) WITHOUT ROWID;

CREATE TABLE exposures (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    deployment TEXT NOT NULL,
    kind TEXT NOT NULL,
    flag_key TEXT NOT NULL,
    variant TEXT NOT NULL,
    experiment_key TEXT NOT NULL,
    flag_version INTEGER,
    segment_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    groups TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    insert_id TEXT NOT NULL,
    library TEXT NOT NULL
);
CREATE INDEX exposures_flag_time ON exposures (project, flag_key, event_time);

CREATE TABLE exposure_insert_ids (
    project TEXT NOT NULL,
    insert_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (project, insert_id)
) WITHOUT ROWID;
CREATE INDEX exposure_insert_ids_received ON exposure_insert_ids (received_at);

CREATE TABLE experiment_properties (
    project TEXT NOT NULL,
    id_kind TEXT NOT NULL,
    id TEXT NOT NULL,
    flag_key TEXT NOT NULL,
    variant TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, id_kind, id, flag_key)
) WITHOUT ROWID;
CREATE INDEX experiment_properties_updated ON experiment_properties (updated_at);
CREATE INDEX experiment_properties_flag ON experiment_properties (project, flag_key);
";

const V2_POSTGRES: &str = r#"
CREATE TABLE settings (
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    CONSTRAINT settings__key PRIMARY KEY (key)
);

CREATE TABLE sdk_revisions (
    project TEXT COLLATE "C" NOT NULL,
    deployment TEXT COLLATE "C" NOT NULL,
    revision BIGINT NOT NULL,
    hash TEXT COLLATE "C" NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (project, deployment)
);

CREATE TABLE exposures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project TEXT COLLATE "C" NOT NULL,
    deployment TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    flag_key TEXT COLLATE "C" NOT NULL,
    variant TEXT COLLATE "C" NOT NULL,
    experiment_key TEXT COLLATE "C" NOT NULL,
    flag_version BIGINT,
    segment_name TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    groups TEXT COLLATE "C" NOT NULL,
    event_time BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    insert_id TEXT COLLATE "C" NOT NULL,
    library TEXT COLLATE "C" NOT NULL
);
CREATE INDEX exposures_flag_time ON exposures (project, flag_key, event_time);

CREATE TABLE exposure_insert_ids (
    project TEXT COLLATE "C" NOT NULL,
    insert_id TEXT COLLATE "C" NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (project, insert_id)
);
CREATE INDEX exposure_insert_ids_received ON exposure_insert_ids (received_at);

CREATE TABLE experiment_properties (
    project TEXT COLLATE "C" NOT NULL,
    id_kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    flag_key TEXT COLLATE "C" NOT NULL,
    variant TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, id_kind, id, flag_key)
);
CREATE INDEX experiment_properties_updated ON experiment_properties (updated_at);
CREATE INDEX experiment_properties_flag ON experiment_properties (project, flag_key);
"#;

// Version 3: secrets at rest. Console sessions live server-side: the browser holds a random
// token, the table only its hash, so a database reader can neither forge nor replay one. The
// `ended_session:` settings of the signed cookies that sessions replace go. (Project secret
// keys are hashed by the data step, `upgrade::hash_project_secrets`.)
const V3_SQLITE: &str = "
CREATE TABLE sessions (
    hash TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CONSTRAINT sessions__hash PRIMARY KEY (hash)
);
CREATE INDEX sessions_key ON sessions (key_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

DELETE FROM settings WHERE key LIKE 'ended_session:%';
";

const V3_POSTGRES: &str = r#"
CREATE TABLE sessions (
    hash TEXT COLLATE "C" NOT NULL,
    key_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT sessions__hash PRIMARY KEY (hash)
);
CREATE INDEX sessions_key ON sessions (key_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

DELETE FROM settings WHERE key LIKE 'ended_session:%';
"#;

// Version 4: signed webhooks. A subscription keeps its signing secret in clear (the server
// must sign with it); the outbox holds one row per event and subscription, written in the
// transaction of the change it reports, until a delivery succeeds or its retries run out; the
// delivery log keeps the last attempts of each subscription. Outbox ids are the event ids the
// domain generates, so that no dialect-specific identity column is needed there.
const V4_SQLITE: &str = "
CREATE TABLE webhooks (
    project TEXT NOT NULL REFERENCES projects (key),
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    active INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT webhooks__id PRIMARY KEY (project, id)
);

CREATE TABLE webhook_outbox (
    id TEXT NOT NULL,
    project TEXT NOT NULL,
    webhook TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    failed_at INTEGER,
    CONSTRAINT webhook_outbox__id PRIMARY KEY (id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_outbox_webhook ON webhook_outbox (project, webhook);

CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    webhook TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    response TEXT NOT NULL,
    error TEXT NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (project, webhook, seq);
";

const V4_POSTGRES: &str = r#"
CREATE TABLE webhooks (
    project TEXT COLLATE "C" NOT NULL REFERENCES projects (key),
    id TEXT COLLATE "C" NOT NULL,
    url TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    events TEXT COLLATE "C" NOT NULL,
    secret TEXT COLLATE "C" NOT NULL,
    active BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT webhooks__id PRIMARY KEY (project, id)
);

CREATE TABLE webhook_outbox (
    id TEXT COLLATE "C" NOT NULL,
    project TEXT COLLATE "C" NOT NULL,
    webhook TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    payload TEXT COLLATE "C" NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    failed_at BIGINT,
    CONSTRAINT webhook_outbox__id PRIMARY KEY (id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_outbox_webhook ON webhook_outbox (project, webhook);

CREATE TABLE webhook_deliveries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project TEXT COLLATE "C" NOT NULL,
    webhook TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT,
    response TEXT COLLATE "C" NOT NULL,
    error TEXT COLLATE "C" NOT NULL,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (project, webhook, seq);
"#;

// Version 5: versioned project documents kept in collections: mutual-exclusion and holdout
// groups (`group`), metrics (`metric`). A group's members are the flags (and, for a
// mutual-exclusion group, the holdouts) that name it; flags list their groups in
// `flag_prerequisites` with their prerequisites, so `dependents` finds a group's member flags.
const V5_SQLITE: &str = "
CREATE TABLE documents (
    project TEXT NOT NULL REFERENCES projects (key),
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    archived INTEGER NOT NULL,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT documents__key PRIMARY KEY (project, collection, key)
);
";

const V5_POSTGRES: &str = r#"
CREATE TABLE documents (
    project TEXT COLLATE "C" NOT NULL REFERENCES projects (key),
    collection TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    archived BOOLEAN NOT NULL,
    doc TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT documents__key PRIMARY KEY (project, collection, key)
);
"#;

// Version 6: product events, every event an application sends besides Vexil's experiment
// events (which stay in `exposures`), kept for the metrics of experiment analysis until their
// retention ends. '' stands for "none" in the optional text columns, as in `exposures`.
const V6_SQLITE: &str = "
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    event_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    groups TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    insert_id TEXT NOT NULL,
    event_properties TEXT NOT NULL,
    user_properties TEXT NOT NULL
);
CREATE INDEX events_type_time ON events (project, event_type, event_time);
CREATE INDEX events_time ON events (event_time);
";

const V6_POSTGRES: &str = r#"
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    groups TEXT COLLATE "C" NOT NULL,
    event_time BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    insert_id TEXT COLLATE "C" NOT NULL,
    event_properties TEXT COLLATE "C" NOT NULL,
    user_properties TEXT COLLATE "C" NOT NULL
);
CREATE INDEX events_type_time ON events (project, event_type, event_time);
CREATE INDEX events_time ON events (event_time);
"#;

// Version 7: the audit log. Each history entry says why (the author's comment), with which
// role, and for flags the typed changes applied; entries are listed across entities by time.
const V7_SQLITE: &str = "
ALTER TABLE history ADD COLUMN comment TEXT NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN role TEXT NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN changes TEXT NOT NULL DEFAULT '';
CREATE INDEX history_at ON history (at);
";

const V7_POSTGRES: &str = r#"
ALTER TABLE history ADD COLUMN comment TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN role TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN changes TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX history_at ON history (at);
"#;

// Version 8: webhook secret rotation with a grace period. The replaced secret keeps signing
// beside the new one until it expires; '' stands for none, as in the other optional text
// columns.
const V8_SQLITE: &str = "
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at INTEGER;
";

const V8_POSTGRES: &str = r#"
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at BIGINT;
"#;
