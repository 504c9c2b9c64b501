//! `custos incident`: the incident register from the command line: list and read
//! incidents, move them along their lifecycle, change their details and flags, their
//! officer and access list, and record actions, costs, the breach and the review.

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::classification::v1::{
    self as pb, incident_service_client::IncidentServiceClient,
};
use serde_json::json;

use crate::{
    classification_cli::{ClassificationConnection, ImpactArgs, level},
    incident_records_cli as records, output,
};

type Client = IncidentServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        custos_kit::client::ClientInterceptor,
    >,
>;

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// The incidents you may see, newest first.
    List(List),
    /// One incident, by id or reference.
    Get(One),
    /// Move an incident to the next state of its lifecycle.
    Move(Move),
    /// Change title, summary, continuity statement, expected recovery or flags.
    Update(Box<Update>),
    /// Make someone the responsible officer.
    Officer(Officer),
    /// Assess the impact again with the matrix (every dimension: a figure or --choose).
    Reassess(Box<Reassess>),
    /// The history of the incident's impact.
    Impacts(One),
    /// Record the post-incident review of a resolved incident.
    Review(Review),
    /// Approve the review and close a resolved incident.
    Close(Close),
    /// A personal-data breach: awareness, and the decision about the regulator.
    #[command(subcommand)]
    Breach(records::BreachCommand),
    /// The access list (need to know).
    #[command(subcommand)]
    Access(records::AccessCommand),
    /// The actions log.
    #[command(subcommand)]
    Action(records::ActionCommand),
    /// The costs.
    #[command(subcommand)]
    Cost(records::CostCommand),
}

#[derive(Debug, Args)]
pub struct One {
    /// The incident's id or reference.
    pub(crate) incident: String,
    #[command(flatten)]
    pub(crate) conn: ClassificationConnection,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum State {
    Open,
    Investigating,
    Contained,
    Recovering,
    Resolved,
    Closed,
}

impl State {
    fn to_wire(self) -> i32 {
        use pb::incident::State as S;
        (match self {
            State::Open => S::Open,
            State::Investigating => S::Investigating,
            State::Contained => S::Contained,
            State::Recovering => S::Recovering,
            State::Resolved => S::Resolved,
            State::Closed => S::Closed,
        }) as i32
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Level {
    Low,
    Medium,
    High,
}

#[derive(Debug, Args)]
pub struct List {
    /// Only these states (repeat).
    #[arg(long = "state")]
    states: Vec<State>,
    /// Only these overall levels (repeat).
    #[arg(long = "level")]
    levels: Vec<Level>,
    /// Only these categories (repeat).
    #[arg(long = "category")]
    categories: Vec<String>,
    /// Only service-affecting incidents (true) or only others (false).
    #[arg(long)]
    service_affecting: Option<bool>,
    /// Only incidents that do (true) or do not (false) involve personal data.
    #[arg(long)]
    personal_data: Option<bool>,
    /// Only this officer's incidents.
    #[arg(long)]
    officer: Option<String>,
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    #[arg(long, default_value = "")]
    page_token: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum To {
    Investigating,
    Contained,
    Recovering,
    Resolved,
}

#[derive(Debug, Args)]
pub struct Move {
    incident: String,
    /// The state to move to (the next one).
    #[arg(long)]
    to: To,
    /// The revision you read.
    #[arg(long)]
    revision: i32,
    #[arg(long, default_value = "")]
    note: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Args)]
pub struct Update {
    incident: String,
    #[arg(long)]
    revision: i32,
    /// Why (kept in the actions log).
    #[arg(long)]
    reason: String,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    summary: Option<String>,
    /// What business continuity is told is being done.
    #[arg(long)]
    statement: Option<String>,
    /// The title business continuity is shown (never the incident's own title).
    #[arg(long)]
    continuity_title: Option<String>,
    /// When the services are expected back (RFC 3339).
    #[arg(long)]
    expected_recovery: Option<String>,
    #[arg(long)]
    service_affecting: Option<bool>,
    /// Business services affected, comma-separated.
    #[arg(long, value_delimiter = ',')]
    services: Option<Vec<String>>,
    #[arg(long)]
    personal_data: Option<bool>,
    #[arg(long)]
    paper_records: Option<bool>,
    #[arg(long)]
    evidence_required: Option<bool>,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Args)]
pub struct Officer {
    incident: String,
    /// The officer's subject.
    officer: String,
    #[arg(long)]
    revision: i32,
    #[arg(long, default_value = "")]
    note: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Args)]
pub struct Reassess {
    incident: String,
    #[arg(long)]
    revision: i32,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    impact: ImpactArgs,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Args)]
pub struct Review {
    incident: String,
    #[arg(long)]
    revision: i32,
    #[arg(long)]
    root_cause: String,
    #[arg(long)]
    lessons: String,
    /// A vulnerability exploited (repeat).
    #[arg(long = "vulnerability")]
    vulnerabilities: Vec<String>,
    /// A process change made as a result (repeat).
    #[arg(long = "process-change")]
    process_changes: Vec<String>,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Args)]
pub struct Close {
    incident: String,
    #[arg(long)]
    revision: i32,
    #[arg(long, default_value = "")]
    note: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

pub(crate) fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn timestamp(field: &str, value: &str) -> Result<prost_types::Timestamp, String> {
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            format!("{field} `{value}` is not an RFC 3339 time like 2026-12-06T14:00:00Z")
        })?;
    Ok(custos_kit::time_fmt::to_timestamp(at))
}

pub(crate) fn client(conn: &ClassificationConnection) -> Result<Client, String> {
    Ok(IncidentServiceClient::new(conn.channel()?))
}

pub async fn incident(command: IncidentCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    match command {
        IncidentCommand::List(l) => {
            let response = client(&l.conn)?
                .list_incidents(pb::ListIncidentsRequest {
                    filter: Some(pb::IncidentFilter {
                        states: l.states.iter().map(|s| s.to_wire()).collect(),
                        levels: l.levels.iter().map(|v| *v as i32 + 1).collect(),
                        categories: l.categories.clone(),
                        service_affecting: l.service_affecting,
                        personal_data: l.personal_data,
                        officer: l.officer.clone().unwrap_or_default(),
                        ..Default::default()
                    }),
                    page_size: l.page_size,
                    page_token: l.page_token.clone(),
                })
                .await
                .map_err(status)?
                .into_inner();
            if l.conn.json {
                let all: Vec<_> = response
                    .incidents
                    .iter()
                    .map(output::incident_json)
                    .collect();
                println!(
                    "{}",
                    json!({"incidents": all, "next_page_token": response.next_page_token})
                );
                return Ok(());
            }
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header([
                    "reference",
                    "state",
                    "level",
                    "officer",
                    "title",
                    "declared",
                ]);
            for i in &response.incidents {
                table.add_row([
                    i.reference.clone(),
                    output::incident_state(i.state),
                    level(i.overall_level).to_owned(),
                    i.officer.clone(),
                    i.title.clone(),
                    output::time(&i.declared_at),
                ]);
            }
            println!("{table}");
            if !response.next_page_token.is_empty() {
                println!("More: --page-token {}", response.next_page_token);
            }
        }
        IncidentCommand::Get(o) => {
            let i = client(&o.conn)?
                .get_incident(pb::GetIncidentRequest {
                    incident_id: o.incident.clone(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident
                .unwrap_or_default();
            if o.conn.json {
                println!("{}", output::incident_json(&i));
            } else {
                println!("{:#}", output::incident_json(&i));
            }
        }
        IncidentCommand::Move(m) => {
            let mut c = client(&m.conn)?;
            let (id, revision, note, idempotency_key) =
                (m.incident.clone(), m.revision, m.note.clone(), key());
            let i = match m.to {
                To::Investigating => c
                    .investigate_incident(pb::InvestigateIncidentRequest {
                        incident_id: id,
                        revision,
                        note,
                        idempotency_key,
                    })
                    .await
                    .map(|r| r.into_inner().incident),
                To::Contained => c
                    .contain_incident(pb::ContainIncidentRequest {
                        incident_id: id,
                        revision,
                        note,
                        idempotency_key,
                    })
                    .await
                    .map(|r| r.into_inner().incident),
                To::Recovering => c
                    .recover_incident(pb::RecoverIncidentRequest {
                        incident_id: id,
                        revision,
                        note,
                        idempotency_key,
                    })
                    .await
                    .map(|r| r.into_inner().incident),
                To::Resolved => c
                    .resolve_incident(pb::ResolveIncidentRequest {
                        incident_id: id,
                        revision,
                        note,
                        idempotency_key,
                    })
                    .await
                    .map(|r| r.into_inner().incident),
            }
            .map_err(status)?
            .unwrap_or_default();
            output::incident(m.conn.json, &i);
        }
        IncidentCommand::Update(u) => {
            let mut paths = Vec::new();
            let mut given = pb::Incident::default();
            let mut flags = pb::IncidentFlags::default();
            if let Some(t) = &u.title {
                paths.push("title");
                given.title = t.clone();
            }
            if let Some(s) = &u.summary {
                paths.push("summary");
                given.summary = s.clone();
            }
            if let Some(s) = &u.statement {
                paths.push("continuity_statement");
                given.continuity_statement = s.clone();
            }
            if let Some(t) = &u.continuity_title {
                paths.push("continuity_title");
                given.continuity_title = t.clone();
            }
            if let Some(at) = &u.expected_recovery {
                paths.push("expected_recovery_at");
                given.expected_recovery_at = Some(timestamp("--expected-recovery", at)?);
            }
            for (path, value, set) in [
                (
                    "flags.service_affecting",
                    u.service_affecting,
                    &mut flags.service_affecting,
                ),
                (
                    "flags.personal_data",
                    u.personal_data,
                    &mut flags.personal_data,
                ),
                (
                    "flags.paper_records",
                    u.paper_records,
                    &mut flags.paper_records,
                ),
                (
                    "flags.evidence_required",
                    u.evidence_required,
                    &mut flags.evidence_required,
                ),
            ] {
                if let Some(v) = value {
                    paths.push(path);
                    *set = v;
                }
            }
            if let Some(s) = &u.services {
                paths.push("flags.business_services");
                flags.business_services = s.clone();
            }
            if paths.is_empty() {
                return Err("nothing to change: give --title, --summary, --statement, \
                     --continuity-title, --expected-recovery or a flag"
                    .into());
            }
            given.flags = Some(flags);
            let i = client(&u.conn)?
                .update_incident(pb::UpdateIncidentRequest {
                    incident_id: u.incident.clone(),
                    revision: u.revision,
                    incident: Some(given),
                    update_mask: Some(prost_types::FieldMask {
                        paths: paths.into_iter().map(String::from).collect(),
                    }),
                    reason: u.reason.clone(),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident
                .unwrap_or_default();
            output::incident(u.conn.json, &i);
        }
        IncidentCommand::Officer(o) => {
            let i = client(&o.conn)?
                .assign_incident_officer(pb::AssignIncidentOfficerRequest {
                    incident_id: o.incident.clone(),
                    revision: o.revision,
                    officer: o.officer.clone(),
                    note: o.note.clone(),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident
                .unwrap_or_default();
            output::incident(o.conn.json, &i);
        }
        IncidentCommand::Reassess(r) => {
            let (figures, choices) = r.impact.to_wire(&mut r.conn.client()?).await?;
            let i = client(&r.conn)?
                .reassess_incident_impact(pb::ReassessIncidentImpactRequest {
                    incident_id: r.incident.clone(),
                    revision: r.revision,
                    figures: Some(figures),
                    choices,
                    reason: r.reason.clone(),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident
                .unwrap_or_default();
            output::incident(r.conn.json, &i);
        }
        IncidentCommand::Impacts(o) => {
            let impacts = client(&o.conn)?
                .list_incident_impacts(pb::ListIncidentImpactsRequest {
                    incident_id: o.incident.clone(),
                    page_size: 500,
                    page_token: String::new(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .impacts;
            for x in impacts {
                let overall = x.impact.as_ref().map_or(0, |s| s.overall_level);
                let line = json!({"sequence": x.sequence, "level": level(overall),
                    "reason": x.reason, "by": x.assessed_by, "at": output::time(&x.assessed_at)});
                println!("{line}");
            }
        }
        IncidentCommand::Review(r) => {
            let i = client(&r.conn)?
                .record_incident_review(pb::RecordIncidentReviewRequest {
                    incident_id: r.incident.clone(),
                    revision: r.revision,
                    root_cause: r.root_cause.clone(),
                    vulnerabilities_exploited: r.vulnerabilities.clone(),
                    lessons: r.lessons.clone(),
                    process_changes: r.process_changes.clone(),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident
                .unwrap_or_default();
            output::incident(r.conn.json, &i);
        }
        IncidentCommand::Close(c) => {
            let i = client(&c.conn)?
                .close_incident(pb::CloseIncidentRequest {
                    incident_id: c.incident.clone(),
                    revision: c.revision,
                    note: c.note.clone(),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident
                .unwrap_or_default();
            output::incident(c.conn.json, &i);
        }
        IncidentCommand::Breach(b) => records::breach(b).await?,
        IncidentCommand::Access(a) => records::access(a).await?,
        IncidentCommand::Action(a) => records::action(a).await?,
        IncidentCommand::Cost(c) => records::cost(c).await?,
    }
    Ok(())
}
