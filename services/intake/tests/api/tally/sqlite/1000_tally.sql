CREATE TABLE applied (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    reference TEXT NOT NULL,
    replica TEXT NOT NULL
);
CREATE TABLE tallies (
    reference TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
