//! The intake service: reports of security events and weaknesses, named or anonymous,
//! their amendments and follow-ups, and weaknesses reported to service providers.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod guidance;
pub mod receipt;
pub mod report;
pub mod store;
pub mod taxonomy;

pub use app::App;
pub use config::Config;
