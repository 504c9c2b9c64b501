//! Classification's store: functions that take the caller's transaction (writes) or any
//! connection (reads), each query written once for both backends (the kit's design
//! note, section 2).

mod triage;

pub use triage::{
    Amendment, NewEntry, Page, TriageEntryRow, TriageFilter, add_follow_up, amend, entry, list,
    queue,
};
