//! Escalation's store: functions that take the caller's transaction (writes) or any
//! connection (reads), each query written once for both backends (the kit's design
//! note, section 2).

mod batch;
mod directory;
mod escalation;
mod mail;
mod subjects;

pub use batch::{
    add_deadlines_many, insert_nominees_many, insert_tiers_many, insert_timeline_many,
    mark_missed_many, queue_mail_many, save_escalations_many,
};
pub use directory::{
    ContactRow, ListRow, NomineeContact, PolicyRow, contact, contact_by_subject, contacts_among,
    deputising_for, hold_contact, insert_contact, is_empty, list_contacts, lists, lock_directory,
    nominees, policies, policy, remove_from_lists, save_contact, set_list, set_policy,
};
pub use escalation::{
    DeadlineRow, EscalationFilter, EscalationRow, MailRow, NewMail, NomineeRow, TierRow,
    TimelineRow, acknowledge, add_deadline, append_timeline, clear_deadlines, escalation,
    hold_escalation, hold_escalations, hold_open_for_subject, insert_escalation, insert_nominee,
    insert_tier, list_escalations, mail_of, mark_missed, next_due, nominees_of, nominees_of_many,
    park_deadline, queue_mail, save_escalation, take_due, tiers_of, timeline,
};
pub use mail::{
    ClaimedMail, MAIL_FAILED, MAIL_SENT, claim_mail, mark_failed, mark_sent, next_mail_due,
    renew_claim, retry_mail, take_timeline_sequence,
};
pub use subjects::{
    OverdueRow, SubjectRow, hold_subject, next_overdue, provider_fixed, save_subject, subject,
    take_overdue, watch_provider,
};
