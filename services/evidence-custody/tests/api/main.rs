//! Evidence custody end to end over gRPC.

mod common;

mod behind;
mod chain;
mod content;
mod feeds;
mod items;
mod storage;
mod tamper;
mod verbs;
