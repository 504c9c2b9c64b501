-- Evidence custody: the local copy of classification's incidents and access lists, the
-- evidence items, the append-only custody log and its signed checkpoints, and unary
-- uploads in progress.

-- Incidents as classification's feed describes them (no titles, no people but the
-- officer's and the access list's token subjects).
CREATE TABLE incidents (
    id UUID PRIMARY KEY,
    reference TEXT NOT NULL,
    -- The responsible officer (a token subject), '' when none.
    officer TEXT NOT NULL,
    evidence_required BOOLEAN NOT NULL,
    -- classification's incident revision of the officer and flags last applied.
    officer_revision INTEGER NOT NULL,
    flags_revision INTEGER NOT NULL
);
CREATE UNIQUE INDEX incidents_by_reference ON incidents (reference);

-- Each incident's access list: a subject sees the incident's evidence while granted.
CREATE TABLE incident_access (
    incident_id UUID NOT NULL,
    subject TEXT NOT NULL,
    granted BOOLEAN NOT NULL,
    -- The incident's access_sequence last applied for this subject.
    access_sequence INTEGER NOT NULL,
    PRIMARY KEY (incident_id, subject)
);
-- ListEvidence: the incidents a caller may see.
CREATE INDEX incident_access_by_subject ON incident_access (subject, incident_id) WHERE granted;

CREATE SEQUENCE evidence_number_seq;

CREATE TABLE evidence_items (
    id UUID PRIMARY KEY,
    number BIGINT NOT NULL,
    reference TEXT NOT NULL UNIQUE,
    incident_id UUID NOT NULL,
    kind SMALLINT NOT NULL,
    description TEXT NOT NULL,
    -- How it came into custody (JSON).
    collection TEXT NOT NULL,
    custodian TEXT NOT NULL,
    storage_location TEXT NOT NULL,
    state SMALLINT NOT NULL,
    -- The legal hold (JSON) while on hold.
    hold TEXT,
    content_sha256 TEXT,
    content_size BIGINT,
    content_key TEXT,
    content_file_name TEXT,
    content_added_at TIMESTAMPTZ,
    content_added_by TEXT,
    parent_item_id UUID,
    parent_reference TEXT,
    parent_sha256 TEXT,
    registered_by TEXT NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    revision INTEGER NOT NULL,
    -- The chain's length and its last entry's hash.
    entry_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL
);
-- ListEvidence, oldest first; by incident.
CREATE INDEX evidence_items_by_time ON evidence_items (registered_at, id);
CREATE INDEX evidence_items_by_incident ON evidence_items (incident_id, registered_at, id);

-- The custody log's length: appending takes this row, so positions are given one
-- transaction at a time, in commit order.
CREATE TABLE custody_log (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO custody_log (id, size) VALUES (1, 0);

CREATE TABLE custody_entries (
    -- The position in the whole log (the Merkle tree's leaf index).
    log_index BIGINT PRIMARY KEY,
    item_id UUID NOT NULL,
    sequence INTEGER NOT NULL,
    action SMALLINT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    previous_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL,
    -- The service's Ed25519 signature over the entry hash (hexadecimal): an entry
    -- written by anyone else (the database role itself) does not verify.
    signature TEXT NOT NULL,
    -- The canonical JSON body that was hashed, byte for byte.
    body TEXT NOT NULL,
    UNIQUE (item_id, sequence)
);

CREATE TABLE checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root_hash TEXT NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL,
    key_id TEXT NOT NULL,
    -- The signed note, and the signature over it.
    note TEXT NOT NULL,
    signature BYTEA NOT NULL
);

-- Append-only, enforced by the database for every role (the service's own included):
-- entries, checkpoints and items are never deleted, entries and checkpoints never
-- changed. (A superuser can still disable triggers: the hash chain and the signed
-- checkpoints then show what was done.)
CREATE FUNCTION custody_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'custody records are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER custody_entries_append_only BEFORE UPDATE OR DELETE ON custody_entries
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER custody_entries_no_truncate BEFORE TRUNCATE ON custody_entries
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER evidence_items_no_delete BEFORE DELETE ON evidence_items
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER evidence_items_no_truncate BEFORE TRUNCATE ON evidence_items
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER custody_log_no_delete BEFORE DELETE ON custody_log
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();
CREATE TRIGGER custody_log_no_truncate BEFORE TRUNCATE ON custody_log
    FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only();

-- The log only grows, one entry at a time (a jump would leave positions no entry has).
CREATE FUNCTION custody_log_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.size <> OLD.size + 1 THEN
        RAISE EXCEPTION 'the custody log only grows, one entry at a time: size % to % is refused', OLD.size, NEW.size
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER custody_log_grows BEFORE UPDATE ON custody_log
    FOR EACH ROW EXECUTE FUNCTION custody_log_grows();

-- An item keeps what was recorded of it: what it is, where it came from, and its
-- content once added; its chain only grows. (Its state, custodian and hold change
-- through the service's verbs; VerifyChain checks them against the chain.) Its count
-- and head move one entry at a time, to an entry that exists.
CREATE FUNCTION evidence_items_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.number <> OLD.number OR NEW.reference <> OLD.reference
        OR NEW.incident_id <> OLD.incident_id OR NEW.kind <> OLD.kind
        OR NEW.description <> OLD.description OR NEW.collection <> OLD.collection
        OR NEW.registered_by <> OLD.registered_by OR NEW.registered_at <> OLD.registered_at
        OR NEW.parent_item_id IS DISTINCT FROM OLD.parent_item_id
        OR NEW.parent_reference IS DISTINCT FROM OLD.parent_reference
        OR NEW.parent_sha256 IS DISTINCT FROM OLD.parent_sha256
        OR (OLD.content_sha256 IS NOT NULL AND (
            NEW.content_sha256 IS DISTINCT FROM OLD.content_sha256
            OR NEW.content_key IS DISTINCT FROM OLD.content_key
            OR NEW.content_size IS DISTINCT FROM OLD.content_size))
        OR NEW.revision NOT IN (OLD.revision, OLD.revision + 1)
        OR NEW.entry_count NOT IN (OLD.entry_count, OLD.entry_count + 1)
        OR (NEW.entry_count = OLD.entry_count AND NEW.head_hash <> OLD.head_hash)
        OR (NEW.entry_count = OLD.entry_count + 1 AND NOT EXISTS (
            SELECT 1 FROM custody_entries e WHERE e.item_id = NEW.id
                AND e.sequence = NEW.entry_count AND e.entry_hash = NEW.head_hash)) THEN
        RAISE EXCEPTION 'evidence items keep what was recorded of them: the change to % is refused', OLD.reference
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER evidence_items_keep BEFORE UPDATE ON evidence_items
    FOR EACH ROW EXECUTE FUNCTION evidence_items_keep();

-- Unary uploads in progress, and their chunks.
CREATE TABLE uploads (
    id UUID PRIMARY KEY,
    item_id UUID NOT NULL,
    created_by TEXT NOT NULL,
    file_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    committed_size BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- The last chunk's time: an upload left alone this long expires.
    updated_at TIMESTAMPTZ NOT NULL,
    finalized BOOLEAN NOT NULL
);
CREATE INDEX uploads_by_time ON uploads (updated_at);

CREATE TABLE upload_chunks (
    upload_id UUID NOT NULL,
    "offset" BIGINT NOT NULL,
    length BIGINT NOT NULL,
    content_key TEXT NOT NULL,
    PRIMARY KEY (upload_id, "offset")
);
