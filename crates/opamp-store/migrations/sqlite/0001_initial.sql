-- opamp-store schema version 1 (SQLite). Keep in step with ../postgres/0001_initial.sql.
-- Conventions: timestamps are INTEGER milliseconds since the Unix epoch (UTC); JSON is TEXT;
-- booleans are INTEGER 0/1; instance uids are TEXT in canonical lowercase UUID form.

CREATE TABLE agents (
    uid TEXT PRIMARY KEY NOT NULL,
    identifying_attributes TEXT NOT NULL DEFAULT '{}',
    non_identifying_attributes TEXT NOT NULL DEFAULT '{}',
    capabilities INTEGER NOT NULL DEFAULT 0,
    health TEXT,
    effective_config TEXT,
    effective_config_hash TEXT,
    rcs_status TEXT,
    rcs_hash TEXT,
    rcs_error TEXT,
    package_statuses TEXT,
    custom_capabilities TEXT,
    available_components TEXT,
    transport TEXT,
    connected INTEGER NOT NULL DEFAULT 0,
    connected_via TEXT,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE INDEX agents_connected ON agents (connected, uid);
CREATE INDEX agents_connected_via ON agents (connected_via) WHERE connected = 1;

-- Scalar description attributes, one row each, for label filters in SQL.
CREATE TABLE agent_attributes (
    uid TEXT NOT NULL REFERENCES agents (uid) ON DELETE CASCADE,
    identifying INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (uid, identifying, key)
);
CREATE INDEX agent_attributes_kv ON agent_attributes (key, value);

-- Operator-set labels.
CREATE TABLE agent_labels (
    uid TEXT NOT NULL REFERENCES agents (uid) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (uid, key)
);
CREATE INDEX agent_labels_kv ON agent_labels (key, value);

CREATE TABLE configs (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    latest_version INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE config_versions (
    config TEXT NOT NULL REFERENCES configs (name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    config_map TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    rollback_of INTEGER,
    PRIMARY KEY (config, version)
);
CREATE INDEX config_versions_hash ON config_versions (hash);

CREATE TABLE agent_groups (
    name TEXT PRIMARY KEY NOT NULL,
    selector TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config TEXT NOT NULL REFERENCES configs (name),
    version INTEGER,
    target_kind TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    author TEXT NOT NULL,
    UNIQUE (target_kind, target),
    FOREIGN KEY (config, version) REFERENCES config_versions (config, version)
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_target ON audit_log (target, id);

CREATE TABLE agent_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL REFERENCES agents (uid) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX agent_events_uid ON agent_events (uid, id);

CREATE TABLE pending_commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL REFERENCES agents (uid) ON DELETE CASCADE,
    command TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    author TEXT NOT NULL
);
CREATE INDEX pending_commands_uid ON pending_commands (uid, id);
