-- A test consumer's own tables: every application of an event (in order), and a count
-- per report that a second application would visibly double.
CREATE TABLE applied (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL,
    reference TEXT NOT NULL,
    replica TEXT NOT NULL
);
CREATE TABLE tallies (
    reference TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
