//! Deadlines falling due: a reminder, the next tier, or senior management past the last
//! and the reminder repeating. A timer applies a batch of them at once (one read of
//! their escalations and nominees, one multi-row write per table).

use std::collections::HashMap;

use custos_kit::storage::{DbTime, Tx};
use uuid::Uuid;

use super::{Writes, mail, new_id, note, reach};
use crate::{
    directory::{ListKind, Tier},
    error::EscalationError,
    escalation::{DeadlineKind, EscalationState, TimelineKind},
    message::Ask,
    store::{self, DeadlineRow, EscalationRow, NomineeRow},
};

/// Reminds the tier's nominees who have not acknowledged (`nominees`: the escalation's).
async fn remind(
    tx: &mut Tx,
    w: &mut Writes,
    row: &mut EscalationRow,
    nominees: &[NomineeRow],
    tier: i32,
    at: DbTime,
) -> Result<Vec<String>, EscalationError> {
    let waiting: Vec<&NomineeRow> = nominees
        .iter()
        .filter(|n| n.tier == tier && n.acknowledged_at.is_none())
        .collect();
    let ids: Vec<Uuid> = waiting.iter().map(|n| n.contact_id).collect();
    let contacts = store::contacts_among(&mut *tx, &ids).await?;
    for n in &waiting {
        // A contact deactivated since is reminded no more (their absence stays recorded).
        if let Some(c) = contacts.iter().find(|c| c.id == n.contact_id && c.active) {
            let to = store::NomineeContact {
                id: c.id,
                display_name: c.display_name.clone(),
                email: c.email.clone(),
                can_act: true,
            };
            let deadline = row.next_deadline_at.filter(|_| !row.exhausted);
            mail(w, row, &to, tier, (Ask::Remind, deadline, &[]), at);
        }
    }
    Ok(waiting
        .into_iter()
        .map(|n| n.display_name.clone())
        .collect())
}

/// Applies a deadline taken from the table ([`store::take_due`]) at `now`. A deadline
/// of an escalation that has moved on (satisfied, stopped, another tier) does nothing.
pub async fn fire(tx: &mut Tx, deadline: &DeadlineRow, now: DbTime) -> Result<(), EscalationError> {
    fire_batch(tx, std::slice::from_ref(deadline), now).await
}

/// Applies deadlines taken from the table at `now`, in order, reading their escalations
/// and nominees at once and writing what they add many rows at a time.
pub async fn fire_batch(
    tx: &mut Tx,
    deadlines: &[DeadlineRow],
    now: DbTime,
) -> Result<(), EscalationError> {
    let mut ids: Vec<Uuid> = deadlines.iter().map(|d| d.escalation_id).collect();
    ids.sort();
    ids.dedup();
    let mut rows: HashMap<Uuid, EscalationRow> = store::hold_escalations(tx, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut nominees: HashMap<Uuid, Vec<NomineeRow>> = HashMap::new();
    for n in store::nominees_of_many(&mut *tx, &ids).await? {
        nominees.entry(n.escalation_id).or_default().push(n);
    }
    let mut w = Writes::default();
    // Escalations written to since the last flush, and those whose nominees were read
    // before a flush that may have changed them.
    let mut touched = std::collections::HashSet::new();
    let mut stale = std::collections::HashSet::new();
    for d in deadlines {
        if touched.contains(&d.escalation_id) {
            // A second deadline of one escalation: what the first wrote is read again.
            w.flush(tx).await?;
            stale.extend(touched.drain());
        }
        if stale.remove(&d.escalation_id) {
            nominees.insert(
                d.escalation_id,
                store::nominees_of(&mut *tx, d.escalation_id).await?,
            );
        }
        touched.insert(d.escalation_id);
        let Some(row) = rows.get_mut(&d.escalation_id) else {
            continue;
        };
        let of = nominees.get(&d.escalation_id).cloned().unwrap_or_default();
        fire_one(tx, &mut w, row, &of, d, now).await?;
    }
    w.flush(tx).await?;
    // Every escalation of the batch as it now stands (one a deadline left alone is
    // written unchanged).
    let rows: Vec<&EscalationRow> = rows.values().collect();
    store::save_escalations_many(tx, &rows).await?;
    Ok(())
}

async fn fire_one(
    tx: &mut Tx,
    w: &mut Writes,
    row: &mut EscalationRow,
    nominees: &[NomineeRow],
    deadline: &DeadlineRow,
    now: DbTime,
) -> Result<(), EscalationError> {
    if row.state != EscalationState::Open || deadline.tier != row.current_tier {
        return Ok(());
    }
    let tier = deadline.tier;
    match deadline.kind {
        DeadlineKind::Reminder => {
            let waiting = remind(tx, w, row, nominees, tier, now).await?;
            let detail = format!("reminded: {}", waiting.join(", "));
            note(w, row, TimelineKind::Reminded, now, tier, None, detail);
        }
        DeadlineKind::TierDeadline => {
            w.missed.push((row.id, tier));
            let missing: Vec<String> = nominees
                .iter()
                .filter(|n| n.tier == tier && n.acknowledged_at.is_none())
                .map(|n| n.display_name.clone())
                .collect();
            let detail = format!("did not act by the deadline: {}", missing.join(", "));
            note(
                w,
                row,
                TimelineKind::DeadlineMissed,
                now,
                tier,
                None,
                detail,
            );
            if tier < row.tier_count {
                reach(tx, w, row, tier + 1, now).await?;
            } else {
                row.exhausted = true;
                let senior = w
                    .named(
                        tx,
                        &Tier {
                            contacts: Vec::new(),
                            lists: vec![ListKind::SeniorManagement],
                            deadline_secs: 0,
                            reminder_before_secs: 0,
                        },
                    )
                    .await?;
                if senior.is_empty() {
                    tracing::error!(
                        trigger = row.trigger.name(),
                        "an escalation ran past its last tier and the senior management list is empty: nobody is told"
                    );
                }
                for s in &senior {
                    mail(w, row, s, tier, (Ask::Inform, None, &missing), now);
                }
                let detail = format!(
                    "past the last tier: senior management told ({} people)",
                    senior.len()
                );
                note(w, row, TimelineKind::Exhausted, now, tier, None, detail);
                schedule_repeat(w, row, now);
            }
        }
        DeadlineKind::Repeat => {
            let waiting = remind(tx, w, row, nominees, tier, now).await?;
            let detail = format!("reminded again: {}", waiting.join(", "));
            note(w, row, TimelineKind::Reminded, now, tier, None, detail);
            schedule_repeat(w, row, now);
        }
    }
    row.revision += 1;
    Ok(())
}

fn schedule_repeat(w: &mut Writes, row: &mut EscalationRow, now: DbTime) {
    let due = DbTime::new(now.get() + row.chain.0.repeat());
    row.next_deadline_at = Some(due);
    w.deadlines.push(DeadlineRow {
        id: new_id(row.anonymous),
        escalation_id: row.id,
        kind: DeadlineKind::Repeat,
        tier: row.current_tier,
        due_at: due,
    });
}
