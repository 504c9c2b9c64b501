//! `custos-load`: load for the services, measured from outside as a client sees it. Only ever
//! point it at a service on this machine.
//!
//! - `submit`: SubmitReport at a chosen concurrency for a chosen time (every call a new
//!   report with its own idempotency key, so each is a durable write).
//! - `seed`: fills intake with reports spread over kinds, categories and media.
//! - `list`: ListReports with every combination of filters the API offers, each at a
//!   chosen concurrency, with the latency of each combination.
//! - `triage`: the same for classification's ListTriageQueue.
//! - `incidents`: the same for ListIncidents, and GetIncident.
//! - `deadlines`: escalation's timers, several replicas on one PostgreSQL, firing a
//!   burst of deadlines: the lag from due to queued, and whether each fired once.
//! - `evidence`: evidence-custody's upload and verified download of one large file.
//! - `continuity`: many subscribers of the business-continuity feed, and the time from
//!   an incident's change to its delivery to each.

mod continuity;
mod deadlines;
mod evidence;
mod incidents;
mod list;
mod measure;
mod reports;
mod submit;
mod triage;

use clap::{Parser, Subcommand};
use custos_kit::client::ClientInterceptor;
use custos_proto::intake::v1::intake_service_client::IntakeServiceClient;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SubmitReport throughput and latency.
    Submit(submit::SubmitArgs),
    /// Fill intake with reports to list.
    Seed(reports::SeedArgs),
    /// ListReports latency for every filter combination.
    List(list::ListArgs),
    /// ListTriageQueue (classification) latency for every filter combination.
    Triage(triage::TriageArgs),
    /// ListIncidents latency for every filter combination, and GetIncident.
    Incidents(incidents::IncidentsArgs),
    /// Business-continuity feed: commit-to-delivery latency with many subscribers.
    Continuity(continuity::ContinuityArgs),
    /// Escalation deadlines: firing lag and exactly-once with several replicas.
    Deadlines(deadlines::DeadlinesArgs),
    /// Evidence custody: upload and verified download of one large file.
    Evidence(evidence::EvidenceArgs),
}

/// Where the service is and how calls reach it.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The service's address (intake's, or classification's for `triage`).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// HTTP/2 connections shared by the workers.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

pub type Client = IntakeServiceClient<InterceptedService<Channel, ClientInterceptor>>;

impl Target {
    /// Connected channels, one per connection.
    pub async fn channels(&self) -> Result<Vec<Channel>, String> {
        let mut channels = Vec::new();
        for _ in 0..self.connections.max(1) {
            let channel = Channel::from_shared(self.server.clone())
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.server))?;
            channels.push(channel);
        }
        Ok(channels)
    }
}

/// A client on `channel` whose calls carry `token` (none: anonymous).
pub fn client(channel: Channel, token: Option<&str>) -> Result<Client, String> {
    let interceptor = match token {
        Some(t) => ClientInterceptor::bearer(t)?,
        None => ClientInterceptor::anonymous(),
    };
    Ok(IntakeServiceClient::new(InterceptedService::new(
        channel,
        interceptor,
    )))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    match Args::parse().command {
        Command::Submit(args) => submit::run(args).await,
        Command::Seed(args) => reports::seed(args).await,
        Command::List(args) => list::run(args).await,
        Command::Triage(args) => triage::run(args).await,
        Command::Continuity(args) => continuity::run(args).await,
        Command::Deadlines(args) => deadlines::deadlines(args).await,
        Command::Evidence(args) => evidence::run(args).await,
        Command::Incidents(args) => incidents::run(args).await,
    }
}
