//! Escalation end to end over gRPC.

mod common;

mod directory;
mod engine;
mod escalations;
mod feeds;
mod guards;
mod linked;
mod mail;
mod policies;
mod timer;
