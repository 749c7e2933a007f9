-- PostgreSQL dialect of ../sqlite/ (same versions; BIGINT for INTEGER, identity columns).
-- Telemetry aggregates (one row per cohort and minute) and the batch ids
-- already counted. Queries live in src/db/sql_telemetry.rs.

CREATE TABLE telemetry_minutes (
    minute        BIGINT NOT NULL,   -- unix seconds / 60
    device_class  TEXT NOT NULL,
    channel       TEXT NOT NULL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    agg           TEXT NOT NULL,      -- Agg JSON (counts and histograms)
    PRIMARY KEY (minute, device_class, channel, model, model_version)
);

CREATE TABLE telemetry_batches (
    device_id   TEXT NOT NULL,
    batch_id    TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, batch_id)
);

CREATE INDEX telemetry_batches_received ON telemetry_batches (received_at);
