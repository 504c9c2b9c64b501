-- The triage queue: one entry per report intake accepted, kept from intake's event feed
-- (routing facts only, never personal data). `report_revision` is intake's revision of
-- the report as last applied, so an amendment applied late never overwrites a newer one.
-- Times are kept to the minute (for every report, so that neighbours in the queue cannot
-- date an anonymous one). `reference` is not unique: after a restore of intake, a
-- reference may be handed out again to another report.
CREATE TABLE triage_entries (
    report_id UUID PRIMARY KEY,
    reference TEXT NOT NULL,
    kind SMALLINT NOT NULL,
    category TEXT NOT NULL,
    medium SMALLINT NOT NULL,
    personal_information BOOLEAN NOT NULL,
    malware_suspected BOOLEAN NOT NULL,
    anonymous BOOLEAN NOT NULL,
    senior_notice BOOLEAN NOT NULL,
    occurred_at TIMESTAMPTZ,
    submitted_at TIMESTAMPTZ NOT NULL,
    last_activity_at TIMESTAMPTZ NOT NULL,
    follow_up_count INTEGER NOT NULL,
    report_revision INTEGER NOT NULL,
    -- 1: awaiting assessment. Assessment adds the others.
    state SMALLINT NOT NULL
);

-- The queue is read oldest first among the entries awaiting assessment: whole (and with
-- unselective filters), by category, by all three routing facts (kind, medium, personal
-- information), or by category and all three. Measured with tests/load/bench.sh triage.
CREATE INDEX triage_awaiting ON triage_entries (submitted_at, report_id) WHERE state = 1;
CREATE INDEX triage_awaiting_by_category ON triage_entries (category, submitted_at, report_id)
    WHERE state = 1;
CREATE INDEX triage_awaiting_by_routing
    ON triage_entries (kind, medium, personal_information, submitted_at, report_id)
    WHERE state = 1;
CREATE INDEX triage_awaiting_by_category_routing
    ON triage_entries (category, kind, medium, personal_information, submitted_at, report_id)
    WHERE state = 1;
-- The follow-ups counted in an entry, by intake's follow-up id: each counts once, and a
-- later assessment can tell which arrived after it.
CREATE TABLE triage_follow_ups (
    report_id UUID NOT NULL REFERENCES triage_entries (report_id),
    follow_up_id UUID NOT NULL,
    added_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (report_id, follow_up_id)
);
