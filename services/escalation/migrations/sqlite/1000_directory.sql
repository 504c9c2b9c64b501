-- Who is told: contacts, the policy's lists of them, and each trigger's escalation
-- policy. See the PostgreSQL migration (SQLite: ids are 16-byte blobs, times
-- fixed-width UTC text, booleans integers).

CREATE TABLE contacts (
    id BLOB PRIMARY KEY,
    display_name TEXT NOT NULL,
    job_title TEXT NOT NULL,
    email TEXT NOT NULL,
    deputy_id BLOB REFERENCES contacts (id),
    token_subject TEXT UNIQUE,
    active INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX contacts_by_name ON contacts (display_name, id);

CREATE TABLE contact_lists (
    kind INTEGER PRIMARY KEY,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE contact_list_members (
    kind INTEGER NOT NULL REFERENCES contact_lists (kind),
    position INTEGER NOT NULL,
    contact_id BLOB NOT NULL REFERENCES contacts (id),
    PRIMARY KEY (kind, position),
    UNIQUE (kind, contact_id)
);
CREATE INDEX contact_list_members_by_contact ON contact_list_members (contact_id);

CREATE TABLE escalation_policies (
    trigger INTEGER PRIMARY KEY,
    policy TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
