//! `custos`: run the whole suite on one machine (`custos serve`), mint development tokens
//! (`custos token`), and work with reports and the risk matrix from the command line.

mod assessment_cli;
mod classification_cli;
mod cli;
mod continuity_cli;
mod custody_args;
mod custody_cli;
mod custody_files;
mod directory_cli;
mod escalation_cli;
mod feed_cli;
mod incident_cli;
mod incident_records_cli;
mod output;
mod request;
mod standalone;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "custos",
    version,
    about = "Information security incident management"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in this process on SQLite files under a data directory.
    Serve(standalone::ServeArgs),
    /// Print a development token for the standalone suite.
    Token(standalone::TokenArgs),
    /// Submit, read, list and amend reports.
    #[command(subcommand)]
    Report(Box<cli::ReportCommand>),
    /// Check on an anonymous report, or add to it, with its receipt.
    #[command(subcommand)]
    Receipt(cli::ReceiptCommand),
    /// The reports waiting for a security advisor's assessment.
    #[command(subcommand)]
    Triage(classification_cli::TriageCommand),
    /// The risk impact matrix, and scoring an impact with it.
    #[command(subcommand)]
    Matrix(classification_cli::MatrixCommand),
    /// The incident register: incidents, their lifecycle, access, actions, costs, review.
    #[command(subcommand)]
    Incident(Box<incident_cli::IncidentCommand>),
    /// Follow the business-continuity feed of service-affecting incidents.
    #[command(subcommand)]
    Continuity(continuity_cli::ContinuityCommand),
    /// Escalations: who was told, who has acted, and acknowledging yours.
    #[command(subcommand)]
    Escalation(escalation_cli::EscalationCommand),
    /// Who is told: contacts, the policy's lists, escalation policies.
    #[command(subcommand)]
    Directory(directory_cli::DirectoryCommand),
    /// Evidence: items, content, custody, verification and signed custody reports.
    #[command(subcommand)]
    Custody(Box<custody_args::CustodyCommand>),
    /// A service's feed consumers: state, parked events, replay, reset (role admin).
    #[command(subcommand)]
    Feed(feed_cli::FeedCommand),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        match args.command {
            Command::Serve(a) => standalone::serve(a).await,
            Command::Token(a) => standalone::token(a),
            Command::Report(c) => cli::report(*c).await,
            Command::Receipt(c) => cli::receipt(c).await,
            Command::Triage(c) => classification_cli::triage(c).await,
            Command::Matrix(c) => classification_cli::matrix(c).await,
            Command::Feed(c) => feed_cli::feed(c).await,
            Command::Incident(c) => or_fail(incident_cli::incident(*c).await),
            Command::Continuity(c) => or_fail(continuity_cli::continuity(c).await),
            Command::Escalation(c) => or_fail(escalation_cli::escalation(c).await),
            Command::Directory(c) => or_fail(directory_cli::directory(c).await),
            Command::Custody(c) => or_fail(custody_cli::custody(*c).await),
        }
    })
}

fn or_fail(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => cli::fail(message),
    }
}
