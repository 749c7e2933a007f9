-- The fleet's durable state. Runtime-checked queries live in src/db/sqlite.rs.
-- Times are unix seconds; JSON columns hold serde_json of the Rust types.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE app_keys (
    hash       TEXT PRIMARY KEY,      -- sha256 hex of the key
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE releases (
    model         TEXT NOT NULL,
    version       TEXT NOT NULL,
    meta          TEXT NOT NULL,      -- ReleaseMeta JSON
    published_at  INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    PRIMARY KEY (model, version)
);

CREATE TABLE variants (
    model        TEXT NOT NULL,
    version      TEXT NOT NULL,
    digest       TEXT NOT NULL,
    length       INTEGER NOT NULL,
    quantization TEXT NOT NULL,
    PRIMARY KEY (model, version, quantization),
    FOREIGN KEY (model, version) REFERENCES releases (model, version)
);
CREATE INDEX variants_digest ON variants (digest);

CREATE TABLE channels (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

-- Every release a channel was given, in order; the newest one not revoked is current.
CREATE TABLE channel_releases (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL REFERENCES channels (name),
    model   TEXT NOT NULL,
    version TEXT NOT NULL,
    at      INTEGER NOT NULL,
    FOREIGN KEY (model, version) REFERENCES releases (model, version)
);

CREATE TABLE rollouts (
    id               INTEGER PRIMARY KEY,
    body             TEXT NOT NULL,   -- Rollout JSON
    model            TEXT NOT NULL,
    version          TEXT NOT NULL,
    channel          TEXT NOT NULL,
    state            TEXT NOT NULL
);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,  -- sha256 hex of the device token
    channel       TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    last_seen_at  INTEGER,
    profile       TEXT,                  -- DeviceProfile JSON
    blocked       TEXT                   -- {model: [Blocked]} JSON
);

CREATE TABLE pins (
    device_id TEXT NOT NULL REFERENCES devices (id),
    model     TEXT NOT NULL,
    version   TEXT NOT NULL,
    PRIMARY KEY (device_id, model)
);

-- The last manifest issued to each device for each model, byte for byte.
CREATE TABLE issued (
    device_id        TEXT NOT NULL REFERENCES devices (id),
    model            TEXT NOT NULL,
    manifest_version INTEGER NOT NULL,
    content_key      TEXT NOT NULL,
    model_version    TEXT NOT NULL,
    expires_at       INTEGER NOT NULL,
    envelope         TEXT NOT NULL,
    PRIMARY KEY (device_id, model)
);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL                 -- JSON
);
