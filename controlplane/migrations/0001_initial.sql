-- Weft control-plane schema, version 1. The same text runs on SQLite and PostgreSQL: only TEXT
-- and BIGINT columns, no engine-specific types, no autoincrement (numbers come from
-- revision_counter). Statements are separated by semicolons at line ends; no semicolon may
-- appear inside a statement.

-- Every API resource, as its JSON document (crate::model types) plus the columns queries need.
CREATE TABLE resources (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    parent_id TEXT,
    ref_id TEXT,
    device_id TEXT,
    visible BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX resources_by_project ON resources (kind, project_id);
CREATE INDEX resources_by_parent ON resources (kind, parent_id);
CREATE INDEX resources_by_ref ON resources (kind, ref_id);
CREATE INDEX resources_by_device ON resources (kind, device_id);
CREATE INDEX resources_by_name ON resources (kind, name);

-- One row per allocated address: the primary key is what makes allocation race-free.
CREATE TABLE ip_allocations (
    subnet_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    network_id TEXT NOT NULL,
    port_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX ip_allocations_by_port ON ip_allocations (port_id);

-- Who got which address when, and who gave it back (beyond Neutron).
CREATE TABLE allocation_history (
    revision BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    action TEXT NOT NULL,
    subnet_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    port_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (revision, seq)
);
CREATE INDEX allocation_history_by_subnet ON allocation_history (subnet_id, revision);
CREATE INDEX allocation_history_by_port ON allocation_history (port_id, revision);

-- MACs are unique per network.
CREATE TABLE mac_addresses (
    network_id TEXT NOT NULL,
    mac_address TEXT NOT NULL,
    port_id TEXT NOT NULL,
    PRIMARY KEY (network_id, mac_address)
);

-- Segments: a VNI (network_type vxlan) or a physical network (flat) belongs to one network.
CREATE TABLE segments (
    network_type TEXT NOT NULL,
    segment_key TEXT NOT NULL,
    network_id TEXT NOT NULL,
    PRIMARY KEY (network_type, segment_key)
);
CREATE INDEX segments_by_network ON segments (network_id);

-- The default security group of each project (at most one, even under concurrent requests).
CREATE TABLE default_security_groups (
    project_id TEXT NOT NULL PRIMARY KEY,
    security_group_id TEXT NOT NULL
);

-- The ordered log of changes: one row per resource changed, numbered by revision_counter.
CREATE TABLE revisions (
    revision BIGINT NOT NULL PRIMARY KEY,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    project_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at TEXT NOT NULL
);

-- One row: the last revision handed out. Writers lock it last, just before commit, so
-- revisions become visible in order.
CREATE TABLE revision_counter (
    id BIGINT NOT NULL PRIMARY KEY,
    revision BIGINT NOT NULL
);
INSERT INTO revision_counter (id, revision) VALUES (1, 0);
