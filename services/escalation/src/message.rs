//! What the messages say: the reference, the level, a summary of the routing facts,
//! what is asked and how to acknowledge. Nothing else about a report or incident is
//! known to escalation, so nothing that could identify a reporter can be in a message.

use custos_kit::storage::DbTime;
use time::format_description::well_known::Rfc3339;

use crate::{directory::Level, store::EscalationRow};

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// A tier was reached: act and acknowledge.
    Act,
    /// A reminder to those who have not acted.
    Remind,
    /// Past the last tier: senior management is told who did not act.
    Inform,
    /// A tier names someone who cannot acknowledge (no token subject): told, not asked.
    Tell,
}

fn when(at: DbTime) -> String {
    at.get().format(&Rfc3339).unwrap_or_default()
}

/// A message's subject and body: the reference, the level, a summary of the routing
/// facts, what is asked and how to acknowledge. Nothing else about the report or the
/// incident is known here, so nothing that could identify a reporter can be in it.
pub(crate) fn compose(
    row: &EscalationRow,
    ask: Ask,
    deadline: Option<DbTime>,
    missing: &[String],
) -> (String, String) {
    let facts = &row.facts.0;
    let what = row.trigger.describe();
    let subject = match ask {
        Ask::Act => format!("[custos] {}: {what}: action required", row.reference),
        Ask::Remind => format!(
            "[custos] Reminder: {}: {what}: action required",
            row.reference
        ),
        Ask::Inform => format!("[custos] Not acted on: {}: {what}", row.reference),
        Ask::Tell => format!("[custos] For your information: {}: {what}", row.reference),
    };
    let mut body = format!("Reference: {}\nWhat: {what}\n", row.reference);
    if let Some(level) = facts
        .level
        .and_then(<Level as custos_kit::storage::DbEnum>::from_db)
    {
        body.push_str(&format!(
            "Level: {}\n",
            level.name().trim_start_matches("IMPACT_LEVEL_")
        ));
    }
    if !facts.category.is_empty() {
        body.push_str(&format!("Category: {}\n", facts.category));
    }
    let mut involves = Vec::new();
    if facts.service_affecting {
        involves.push("service affecting");
    }
    if facts.personal {
        involves.push("personal information");
    }
    if facts.paper {
        involves.push("paper records");
    }
    if !involves.is_empty() {
        body.push_str(&format!("Involves: {}\n", involves.join(", ")));
    }
    body.push('\n');
    match ask {
        Ask::Act | Ask::Remind => {
            body.push_str(
                "You are one of its nominees. Every nominee must act and acknowledge: \
                 someone else's acknowledgement does not stand for yours (policy 14.1.3).\n",
            );
            if let Some(d) = deadline {
                body.push_str(&format!(
                    "Acknowledge by {}, or the next people in the chain are told.\n",
                    when(d)
                ));
            }
            body.push_str(&format!(
                "\nTo acknowledge, with a note of the action you took:\n  custos escalation ack {} --note \"...\"\n\
                 (or EscalationService.AcknowledgeEscalation with escalation_id {}).\n",
                row.id, row.id
            ));
        }
        Ask::Tell => {
            body.push_str(
                "You are told of it for your information: no acknowledgement is asked of you \
                 (the nominees who must act have been told too).\n",
            );
        }
        Ask::Inform => {
            body.push_str(&format!(
                "Every tier of its escalation chain has passed its deadline. Not acted on by: {}.\n\
                 Escalation: {} (custos escalation show {}).\n",
                if missing.is_empty() {
                    "nobody named".to_owned()
                } else {
                    missing.join(", ")
                },
                row.id,
                row.id
            ));
        }
    }
    (subject, body)
}

/// A copy of a message that failed for good, for the nominee's deputy.
pub(crate) fn for_deputy(
    nominee: &str,
    subject: &str,
    body: &str,
    error: &str,
) -> (String, String) {
    (
        format!(
            "[custos] For {nominee}, whose mail failed: {}",
            subject.trim_start_matches("[custos] ")
        ),
        format!(
            "This message was for {nominee}, whose address could not take it ({error}). You are \
             their deputy: reach them, or see that the right people act. Only the nominees can \
             acknowledge; the link below is theirs.\n\n--- The message ---\n{body}"
        ),
    )
}
