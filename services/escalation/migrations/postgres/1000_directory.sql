-- Who is told: contacts, the policy's lists of them, and each trigger's escalation
-- policy (policy 14.1.3, 14.2).

CREATE TABLE contacts (
    id UUID PRIMARY KEY,
    -- Bytewise order, as SQLite sorts: ListContacts pages the same on both backends.
    display_name TEXT NOT NULL COLLATE "C",
    job_title TEXT NOT NULL,
    email TEXT NOT NULL,
    deputy_id UUID REFERENCES contacts (id),
    -- The identity provider's subject (token `sub`); NULL when the contact has none.
    token_subject TEXT UNIQUE,
    active BOOLEAN NOT NULL,
    revision INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
-- ListContacts, by display name.
CREATE INDEX contacts_by_name ON contacts (display_name, id);

-- One row per list ever set (ContactListKind).
CREATE TABLE contact_lists (
    kind SMALLINT PRIMARY KEY,
    revision INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE contact_list_members (
    kind SMALLINT NOT NULL REFERENCES contact_lists (kind),
    position INTEGER NOT NULL,
    contact_id UUID NOT NULL REFERENCES contacts (id),
    PRIMARY KEY (kind, position),
    UNIQUE (kind, contact_id)
);
CREATE INDEX contact_list_members_by_contact ON contact_list_members (contact_id);

-- A trigger's policy (EscalationTrigger), as JSON: its tiers, whether it is a single
-- accountable line, and the repeat interval past the last tier.
CREATE TABLE escalation_policies (
    trigger SMALLINT PRIMARY KEY,
    policy TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by TEXT NOT NULL
);
