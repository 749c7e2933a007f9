-- PostgreSQL dialect of ../sqlite/ (same versions; BIGINT for INTEGER, identity columns).
-- Sealed models (issue #23): device public keys (X25519, standard base64;
-- NULL for devices that registered without one, agents before sealed
-- models), device revocation (no content key is released to a revoked
-- device), and the content keys of sealed blobs (set by an admin, never
-- shown, released only wrapped to one device's public key).

ALTER TABLE devices ADD COLUMN public_key TEXT;
ALTER TABLE devices ADD COLUMN revoked_at BIGINT;

CREATE TABLE content_keys (
    digest     TEXT PRIMARY KEY,   -- the sealed blob's sha256:<hex>
    key        TEXT NOT NULL,      -- 32 bytes, standard base64
    created_at BIGINT NOT NULL
);
