//! What moves an escalation, each step in the caller's transaction: opening one for a
//! trigger (its first tier told), a deadline falling due (a reminder, the next tier, or
//! senior management past the last), a nominee acknowledging, and stopping. Time is
//! always passed in, so that tests move it rather than wait for it.

use std::collections::HashMap;

use custos_kit::storage::{DbTime, JsonText, Tx};
use uuid::Uuid;

mod fire;

pub use fire::{fire, fire_batch};

use crate::{
    directory::{Policy, Tier, Trigger},
    error::EscalationError,
    escalation::{DeadlineKind, EscalationState, Facts, SubjectKind, TimelineKind},
    message::{Ask, compose},
    store::{self, DeadlineRow, EscalationRow, NewMail, NomineeRow, TimelineRow},
};

/// What an escalation is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: Uuid,
    pub reference: String,
    pub facts: Facts,
    /// An anonymous report: random ids, and times no finer than the minute `at` was cut to.
    pub anonymous: bool,
}

/// What one step of the engine adds (timeline entries, tiers, nominees, messages,
/// deadlines), written many rows at a time when the step is done; and who a tier names,
/// read once per step.
#[derive(Default)]
struct Writes {
    timeline: Vec<TimelineRow>,
    tiers: Vec<store::TierRow>,
    nominees: Vec<NomineeRow>,
    mails: Vec<NewMail>,
    deadlines: Vec<DeadlineRow>,
    /// Tiers whose deadline passed: their nominees who had not acted missed it.
    missed: Vec<(Uuid, i32)>,
    named: HashMap<String, Vec<store::NomineeContact>>,
}

impl Writes {
    /// Who `tier` names now (read once per step for each distinct tier).
    async fn named(
        &mut self,
        tx: &mut Tx,
        tier: &Tier,
    ) -> Result<Vec<store::NomineeContact>, EscalationError> {
        let key = serde_json::to_string(tier).unwrap_or_default();
        if let Some(named) = self.named.get(&key) {
            return Ok(named.clone());
        }
        let named = store::nominees(&mut *tx, tier).await?;
        self.named.insert(key, named.clone());
        Ok(named)
    }

    async fn flush(&mut self, tx: &mut Tx) -> Result<(), EscalationError> {
        // Parents first: tiers and nominees before what names them.
        store::insert_tiers_many(tx, &std::mem::take(&mut self.tiers)).await?;
        store::insert_nominees_many(tx, &std::mem::take(&mut self.nominees)).await?;
        store::queue_mail_many(tx, &std::mem::take(&mut self.mails)).await?;
        store::add_deadlines_many(tx, &std::mem::take(&mut self.deadlines)).await?;
        store::insert_timeline_many(tx, &std::mem::take(&mut self.timeline)).await?;
        store::mark_missed_many(tx, &std::mem::take(&mut self.missed)).await?;
        Ok(())
    }
}

fn note(
    w: &mut Writes,
    row: &mut EscalationRow,
    kind: TimelineKind,
    at: DbTime,
    tier: i32,
    contact_id: Option<Uuid>,
    detail: String,
) {
    // Messages are the one channel so far.
    let channel = if kind == TimelineKind::MessageQueued {
        "email"
    } else {
        ""
    };
    row.timeline_sequence += 1;
    w.timeline.push(TimelineRow {
        escalation_id: row.id,
        sequence: row.timeline_sequence,
        kind,
        at,
        tier,
        contact_id,
        channel: channel.into(),
        detail,
    });
}

fn mail(
    w: &mut Writes,
    row: &mut EscalationRow,
    to: &store::NomineeContact,
    tier: i32,
    (ask, deadline, missing): (Ask, Option<DbTime>, &[String]),
    at: DbTime,
) {
    let (subject, body) = compose(row, ask, deadline, missing);
    w.mails.push(NewMail {
        id: new_id(row.anonymous),
        escalation_id: row.id,
        contact_id: to.id,
        tier,
        to_address: to.email.clone(),
        subject,
        body,
        queued_at: at,
        deputy_for: None,
        anonymous: row.anonymous,
    });
    let what = match ask {
        Ask::Act => "told",
        Ask::Remind => "reminded",
        Ask::Inform | Ask::Tell => "informed",
    };
    note(
        w,
        row,
        TimelineKind::MessageQueued,
        at,
        tier,
        Some(to.id),
        format!("{} {what}", to.display_name),
    );
}

/// A new id: time-ordered, but random (v4) for what concerns an anonymous report, whose
/// ids would otherwise carry the moment it arrived.
pub(crate) fn new_id(anonymous: bool) -> Uuid {
    if anonymous {
        Uuid::new_v4()
    } else {
        Uuid::now_v7()
    }
}

/// Opens the escalation of `trigger` about `subject` at `at` and tells its first tier,
/// unless the subject already has one of that trigger (then nothing happens and `None`
/// is returned: a repeated event is no new escalation).
pub async fn open(
    tx: &mut Tx,
    trigger: Trigger,
    subject: &Subject,
    at: DbTime,
) -> Result<Option<Uuid>, EscalationError> {
    if trigger != Trigger::ProviderWeaknessOverdue
        && let Some(reason) = store::subject(&mut *tx, subject.id)
            .await?
            .and_then(|s| s.ended_reason)
    {
        // Its end arrived first on the other feed: telling anyone now would be noise.
        tracing::info!(
            trigger = trigger.name(),
            reason,
            "no escalation opened: its subject has ended"
        );
        return Ok(None);
    }
    let (policy, policy_revision) = match store::policy(&mut *tx, trigger).await? {
        Some(row) => (row.policy.0, row.revision),
        None => (Policy::default_for(trigger), 0),
    };
    let mut row = EscalationRow {
        id: new_id(subject.anonymous),
        trigger,
        subject_kind: subject.kind,
        subject_id: subject.id,
        reference: subject.reference.clone(),
        facts: JsonText(subject.facts.clone()),
        state: EscalationState::Open,
        tier_count: i32::try_from(policy.tiers.len()).unwrap_or(i32::MAX),
        chain: JsonText(policy),
        policy_revision,
        current_tier: 0,
        next_deadline_at: None,
        exhausted: false,
        opened_at: at,
        ended_at: None,
        stopped_reason: String::new(),
        revision: 1,
        timeline_sequence: 0,
        anonymous: subject.anonymous,
    };
    if !store::insert_escalation(tx, &row).await? {
        return Ok(None);
    }
    let mut w = Writes::default();
    let w = &mut w;
    note(
        w,
        &mut row,
        TimelineKind::Opened,
        at,
        0,
        None,
        format!(
            "opened: {} (policy revision {policy_revision})",
            trigger.describe()
        ),
    );
    reach(tx, w, &mut row, 1, at).await?;
    w.flush(tx).await?;
    store::save_escalation(tx, &row).await?;
    if row.anonymous {
        // Nothing that points at an anonymous report's moment in the logs.
        tracing::info!(trigger = trigger.name(), "escalation opened");
    } else {
        tracing::info!(escalation_id = %row.id, trigger = trigger.name(), "escalation opened");
    }
    Ok(Some(row.id))
}

/// Tells every nominee of tier `tier` (1-based) and sets its deadlines.
async fn reach(
    tx: &mut Tx,
    w: &mut Writes,
    row: &mut EscalationRow,
    tier: i32,
    at: DbTime,
) -> Result<(), EscalationError> {
    let Some(spec): Option<Tier> = row
        .chain
        .0
        .tiers
        .get(usize::try_from(tier - 1).unwrap_or(usize::MAX))
        .cloned()
    else {
        return Err(EscalationError::Corrupt(format!(
            "escalation {} has no tier {tier}",
            row.id
        )));
    };
    let (nominees, told): (Vec<_>, Vec<_>) = w
        .named(tx, &spec)
        .await?
        .into_iter()
        .partition(|n| n.can_act);
    let deadline = DbTime::new(at.get() + spec.deadline());
    row.current_tier = tier;
    row.next_deadline_at = Some(deadline);
    let single = row.chain.0.single_accountable;
    let detail = match nominees.len() {
        0 => {
            "no active nominee: nobody could be told; the deadline stands, so the next tier will be"
                .to_owned()
        }
        1 if !single => "only one active nominee (the policy asks for at least two)".to_owned(),
        n => format!("{n} nominees told"),
    };
    if nominees.is_empty() || (nominees.len() < 2 && !single) {
        tracing::warn!(
            trigger = row.trigger.name(),
            tier,
            nominees = nominees.len(),
            "an escalation tier has fewer nominees than the policy asks for: check its lists and contacts"
        );
    }
    note(w, row, TimelineKind::TierReached, at, tier, None, detail);
    w.tiers.push(store::TierRow {
        escalation_id: row.id,
        tier,
        reached_at: at,
        deadline_at: deadline,
    });
    for n in &nominees {
        w.nominees.push(NomineeRow {
            escalation_id: row.id,
            tier,
            contact_id: n.id,
            display_name: n.display_name.clone(),
            notified_at: at,
            acknowledged_at: None,
            note: None,
            acknowledged_by: None,
            missed_deadline: false,
        });
        mail(w, row, n, tier, (Ask::Act, Some(deadline), &[]), at);
    }
    for n in &told {
        mail(w, row, n, tier, (Ask::Tell, None, &[]), at);
    }
    if let Some(before) = spec.reminder_before() {
        w.deadlines.push(DeadlineRow {
            id: new_id(row.anonymous),
            escalation_id: row.id,
            kind: DeadlineKind::Reminder,
            tier,
            due_at: DbTime::new(deadline.get() - before),
        });
    }
    w.deadlines.push(DeadlineRow {
        id: new_id(row.anonymous),
        escalation_id: row.id,
        kind: DeadlineKind::TierDeadline,
        tier,
        due_at: deadline,
    });
    Ok(())
}

/// A nominee's acknowledgement as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledged {
    pub at: DbTime,
    pub note: String,
    /// False when it had been recorded before (nothing changed).
    pub recorded: bool,
}

/// Records that `contact_id` acted, on every reached tier naming them; satisfies the
/// escalation when a tier's nominees have all acted.
pub async fn acknowledge(
    tx: &mut Tx,
    escalation_id: Uuid,
    contact_id: Uuid,
    by: &str,
    text: &str,
    now: DbTime,
) -> Result<Acknowledged, EscalationError> {
    let mut row = store::hold_escalation(tx, escalation_id)
        .await?
        .ok_or(EscalationError::EscalationNotFound)?;
    let nominees = store::nominees_of(&mut *tx, escalation_id).await?;
    let mut w = Writes::default();
    let w = &mut w;
    let mine: Vec<&NomineeRow> = nominees
        .iter()
        .filter(|n| n.contact_id == contact_id)
        .collect();
    if mine.is_empty() {
        return Err(EscalationError::NotNominee);
    }
    if let Some(earlier) = mine.iter().find(|n| n.acknowledged_at.is_some())
        && mine.iter().all(|n| n.acknowledged_at.is_some())
    {
        return Ok(Acknowledged {
            at: earlier.acknowledged_at.expect("found"),
            note: earlier.note.clone().unwrap_or_default(),
            recorded: false,
        });
    }
    if row.state == EscalationState::Stopped {
        return Err(EscalationError::EscalationEnded {
            reason: row.stopped_reason.clone(),
        });
    }
    let mut tiers = Vec::new();
    for n in mine.iter().filter(|n| n.acknowledged_at.is_none()) {
        store::acknowledge(tx, escalation_id, n.tier, contact_id, now, by, text).await?;
        tiers.push(n.tier);
        note(
            w,
            &mut row,
            TimelineKind::Acknowledged,
            now,
            n.tier,
            Some(contact_id),
            format!("{} acknowledged: {text}", n.display_name),
        );
    }
    if row.state == EscalationState::Open {
        let after = store::nominees_of(&mut *tx, escalation_id).await?;
        // A nominee deactivated since (who left) can act no more: the tier waits only for
        // those who still can.
        let ids: Vec<Uuid> = after.iter().map(|n| n.contact_id).collect();
        let active: std::collections::HashSet<Uuid> = store::contacts_among(&mut *tx, &ids)
            .await?
            .into_iter()
            .filter(|c| c.active)
            .map(|c| c.id)
            .collect();
        let satisfied = tiers.iter().find(|t| {
            after
                .iter()
                .filter(|n| n.tier == **t)
                .all(|n| n.acknowledged_at.is_some() || !active.contains(&n.contact_id))
        });
        if let Some(tier) = satisfied {
            row.state = EscalationState::Satisfied;
            row.ended_at = Some(now);
            row.next_deadline_at = None;
            store::clear_deadlines(tx, escalation_id).await?;
            note(
                w,
                &mut row,
                TimelineKind::Satisfied,
                now,
                *tier,
                None,
                format!("every nominee of tier {tier} has acted"),
            );
        }
    }
    row.revision += 1;
    w.flush(tx).await?;
    store::save_escalation(tx, &row).await?;
    Ok(Acknowledged {
        at: now,
        note: text.to_owned(),
        recorded: true,
    })
}

/// Ends a subject (a report dismissed or taken into an incident, an incident closed):
/// stops its open escalations but an overdue provider fix's, and opens none of theirs
/// later (an event of the other feed may still be on its way).
pub async fn end(
    tx: &mut Tx,
    kind: SubjectKind,
    subject_id: Uuid,
    reference: &str,
    reason: &str,
    now: DbTime,
) -> Result<usize, EscalationError> {
    let mut row = store::hold_subject(
        tx,
        &store::SubjectRow {
            subject_id,
            kind,
            reference: reference.to_owned(),
            facts: JsonText(Facts::default()),
            anonymous: false,
            ended_reason: None,
            ended_at: None,
        },
    )
    .await?;
    if row.ended_reason.is_none() {
        row.ended_reason = Some(reason.to_owned());
        row.ended_at = Some(now);
        store::save_subject(tx, &row).await?;
    }
    stop(
        tx,
        subject_id,
        |t| t != Trigger::ProviderWeaknessOverdue,
        reason,
        now,
    )
    .await
}

/// Stops the subject's open escalations whose trigger `which` accepts, with `reason`.
/// Returns how many stopped.
pub async fn stop(
    tx: &mut Tx,
    subject_id: Uuid,
    which: impl Fn(Trigger) -> bool,
    reason: &str,
    now: DbTime,
) -> Result<usize, EscalationError> {
    let mut stopped = 0;
    let mut w = Writes::default();
    let w = &mut w;
    for mut row in store::hold_open_for_subject(tx, subject_id).await? {
        if !which(row.trigger) {
            continue;
        }
        row.state = EscalationState::Stopped;
        row.ended_at = Some(now);
        row.next_deadline_at = None;
        row.stopped_reason = reason.to_owned();
        row.revision += 1;
        store::clear_deadlines(tx, row.id).await?;
        let tier = row.current_tier;
        note(
            w,
            &mut row,
            TimelineKind::Stopped,
            now,
            tier,
            None,
            format!("stopped: {reason}"),
        );
        store::save_escalation(tx, &row).await?;
        stopped += 1;
    }
    w.flush(tx).await?;
    Ok(stopped)
}
