//! `custos matrix` and `custos triage`: the risk impact matrix, impact scoring and the
//! triage queue, from the classification service.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::{
    classification::v1::{self as pb, classification_service_client::ClassificationServiceClient},
    google::r#type::Money,
    prost_types::Duration,
};
use serde_json::json;

use crate::{
    cli::{connect, fail},
    output,
};

#[derive(Debug, Args)]
pub struct ClassificationConnection {
    /// Address of the classification service.
    #[arg(
        long,
        env = "CUSTOS_CLASSIFICATION_SERVER",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    server: String,
    /// Bearer token (see `custos token`).
    #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

pub type Client = ClassificationServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        custos_kit::client::ClientInterceptor,
    >,
>;

impl ClassificationConnection {
    /// A channel to the classification service whose calls carry the token.
    pub fn channel(
        &self,
    ) -> Result<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            custos_kit::client::ClientInterceptor,
        >,
        String,
    > {
        connect(&self.server, self.token.as_deref())
    }

    pub fn client(&self) -> Result<Client, String> {
        Ok(ClassificationServiceClient::new(connect(
            &self.server,
            self.token.as_deref(),
        )?))
    }
}

#[derive(Debug, Subcommand)]
pub enum MatrixCommand {
    /// Show the risk impact matrix in force.
    Show {
        #[command(flatten)]
        conn: ClassificationConnection,
    },
    /// Score an impact from figures and chosen descriptors (anyone signed in). Every
    /// dimension needs a figure or a choice.
    Score(Score),
}

#[derive(Debug, Subcommand)]
pub enum TriageCommand {
    /// The reports waiting for assessment, oldest first (roles security_advisor, service).
    List(TriageList),
    /// Assess a report: category, impact, and dismiss, monitor, raise or link (role
    /// security_advisor). Every dimension needs a figure or a --choose.
    Assess(Box<crate::assessment_cli::Assess>),
    /// A report's assessments, newest first (roles security_advisor, service).
    Assessments(crate::assessment_cli::Assessments),
    /// Open reports and incidents that may belong to the same series as a report (roles
    /// security_advisor, service).
    Related(crate::assessment_cli::Related),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TriageStateArg {
    Awaiting,
    Monitored,
    Dismissed,
    InIncident,
}

impl TriageStateArg {
    fn to_wire(self) -> i32 {
        match self {
            TriageStateArg::Awaiting => pb::TriageState::AwaitingAssessment,
            TriageStateArg::Monitored => pb::TriageState::Monitored,
            TriageStateArg::Dismissed => pb::TriageState::Dismissed,
            TriageStateArg::InIncident => pb::TriageState::InIncident,
        }
        .into()
    }
}

#[derive(Debug, Args)]
pub struct TriageList {
    #[arg(long, value_enum)]
    kind: Option<crate::cli::Kind>,
    /// A category code (repeat for any of several; intake's ListCategories lists them).
    #[arg(long = "category")]
    categories: Vec<String>,
    #[arg(long, value_enum)]
    medium: Option<crate::cli::Medium>,
    /// Only reports that do (true) or do not (false) concern personal information.
    #[arg(long)]
    personal_information: Option<bool>,
    /// Reports in this state instead of those waiting for assessment.
    #[arg(long, value_enum)]
    state: Option<TriageStateArg>,
    /// Only reports submitted before this time (RFC 3339, e.g. 2026-11-26T09:00:00Z).
    #[arg(long, value_parser = parse_time, conflicts_with = "older_than_hours")]
    submitted_before: Option<time::OffsetDateTime>,
    /// Only reports waiting longer than this many hours (the next pages are asked with
    /// the same --submitted-before, printed below the table).
    #[arg(long)]
    older_than_hours: Option<u32>,
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    #[arg(long, default_value = "")]
    page_token: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Args)]
pub struct Score {
    #[command(flatten)]
    impact: ImpactArgs,
    #[command(flatten)]
    conn: ClassificationConnection,
}

/// An impact: figures and chosen descriptors (ScoreImpact, AssessReport).
#[derive(Debug, Args)]
pub struct ImpactArgs {
    /// Estimated financial loss, e.g. 250000 or 1200.50, in the matrix's currency.
    #[arg(long, allow_hyphen_values = true)]
    loss: Option<String>,
    /// Damages and fines faced, in the matrix's currency.
    #[arg(long, allow_hyphen_values = true)]
    fines: Option<String>,
    /// People facing disciplinary action.
    #[arg(long, allow_negative_numbers = true)]
    people_disciplined: Option<i32>,
    /// Days a system has gone without a backup (repeat once per system).
    #[arg(long = "backup-gap-days")]
    backup_gap_days: Vec<u32>,
    /// A chosen descriptor, as dimension=row (repeat), e.g. contractual=minor.
    #[arg(long = "choose", value_parser = parse_choice)]
    choices: Vec<pb::ImpactChoice>,
    /// Currency of --loss and --fines (default: the matrix's).
    #[arg(long)]
    currency: Option<String>,
}

impl ImpactArgs {
    /// The figures and choices as the API takes them; amounts are in the matrix's
    /// currency unless the caller says otherwise.
    pub async fn to_wire(
        &self,
        client: &mut Client,
    ) -> Result<(pb::ImpactFigures, Vec<pb::ImpactChoice>), String> {
        let currency = match &self.currency {
            Some(c) => c.clone(),
            None if self.loss.is_some() || self.fines.is_some() => {
                client
                    .get_risk_matrix(pb::GetRiskMatrixRequest {})
                    .await
                    .map_err(|s| output::status_error(&s))?
                    .into_inner()
                    .matrix
                    .unwrap_or_default()
                    .currency_code
            }
            None => String::new(),
        };
        let figures = pb::ImpactFigures {
            estimated_financial_loss: self
                .loss
                .as_deref()
                .map(|a| parse_amount(a, &currency))
                .transpose()?,
            damages_and_fines: self
                .fines
                .as_deref()
                .map(|a| parse_amount(a, &currency))
                .transpose()?,
            people_disciplined: self.people_disciplined,
            systems_without_backup: (!self.backup_gap_days.is_empty()).then(|| {
                pb::SystemsWithoutBackup {
                    backup_gaps: self
                        .backup_gap_days
                        .iter()
                        .map(|d| Duration {
                            seconds: i64::from(*d) * 86_400,
                            nanos: 0,
                        })
                        .collect(),
                }
            }),
        };
        Ok((figures, self.choices.clone()))
    }
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time such as 2026-11-26T09:00:00Z: {e}"))
}

fn parse_choice(s: &str) -> Result<pb::ImpactChoice, String> {
    let (dimension, row) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not dimension=row"))?;
    Ok(pb::ImpactChoice {
        dimension: dimension.trim().into(),
        row: row.trim().into(),
    })
}

/// "1200.50" as units and nanos (a negative amount is sent as such: the server says
/// why it is refused).
fn parse_amount(s: &str, currency: &str) -> Result<Money, String> {
    let bad = || format!("`{s}` is not an amount such as 250000 or 1200.50");
    let text = s.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (units, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    if units.is_empty() || fraction.len() > 9 || !all_digits(units) || !all_digits(fraction) {
        return Err(bad());
    }
    let units: i64 = units.parse().map_err(|_| bad())?;
    let nanos: i32 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let sign = if negative { -1 } else { 1 };
    Ok(Money {
        currency_code: currency.into(),
        units: sign * units,
        nanos: sign as i32 * nanos,
    })
}

fn figure(v: i32) -> &'static str {
    match pb::ImpactFigure::try_from(v) {
        Ok(pb::ImpactFigure::FinancialLoss) => "financial_loss",
        Ok(pb::ImpactFigure::DamagesAndFines) => "damages_and_fines",
        Ok(pb::ImpactFigure::PeopleDisciplined) => "people_disciplined",
        Ok(pb::ImpactFigure::SystemsWithoutBackup) => "systems_without_backup",
        _ => "",
    }
}

/// Where a row begins, e.g. "≥ 100000 GBP" or "> 1".
fn bound(b: &pb::FigureBound) -> String {
    let op = if b.exclusive { ">" } else { "≥" };
    match &b.value {
        Some(pb::figure_bound::Value::Amount(m)) => format!("{op} {} {}", m.units, m.currency_code),
        Some(pb::figure_bound::Value::Count(n)) => format!("{op} {n}"),
        None => String::new(),
    }
}

pub fn level(v: i32) -> &'static str {
    match pb::ImpactLevel::try_from(v) {
        Ok(pb::ImpactLevel::Low) => "low",
        Ok(pb::ImpactLevel::Medium) => "medium",
        Ok(pb::ImpactLevel::High) => "high",
        _ => "unknown",
    }
}

pub async fn triage(command: TriageCommand) -> ExitCode {
    match run_triage(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

async fn run_triage(command: TriageCommand) -> Result<(), String> {
    let a = match command {
        TriageCommand::List(a) => a,
        TriageCommand::Assess(a) => return crate::assessment_cli::assess(*a).await,
        TriageCommand::Assessments(a) => return crate::assessment_cli::assessments(a).await,
        TriageCommand::Related(a) => return crate::assessment_cli::related(a).await,
    };
    // Fixed once, so that the next page is asked with the same filter.
    let before = a.submitted_before.or_else(|| {
        a.older_than_hours
            .map(|h| time::OffsetDateTime::now_utc() - time::Duration::hours(i64::from(h)))
    });
    let submitted_before = before.map(custos_kit::time_fmt::to_timestamp);
    let response = a
        .conn
        .client()?
        .list_triage_queue(pb::ListTriageQueueRequest {
            filter: Some(pb::TriageEntryFilter {
                kind: a.kind.map_or(0, crate::cli::Kind::to_wire),
                categories: a.categories.clone(),
                medium: a.medium.map_or(0, crate::cli::Medium::to_wire),
                personal_information: a.personal_information,
                submitted_after: None,
                submitted_before,
                state: a.state.map_or(0, TriageStateArg::to_wire),
            }),
            page_size: a.page_size,
            page_token: a.page_token.clone(),
        })
        .await
        .map_err(|s| output::status_error(&s))?
        .into_inner();
    if a.conn.json {
        let entries: Vec<_> = response
            .entries
            .iter()
            .map(|e| {
                json!({"report_id": e.report_id, "reference": e.reference, "kind": output::kind(e.kind),
                    "category": e.category, "medium": output::medium(e.medium),
                    "personal_information": e.personal_information, "malware_suspected": e.malware_suspected,
                    "anonymous": e.anonymous, "senior_management_notice": e.requires_senior_management_notice,
                    "submitted_at": output::time(&e.submitted_at), "last_activity_at": output::time(&e.last_activity_at),
                    "follow_ups": e.follow_up_count, "report_revision": e.report_revision,
                    "possible_incident": e.possible_incident, "assessment_sequence": e.assessment_sequence})
            })
            .collect();
        let submitted_before = before.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        println!(
            "{}",
            json!({"entries": entries, "next_page_token": response.next_page_token,
                "submitted_before": submitted_before})
        );
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "reference",
            "report id (for assess)",
            "kind",
            "category",
            "medium",
            "flags",
            "submitted",
            "last activity",
            "follow-ups",
        ]);
    for e in &response.entries {
        let flags: Vec<&str> = [
            (e.personal_information, "personal"),
            (e.malware_suspected, "malware"),
            (e.anonymous, "anonymous"),
            (e.requires_senior_management_notice, "senior notice"),
            (e.possible_incident, "POSSIBLE INCIDENT"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        table.add_row([
            e.reference.clone(),
            e.report_id.clone(),
            output::kind(e.kind),
            e.category.clone(),
            output::medium(e.medium),
            flags.join(", "),
            output::time(&e.submitted_at),
            output::time(&e.last_activity_at),
            e.follow_up_count.to_string(),
        ]);
    }
    println!("{table}");
    if !response.next_page_token.is_empty() {
        let before = before
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(|t| format!(" --submitted-before {t} (instead of --older-than-hours)"))
            .unwrap_or_default();
        println!(
            "More: the same filters{before} and --page-token {}",
            response.next_page_token
        );
    }
    Ok(())
}

pub async fn matrix(command: MatrixCommand) -> ExitCode {
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

async fn run(command: MatrixCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    match command {
        MatrixCommand::Show { conn } => {
            let m = conn
                .client()?
                .get_risk_matrix(pb::GetRiskMatrixRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .matrix
                .unwrap_or_default();
            if conn.json {
                let dimensions: Vec<_> = m
                    .dimensions
                    .iter()
                    .map(|d| {
                        let descriptors: Vec<_> = d
                            .descriptors
                            .iter()
                            .map(|x| json!({"row": x.row, "text": x.text, "bound": x.bound.as_ref().map(bound)}))
                            .collect();
                        json!({"code": d.code, "display_name": d.display_name, "figure": figure(d.figure), "descriptors": descriptors})
                    })
                    .collect();
                let rows: Vec<_> = m
                    .rows
                    .iter()
                    .map(|r| json!({"code": r.code, "display_name": r.display_name, "level": level(r.level)}))
                    .collect();
                println!(
                    "{}",
                    json!({"display_name": m.display_name, "revision": m.revision, "currency_code": m.currency_code,
                        "backup_gap_days": m.backup_gap_threshold.map(|d| d.seconds / 86_400), "rows": rows, "dimensions": dimensions})
                );
                return Ok(());
            }
            println!("{} (revision {})", m.display_name, m.revision);
            let mut table = Table::new();
            let mut header = vec!["impact".to_owned()];
            header.extend(
                m.rows
                    .iter()
                    .map(|r| format!("{} ({})", r.code, level(r.level))),
            );
            // Wrapped to the terminal (or 120 columns when there is none): the policy's
            // descriptors are long.
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(header);
            if table.width().is_none() {
                table.set_width(120);
            }
            for d in &m.dimensions {
                let scored = match figure(d.figure) {
                    "" => String::new(),
                    f => format!("\nfigure: {f}"),
                };
                let mut row = vec![format!("{}\n[{}]{scored}", d.display_name, d.code)];
                row.extend(d.descriptors.iter().map(|x| match &x.bound {
                    Some(b) => format!("{}\n({})", x.text, bound(b)),
                    None => x.text.clone(),
                }));
                table.add_row(row);
            }
            println!("{table}");
            let gap_days = m.backup_gap_threshold.map_or(0, |d| d.seconds / 86_400);
            println!(
                "Money in {}; a system counts as without backup after {gap_days} day(s). \
                 A figure places its dimension on the highest row whose bound it meets.",
                m.currency_code
            );
        }
        MatrixCommand::Score(s) => {
            let mut client = s.conn.client()?;
            let (figures, choices) = s.impact.to_wire(&mut client).await?;
            let score = client
                .score_impact(pb::ScoreImpactRequest {
                    figures: Some(figures),
                    choices,
                })
                .await
                .map_err(status)?
                .into_inner()
                .score
                .unwrap_or_default();
            if s.conn.json {
                println!("{}", score_json(&score));
                return Ok(());
            }
            println!("{}", score_table(&score));
            println!(
                "Overall impact: {}",
                level(score.overall_level).to_uppercase()
            );
        }
    }
    Ok(())
}

/// A score as JSON.
pub fn score_json(score: &pb::ImpactScore) -> serde_json::Value {
    let dimensions: Vec<_> = score
        .dimensions
        .iter()
        .map(|d| json!({"dimension": d.dimension, "row": d.row, "level": level(d.level), "descriptor": d.descriptor, "figure_row": d.figure_row, "chosen_row": d.chosen_row}))
        .collect();
    json!({"overall_level": level(score.overall_level), "matrix_revision": score.matrix_revision, "dimensions": dimensions})
}

/// A score as a table: each dimension's row, level, and what placed it there.
pub fn score_table(score: &pb::ImpactScore) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["impact", "row", "level", "from", "descriptor"]);
    if table.width().is_none() {
        table.set_width(120);
    }
    for d in &score.dimensions {
        let from = match (d.figure_row.is_empty(), d.chosen_row.is_empty()) {
            (false, true) => "figure".to_owned(),
            (true, false) => "choice".to_owned(),
            _ if d.figure_row == d.row => format!("figure (chosen {})", d.chosen_row),
            _ => format!("choice (figure {})", d.figure_row),
        };
        table.add_row([
            d.dimension.clone(),
            d.row.clone(),
            level(d.level).to_owned(),
            from,
            d.descriptor.clone(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_exactly() {
        let m = parse_amount("1200.5", "GBP").unwrap();
        assert_eq!((m.units, m.nanos), (1200, 500_000_000));
        let m = parse_amount("250000", "GBP").unwrap();
        assert_eq!((m.units, m.nanos), (250_000, 0));
        assert!(parse_amount("12,000", "GBP").is_err());
        assert!(parse_amount("1.0000000001", "GBP").is_err());
        assert!(parse_amount("1.-5", "GBP").is_err());
        assert!(parse_amount("-", "GBP").is_err());
        let m = parse_amount("-0.5", "GBP").unwrap();
        assert_eq!((m.units, m.nanos), (0, -500_000_000), "the sign is kept");
        let m = parse_amount("-3.25", "GBP").unwrap();
        assert_eq!((m.units, m.nanos), (-3, -250_000_000));
    }

    #[test]
    fn a_choice_is_dimension_equals_row() {
        let c = parse_choice("contractual = minor").unwrap();
        assert_eq!(
            (c.dimension.as_str(), c.row.as_str()),
            ("contractual", "minor")
        );
        assert!(parse_choice("contractual").is_err());
    }
}
