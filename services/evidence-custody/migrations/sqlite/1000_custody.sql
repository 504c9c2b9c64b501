-- See the PostgreSQL migration (SQLite: ids are 16-byte blobs, times fixed-width UTC
-- text, booleans integers; one writer, so log positions need no lock).
--
-- Evidence custody: the local copy of classification's incidents and access lists, the
-- evidence items, the append-only custody log and its signed checkpoints, and unary
-- uploads in progress.

CREATE TABLE incidents (
    id BLOB PRIMARY KEY,
    reference TEXT NOT NULL,
    officer TEXT NOT NULL,
    evidence_required INTEGER NOT NULL,
    officer_revision INTEGER NOT NULL,
    flags_revision INTEGER NOT NULL
);
CREATE UNIQUE INDEX incidents_by_reference ON incidents (reference);

CREATE TABLE incident_access (
    incident_id BLOB NOT NULL,
    subject TEXT NOT NULL,
    granted INTEGER NOT NULL,
    access_sequence INTEGER NOT NULL,
    PRIMARY KEY (incident_id, subject)
);
CREATE INDEX incident_access_by_subject ON incident_access (subject, incident_id) WHERE granted;

CREATE TABLE evidence_items (
    id BLOB PRIMARY KEY,
    number INTEGER NOT NULL,
    reference TEXT NOT NULL UNIQUE,
    incident_id BLOB NOT NULL,
    kind INTEGER NOT NULL,
    description TEXT NOT NULL,
    collection TEXT NOT NULL,
    custodian TEXT NOT NULL,
    storage_location TEXT NOT NULL,
    state INTEGER NOT NULL,
    hold TEXT,
    content_sha256 TEXT,
    content_size INTEGER,
    content_key TEXT,
    content_file_name TEXT,
    content_added_at TEXT,
    content_added_by TEXT,
    parent_item_id BLOB,
    parent_reference TEXT,
    parent_sha256 TEXT,
    registered_by TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    revision INTEGER NOT NULL,
    entry_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL
);
CREATE INDEX evidence_items_by_time ON evidence_items (registered_at, id);
CREATE INDEX evidence_items_by_incident ON evidence_items (incident_id, registered_at, id);

CREATE TABLE custody_log (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL
);
INSERT INTO custody_log (id, size) VALUES (1, 0);

CREATE TABLE custody_entries (
    log_index INTEGER PRIMARY KEY,
    item_id BLOB NOT NULL,
    sequence INTEGER NOT NULL,
    action INTEGER NOT NULL,
    at TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (item_id, sequence)
);

CREATE TABLE checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root_hash TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    note TEXT NOT NULL,
    signature BLOB NOT NULL
);

-- Append-only here too (anyone who can write the file can drop these: the hash chain
-- and the signed checkpoints then show what was done).
CREATE TRIGGER custody_entries_no_update BEFORE UPDATE ON custody_entries
BEGIN SELECT RAISE(ABORT, 'custody records are append-only: UPDATE on custody_entries is refused'); END;
CREATE TRIGGER custody_entries_no_delete BEFORE DELETE ON custody_entries
BEGIN SELECT RAISE(ABORT, 'custody records are append-only: DELETE on custody_entries is refused'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'custody records are append-only: UPDATE on checkpoints is refused'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'custody records are append-only: DELETE on checkpoints is refused'); END;
CREATE TRIGGER evidence_items_no_delete BEFORE DELETE ON evidence_items
BEGIN SELECT RAISE(ABORT, 'custody records are append-only: DELETE on evidence_items is refused'); END;
CREATE TRIGGER custody_log_no_delete BEFORE DELETE ON custody_log
BEGIN SELECT RAISE(ABORT, 'custody records are append-only: DELETE on custody_log is refused'); END;
CREATE TRIGGER custody_log_grows BEFORE UPDATE ON custody_log WHEN NEW.size <> OLD.size + 1
BEGIN SELECT RAISE(ABORT, 'the custody log only grows, one entry at a time'); END;
CREATE TRIGGER evidence_items_keep BEFORE UPDATE ON evidence_items
WHEN NEW.id IS NOT OLD.id OR NEW.number IS NOT OLD.number OR NEW.reference IS NOT OLD.reference
    OR NEW.incident_id IS NOT OLD.incident_id OR NEW.kind IS NOT OLD.kind
    OR NEW.description IS NOT OLD.description OR NEW.collection IS NOT OLD.collection
    OR NEW.registered_by IS NOT OLD.registered_by OR NEW.registered_at IS NOT OLD.registered_at
    OR NEW.parent_item_id IS NOT OLD.parent_item_id
    OR NEW.parent_reference IS NOT OLD.parent_reference
    OR NEW.parent_sha256 IS NOT OLD.parent_sha256
    OR (OLD.content_sha256 IS NOT NULL AND (
        NEW.content_sha256 IS NOT OLD.content_sha256
        OR NEW.content_key IS NOT OLD.content_key
        OR NEW.content_size IS NOT OLD.content_size))
    OR NEW.revision NOT IN (OLD.revision, OLD.revision + 1)
    OR NEW.entry_count NOT IN (OLD.entry_count, OLD.entry_count + 1)
    OR (NEW.entry_count = OLD.entry_count AND NEW.head_hash IS NOT OLD.head_hash)
    OR (NEW.entry_count = OLD.entry_count + 1 AND NOT EXISTS (
        SELECT 1 FROM custody_entries e WHERE e.item_id = NEW.id
            AND e.sequence = NEW.entry_count AND e.entry_hash = NEW.head_hash))
BEGIN SELECT RAISE(ABORT, 'evidence items keep what was recorded of them: the change is refused'); END;

CREATE TABLE uploads (
    id BLOB PRIMARY KEY,
    item_id BLOB NOT NULL,
    created_by TEXT NOT NULL,
    file_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    committed_size INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finalized INTEGER NOT NULL
);
CREATE INDEX uploads_by_time ON uploads (updated_at);

CREATE TABLE upload_chunks (
    upload_id BLOB NOT NULL,
    "offset" INTEGER NOT NULL,
    length INTEGER NOT NULL,
    content_key TEXT NOT NULL,
    PRIMARY KEY (upload_id, "offset")
);
