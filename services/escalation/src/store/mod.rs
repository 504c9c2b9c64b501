//! Escalation's store: functions that take the caller's transaction (writes) or any
//! connection (reads), each query written once for both backends (the kit's design
//! note, section 2).

mod directory;

pub use directory::{
    ContactRow, ListRow, NomineeContact, PolicyRow, contact, contact_by_subject, contacts_among,
    deputising_for, hold_contact, insert_contact, is_empty, list_contacts, lists, lock_for_seeding,
    nominees, policies, policy, remove_from_lists, save_contact, set_list, set_policy,
};
