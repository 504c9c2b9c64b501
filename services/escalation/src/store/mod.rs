//! Escalation's store: functions that take the caller's transaction (writes) or any
//! connection (reads), each query written once for both backends (the kit's design
//! note, section 2).

mod directory;
mod escalation;

pub use directory::{
    ContactRow, ListRow, NomineeContact, PolicyRow, contact, contact_by_subject, contacts_among,
    deputising_for, hold_contact, insert_contact, is_empty, list_contacts, lists, lock_for_seeding,
    nominees, policies, policy, remove_from_lists, save_contact, set_list, set_policy,
};
pub use escalation::{
    DeadlineRow, EscalationRow, MailRow, NewMail, NomineeRow, TimelineRow, acknowledge,
    add_deadline, append_timeline, clear_deadlines, escalation, hold_escalation,
    hold_open_for_subject, insert_escalation, insert_nominee, mail_of, mark_missed, next_due,
    nominees_of, queue_mail, save_escalation, take_due, timeline,
};
