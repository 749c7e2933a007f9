-- PostgreSQL dialect of ../sqlite/ (same versions; BIGINT for INTEGER, identity columns).
-- Several fleet replicas on one database (issue #21). Every admin commit
-- that changes the fleet's state also records its changes here, at the
-- next position (handed out in commit order), so the other replicas replay
-- them in order; leases
-- give background work (soak timers, automatic halts) to one replica at a
-- time, with a fencing token that grows with every new holder. Queries
-- live in src/db/sql_replicas.rs.

CREATE TABLE change_log (
    id      BIGINT PRIMARY KEY,  -- the position: 1, 2, 3… in commit order
    changes TEXT NOT NULL         -- [Change] JSON
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    fence      BIGINT NOT NULL,  -- +1 whenever the holder changes
    expires_at BIGINT NOT NULL   -- unix seconds
);
