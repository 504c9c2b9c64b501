//! The public business-continuity feed (`custos.continuity.v1`): notices of incidents
//! that are or were service affecting, written to the outbox with the change that makes
//! them, read once per process by a hub and fanned out to every subscriber.

mod hub;
mod notice;
mod service;

pub use hub::Hub;
pub use notice::{changed, notice, record};
pub use service::{ContinuityApi, ROLES};
