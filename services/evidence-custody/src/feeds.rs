//! The consumer of classification's feed: the local copy of each incident (reference,
//! officer, the evidence flag) and of its access list. Each event is applied in the
//! transaction that moves the cursor; changes carry classification's revision or access
//! sequence and are applied only when newer than what was applied, so a redelivered or
//! late (parked) event changes nothing; types not handled here are ignored.

use std::{future::Future, pin::Pin};

use custos_kit::{
    consumer::{EventHandler, HandlerError},
    storage::Tx,
};
use custos_proto::{classification::v1 as classification, common::v1::Event, prost_types::Any};
use prost::Name;
use uuid::Uuid;

use crate::store;

/// The consumer's name: its cursor and lease in custody's database.
pub const CLASSIFICATION_CONSUMER: &str = "custody.classification";

fn bad(what: impl std::fmt::Display) -> HandlerError {
    HandlerError::failed(format!("event not understood: {what}"))
}

fn payload<M: prost::Message + Name + Default>(any: &Option<Any>) -> Result<M, HandlerError> {
    any.as_ref()
        .ok_or_else(|| bad("no payload"))?
        .to_msg::<M>()
        .map_err(|e| bad(format!("{}: {e}", M::full_name())))
}

/// Applies classification's incident events.
#[derive(Debug, Clone, Copy)]
pub struct ClassificationEvents;

async fn apply(tx: &mut Tx, event: &Event) -> Result<(), HandlerError> {
    let t = event.event_type.as_str();
    let id = || Uuid::try_parse(&event.aggregate_id).map_err(|_| bad("aggregate_id is not an id"));
    if t == classification::IncidentDeclared::full_name() {
        let p: classification::IncidentDeclared = payload(&event.payload)?;
        let evidence = p.flags.is_some_and(|f| f.evidence_required);
        store::declare_incident(tx, id()?, &event.aggregate_reference, evidence).await?;
        if evidence {
            // Revision 1 is the declaration's.
            store::set_flags(tx, id()?, true, 1).await?;
        }
    } else if t == classification::IncidentEvidenceRequired::full_name() {
        let p: classification::IncidentEvidenceRequired = payload(&event.payload)?;
        store::declare_incident(tx, id()?, &event.aggregate_reference, false).await?;
        store::set_flags(tx, id()?, true, p.revision).await?;
    } else if t == classification::IncidentFlagsChanged::full_name() {
        let p: classification::IncidentFlagsChanged = payload(&event.payload)?;
        let flags = p.flags.unwrap_or_default();
        store::declare_incident(tx, id()?, &event.aggregate_reference, false).await?;
        store::set_flags(tx, id()?, flags.evidence_required, p.revision).await?;
    } else if t == classification::IncidentOfficerAssigned::full_name() {
        let p: classification::IncidentOfficerAssigned = payload(&event.payload)?;
        store::declare_incident(tx, id()?, &event.aggregate_reference, false).await?;
        store::set_officer(tx, id()?, &p.officer, p.revision).await?;
    } else if t == classification::IncidentAccessGranted::full_name() {
        let p: classification::IncidentAccessGranted = payload(&event.payload)?;
        store::declare_incident(tx, id()?, &event.aggregate_reference, false).await?;
        store::set_access(tx, id()?, &p.subject, true, p.access_sequence).await?;
    } else if t == classification::IncidentAccessRevoked::full_name() {
        let p: classification::IncidentAccessRevoked = payload(&event.payload)?;
        store::declare_incident(tx, id()?, &event.aggregate_reference, false).await?;
        store::set_access(tx, id()?, &p.subject, false, p.access_sequence).await?;
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
