//! Evidence-custody's store: functions that take the caller's transaction (writes) or
//! any connection (reads), each query written once for both backends (the kit's design
//! note, section 2).

mod checkpoints;
mod entries;
mod incidents;
mod items;
mod uploads;

pub use checkpoints::{CheckpointRow, checkpoints, insert_checkpoint, latest_checkpoint};
pub use entries::{NewEntry, append, entries_of, log_leaves, log_size, signed_leaves};
pub use incidents::{
    IncidentRow, can_see, declare_incident, incident, incident_by_reference, set_access, set_flags,
    set_officer, visible_incidents,
};
pub use items::{
    ItemFilter, ItemRow, hold_item, hold_items, insert_item, item, item_by_reference, list_items,
    save_item,
};
pub use uploads::{
    UploadRow, add_chunk, chunks_of, delete_upload, expired_uploads, hold_upload, insert_upload,
    set_finalized, upload,
};
