//! The consumer of classification's event feed (`intake.classification`): an assessment
//! moves its report's status. Dismissed: closed; monitored: under assessment; raised as
//! or linked to an incident: escalated to incident. Each event is applied once, in the
//! transaction that moves the cursor, and an assessment older than the one applied never
//! overwrites it. Events of other types are ignored.

use std::{future::Future, pin::Pin};

use custos_kit::{
    consumer::{EventHandler, HandlerError},
    storage::Tx,
};
use custos_proto::{classification::v1 as classification, common::v1::Event};
use prost::Name;
use uuid::Uuid;

use crate::{report::Status, store};

/// The consumer's name: its cursor and lease in intake's database.
pub const CONSUMER: &str = "intake.classification";

/// Applies classification's events to reports.
#[derive(Debug, Clone, Copy)]
pub struct ClassificationEvents;

fn bad(what: impl std::fmt::Display) -> HandlerError {
    HandlerError::failed(format!("classification event not understood: {what}"))
}

/// The status an assessment's decision gives its report; a decision this version does
/// not know (a newer classification) leaves the status as it is.
fn status(decision: i32) -> Option<Status> {
    use classification::AssessmentDecision as D;
    match D::try_from(decision) {
        Ok(D::Dismiss) => Some(Status::Closed),
        Ok(D::Monitor) => Some(Status::UnderAssessment),
        Ok(D::RaiseIncident | D::LinkIncident) => Some(Status::EscalatedToIncident),
        _ => None,
    }
}

/// The report an event is about, and its payload.
fn read<M: prost::Message + Name + Default>(event: &Event) -> Result<(Uuid, M), HandlerError> {
    let payload = event
        .payload
        .as_ref()
        .ok_or_else(|| bad("no payload"))?
        .to_msg()
        .map_err(|e| bad(e.to_string()))?;
    let report_id =
        Uuid::try_parse(&event.aggregate_id).map_err(|_| bad("aggregate_id is not a report id"))?;
    Ok((report_id, payload))
}

async fn apply(tx: &mut Tx, event: &Event) -> Result<(), HandlerError> {
    if event.event_type == classification::ReportRequeued::full_name() {
        return requeued(tx, event).await;
    }
    if event.event_type != classification::ReportAssessed::full_name() {
        return Ok(());
    }
    let (report_id, p): (_, classification::ReportAssessed) = read(event)?;
    if p.sequence < 1 {
        return Err(bad("sequence is not positive"));
    }
    if !store::apply_assessment(tx, report_id, p.sequence, status(p.decision)).await? {
        // Names no report: the parked event says which.
        return Err(HandlerError::failed(
            "the report of this assessment is not in intake (was intake restored from an \
             older backup than classification?)",
        ));
    }
    Ok(())
}

/// A monitored or dismissed report back in classification's queue: closed becomes under
/// assessment again.
async fn requeued(tx: &mut Tx, event: &Event) -> Result<(), HandlerError> {
    let (report_id, p): (_, classification::ReportRequeued) = read(event)?;
    if !store::reopen(tx, report_id, p.sequence).await? {
        return Err(HandlerError::failed(
            "the report classification requeued is not in intake (was intake restored from \
             an older backup than classification?)",
        ));
    }
    Ok(())
}

impl EventHandler for ClassificationEvents {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(apply(tx, event))
    }
}
