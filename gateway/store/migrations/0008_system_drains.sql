-- When each system last drained each of its queues (issue 8; docs/monitoring.md), as the
-- nodes flush it from memory every alert interval: per (system, queue) for a call without
-- a selector (kind_namespace = kind_root = '') and per selected kind. Invariants: the
-- later time wins (`max`), so any node's flush only moves it forward; a row per (system,
-- queue, kind), at most a few hundred per system (each node keeps the 256 most recent
-- selected kinds).
CREATE TABLE system_drains (
    system         TEXT NOT NULL,
    queue          INTEGER NOT NULL,
    kind_namespace TEXT NOT NULL,
    kind_root      TEXT NOT NULL,
    drained_at     INTEGER NOT NULL,
    PRIMARY KEY (system, queue, kind_namespace, kind_root)
) WITHOUT ROWID;
