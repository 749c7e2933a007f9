-- When each device was first issued each release: the fragmentation
-- view's time for a rollout to reach X % of its targeted devices.
-- Queries live in src/db/sqlite.rs.

CREATE TABLE first_issued (
    device_id     TEXT NOT NULL REFERENCES devices (id),
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    at            INTEGER NOT NULL,   -- unix seconds; 0: before this table
    PRIMARY KEY (device_id, model, model_version)
);

-- Devices already on a release when this migration runs: the time is
-- unknown (0), which the view counts as reached when the rollout began.
INSERT INTO first_issued (device_id, model, model_version, at)
    SELECT device_id, model, model_version, 0 FROM issued;
