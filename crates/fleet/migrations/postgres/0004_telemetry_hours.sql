-- PostgreSQL dialect of ../sqlite/ (same versions; BIGINT for INTEGER, identity columns).
-- Hourly telemetry aggregates: per-minute rows older than the roll-up age
-- (2 hours by default) are merged into one row per cohort and hour, in the
-- same transaction that deletes them, so the minute table stays bounded.
-- Queries live in src/db/sql_telemetry.rs.

CREATE TABLE telemetry_hours (
    minute        BIGINT NOT NULL,   -- the hour's first minute (unix seconds / 60)
    device_class  TEXT NOT NULL,
    channel       TEXT NOT NULL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    agg           TEXT NOT NULL,      -- Agg JSON (counts and histograms)
    PRIMARY KEY (minute, device_class, channel, model, model_version)
);
