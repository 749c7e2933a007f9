-- Users, API tokens and console sessions (issue #22). Secrets are never
-- stored: a password as its argon2id PHC string, a token and a session
-- cookie as the SHA-256 of their value (they are 256-bit random).

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,          -- viewer | operator | admin
    password_hash TEXT NOT NULL,          -- argon2id, PHC string
    created_at    INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,  -- consecutive
    locked_until  INTEGER                 -- unix seconds; NULL: not locked
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,          -- public, e.g. tok_1a2b3c4d5e6f
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,      -- sha256:<hex> of the secret
    created_by TEXT NOT NULL,             -- the audit actor who made it
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE sessions (
    hash       TEXT PRIMARY KEY,          -- sha256:<hex> of the cookie value
    user_name  TEXT NOT NULL,
    csrf_hash  TEXT NOT NULL,             -- sha256:<hex> of its CSRF token
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);
