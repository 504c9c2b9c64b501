//! The consumer of intake's event feed (`classification.intake`): submitted reports join
//! the triage queue, amendments and follow-ups update their entry. Each event is applied
//! once, in the transaction that moves the cursor (the kit's consumer); events of other
//! types are ignored. An amendment or follow-up of a report that is not queued fails, so
//! it is retried and, if its submission never arrives, parked for an operator (replay the
//! submission first, then it).

use std::{future::Future, pin::Pin};

use custos_kit::{
    consumer::{EventHandler, HandlerError},
    outbox::NewEvent,
    storage::{DbTime, Tx},
    time_fmt::from_timestamp,
};
use custos_proto::{
    classification::v1 as classification,
    common::v1::Event,
    intake::v1 as intake,
    prost_types::{Any, Timestamp},
};
use prost::Name;
use uuid::Uuid;

use crate::{
    report::{Kind, Medium},
    series::Series,
    store::{self, Amendment, NewEntry},
};

/// The consumer's name: its cursor and lease in classification's database.
pub const CONSUMER: &str = "classification.intake";

/// Applies intake's events to the triage queue, and flags possible incidents as reports
/// arrive and change.
#[derive(Debug, Clone, Copy)]
pub struct IntakeEvents {
    pub series: Series,
}

fn bad(what: impl std::fmt::Display) -> HandlerError {
    HandlerError::failed(format!("intake event not understood: {what}"))
}

fn payload<M: prost::Message + Name + Default>(any: &Option<Any>) -> Result<M, HandlerError> {
    any.as_ref()
        .ok_or_else(|| bad("no payload"))?
        .to_msg::<M>()
        .map_err(|e| bad(format!("{}: {e}", M::full_name())))
}

fn time(ts: &Option<Timestamp>, field: &str) -> Result<Option<DbTime>, HandlerError> {
    ts.as_ref()
        .map(|t| {
            from_timestamp(t)
                .map(DbTime::new)
                .ok_or_else(|| bad(format!("{field} is not a valid time")))
        })
        .transpose()
}

/// When the report last changed, to the minute: enough for triage, and no finer a time
/// for any report (see `cut` below).
fn activity(event: &Event) -> Result<DbTime, HandlerError> {
    Ok(time(&event.occurred_at, "occurred_at")?
        .ok_or_else(|| bad("no occurred_at"))?
        .to_minute())
}

/// The message names no report: the line is logged near the time a reporter (perhaps an
/// anonymous one) acted; the parked event itself says which.
fn not_queued() -> HandlerError {
    HandlerError::failed(
        "the report of this event is not in the triage queue (its submission has not been applied)",
    )
}

/// Intake's match keys, prefixed with what each is a digest of. A key that is not a
/// digest intake could have made (22 characters of base64url) is refused.
fn match_keys(keys: &intake::MatchKeys) -> Result<Vec<String>, HandlerError> {
    let mut out = Vec::new();
    for (prefix, list) in [
        (store::INVENTORY_KEY, &keys.inventory_numbers),
        (store::LOCATION_KEY, &keys.locations),
    ] {
        for k in list {
            if k.len() != 22
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("a match key is not a digest"));
            }
            out.push(format!("{prefix}{k}"));
        }
    }
    Ok(out)
}

/// Tells intake (and whoever follows classification) that a monitored or dismissed
/// report is back in the queue, in the transaction that put it there. About an anonymous
/// report, the event is anonymous (no trace, a random id, the time to the minute): it
/// follows from what its reporter did.
async fn requeued(
    tx: &mut Tx,
    report_id: Uuid,
    applied: store::Applied,
) -> Result<(), HandlerError> {
    if let Some((sequence, reference, anonymous)) = applied.requeued {
        let payload = classification::ReportRequeued { sequence };
        let now = time::OffsetDateTime::now_utc();
        let event = if anonymous {
            NewEvent::anonymous(report_id, reference, now, &payload)
        } else {
            NewEvent::new(report_id, reference, now, &payload)
        };
        tx.append_event(&event).await?;
    }
    Ok(())
}

async fn apply(series: &Series, tx: &mut Tx, event: &Event) -> Result<(), HandlerError> {
    let report_id =
        || Uuid::try_parse(&event.aggregate_id).map_err(|_| bad("aggregate_id is not a report id"));
    let t = event.event_type.as_str();
    if t == intake::ReportSubmitted::full_name() {
        let p: intake::ReportSubmitted = payload(&event.payload)?;
        // Every report's times to the minute: an exact time beside a neighbour's would
        // date an anonymous report.
        let cut = DbTime::to_minute;
        let entry = NewEntry {
            report_id: report_id()?,
            reference: event.aggregate_reference.clone(),
            kind: Kind::from_wire(p.kind).map_err(|e| bad(format!("kind {e}")))?,
            category: p.category.clone(),
            medium: Medium::from_wire(p.medium).map_err(|e| bad(format!("medium {e}")))?,
            personal_information: p.personal_information,
            malware_suspected: p.malware_suspected,
            anonymous: p.anonymous,
            senior_notice: p.requires_senior_management_notice,
            occurred_at: time(&p.occurred_at, "occurred_at")?.map(cut),
            submitted_at: time(&p.submitted_at, "submitted_at")?
                .map(cut)
                .ok_or_else(|| bad("no submitted_at"))?,
            match_keys: p
                .match_keys
                .as_ref()
                .map(match_keys)
                .transpose()?
                .unwrap_or_default(),
        };
        store::queue(tx, &entry).await?;
        series.flag(tx, entry.report_id).await?;
    } else if t == intake::ReportAmended::full_name() {
        let p: intake::ReportAmended = payload(&event.payload)?;
        let amendment = Amendment {
            report_id: report_id()?,
            revision: p.revision,
            category: p.category.clone(),
            medium: Medium::from_wire(p.medium).map_err(|e| bad(format!("medium {e}")))?,
            personal_information: p.personal_information,
            senior_notice: p.requires_senior_management_notice,
            // The report as it now stands, from an intake that says so (events of earlier
            // versions carry neither: both are left as they were).
            malware_suspected: p.malware_suspected,
            occurred_at: match p.malware_suspected {
                Some(_) => Some(time(&p.occurred_at, "occurred_at")?.map(DbTime::to_minute)),
                None => None,
            },
            match_keys: p.match_keys.as_ref().map(match_keys).transpose()?,
            at: activity(event)?,
        };
        let applied = store::amend(tx, &amendment).await?;
        if !applied.found {
            return Err(not_queued());
        }
        requeued(tx, amendment.report_id, applied).await?;
        series.flag(tx, amendment.report_id).await?;
    } else if t == intake::FollowUpAdded::full_name() {
        let p: intake::FollowUpAdded = payload(&event.payload)?;
        let follow_up_id =
            Uuid::try_parse(&p.follow_up_id).map_err(|_| bad("follow_up_id is not an id"))?;
        let applied =
            store::add_follow_up(tx, report_id()?, follow_up_id, activity(event)?).await?;
        if !applied.found {
            return Err(not_queued());
        }
        let back = applied.requeued.is_some();
        requeued(tx, report_id()?, applied).await?;
        if back {
            // Open again: it may complete a series.
            series.flag(tx, report_id()?).await?;
        }
    }
    // Provider weakness events and types this version does not know: not triage's.
    Ok(())
}

impl EventHandler for IntakeEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(apply(&self.series, tx, event))
    }
}
