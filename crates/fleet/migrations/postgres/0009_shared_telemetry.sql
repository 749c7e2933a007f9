-- PostgreSQL dialect of ../sqlite/ (same versions; BIGINT for INTEGER).
-- Telemetry shared by replicas (issue #21). Where several replicas share
-- the database, a batch is merged into its minute (or hour) rows in the
-- transaction that records its id, before the device hears it was taken;
-- each written row carries the id of the transaction that wrote it
-- (`xid`), so a replica refreshes its cache with the rows written since
-- its last look; distinct devices per cohort are kept here, by a hash of
-- the device id, with the last minute each reported. Queries live in
-- src/db/sql_telemetry_shared.rs. A single fleet (no replicas) leaves
-- `xid` at 0 and `telemetry_devices` empty.

ALTER TABLE telemetry_minutes ADD COLUMN xid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE telemetry_hours ADD COLUMN xid BIGINT NOT NULL DEFAULT 0;
CREATE INDEX telemetry_minutes_xid ON telemetry_minutes (xid);
CREATE INDEX telemetry_hours_xid ON telemetry_hours (xid);

CREATE TABLE telemetry_devices (
    device_class  TEXT NOT NULL,
    channel       TEXT NOT NULL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    device        BIGINT NOT NULL,   -- a 64-bit hash of the device id
    minute        BIGINT NOT NULL,   -- the last minute it reported from
    xid           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (device_class, channel, model, model_version, device)
);
CREATE INDEX telemetry_devices_xid ON telemetry_devices (xid);
CREATE INDEX telemetry_devices_minute ON telemetry_devices (minute);
