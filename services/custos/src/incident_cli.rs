//! `custos incident`: the incident register from the command line: list and read
//! incidents, move them along their lifecycle, change their details and flags, their
//! officer and access list, and record actions, costs, the breach and the review.

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::{
    classification::v1::{self as pb, incident_service_client::IncidentServiceClient},
    google::r#type::Money,
};
use serde_json::json;

use crate::{
    classification_cli::{ClassificationConnection, ImpactArgs, level},
    output,
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
    Breach(BreachCommand),
    /// The access list (need to know).
    #[command(subcommand)]
    Access(AccessCommand),
    /// The actions log.
    #[command(subcommand)]
    Action(ActionCommand),
    /// The costs.
    #[command(subcommand)]
    Cost(CostCommand),
}

#[derive(Debug, Args)]
pub struct One {
    /// The incident's id or reference.
    incident: String,
    #[command(flatten)]
    conn: ClassificationConnection,
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

#[derive(Debug, Subcommand)]
pub enum BreachCommand {
    /// When the organisation became aware of the breach (RFC 3339).
    Aware {
        incident: String,
        #[arg(long)]
        revision: i32,
        #[arg(long)]
        at: String,
        #[command(flatten)]
        conn: ClassificationConnection,
    },
    /// Whether the regulator is told, and why.
    Decide {
        incident: String,
        #[arg(long)]
        revision: i32,
        /// Tell the regulator (otherwise: do not).
        #[arg(long)]
        notify: bool,
        #[arg(long)]
        reason: String,
        /// The regulator's reference (with --notify).
        #[arg(long, default_value = "")]
        reference: String,
        #[command(flatten)]
        conn: ClassificationConnection,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    List(One),
    Grant(AccessChange),
    Revoke(AccessChange),
}

#[derive(Debug, Args)]
pub struct AccessChange {
    incident: String,
    subject: String,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Step {
    Identification,
    LimitingImpact,
    Containment,
    CorrectiveAction,
    Communication,
    Recovery,
}

#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    List(One),
    Add {
        incident: String,
        #[arg(long)]
        kind: Step,
        #[arg(long)]
        detail: String,
        #[command(flatten)]
        conn: ClassificationConnection,
    },
}

#[derive(Debug, Subcommand)]
pub enum CostCommand {
    List(One),
    Add {
        incident: String,
        #[arg(long)]
        category: String,
        /// e.g. 1200.50 or -3.05, in the organisation's currency.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// ISO 4217 code of the organisation's currency.
        #[arg(long, default_value = "GBP")]
        currency: String,
        #[arg(long)]
        description: String,
        #[command(flatten)]
        conn: ClassificationConnection,
    },
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn state_name(v: i32) -> String {
    pb::incident::State::try_from(v)
        .map(|s| s.as_str_name().trim_start_matches("STATE_").to_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

fn incident_json(i: &pb::Incident) -> serde_json::Value {
    let flags = i.flags.clone().unwrap_or_default();
    json!({"id": i.id, "reference": i.reference, "title": i.title, "summary": i.summary,
        "category": i.category, "level": level(i.overall_level), "state": state_name(i.state),
        "officer": i.officer, "revision": i.revision, "report_count": i.report_count,
        "service_affecting": flags.service_affecting,
        "business_services": flags.business_services, "personal_data": flags.personal_data,
        "paper_records": flags.paper_records, "evidence_required": flags.evidence_required,
        "continuity_statement": i.continuity_statement,
        "continuity_title": i.continuity_title,
        "expected_recovery_at": output::time(&i.expected_recovery_at),
        "breach": i.breach.as_ref().map(|b| json!({"aware_at": output::time(&b.aware_at),
            "report_due_at": output::time(&b.report_due_at), "decision": b.decision,
            "reason": b.decision_reason})),
        "review": i.review.as_ref().map(|r| json!({"root_cause": r.root_cause,
            "approved_by": r.approved_by})),
        "declared_by": i.declared_by, "declared_at": output::time(&i.declared_at),
        "updated_at": output::time(&i.updated_at), "closed_at": output::time(&i.closed_at)})
}

fn show(json_out: bool, i: &pb::Incident) {
    if json_out {
        println!("{}", incident_json(i));
    } else {
        let flags = i.flags.clone().unwrap_or_default();
        println!(
            "{} {} ({}, {}) revision {}: {}{}{}",
            i.reference,
            state_name(i.state),
            level(i.overall_level),
            if i.officer.is_empty() {
                "no officer"
            } else {
                &i.officer
            },
            i.revision,
            i.title,
            if flags.service_affecting {
                format!(
                    " [service affecting: {}]",
                    flags.business_services.join(", ")
                )
            } else {
                String::new()
            },
            if flags.personal_data {
                " [personal data]"
            } else {
                ""
            },
        );
    }
}

/// Pence (or cents) from `1200.50`; the server checks the currency and the digits.
fn money(amount: &str, currency: &str) -> Result<Money, String> {
    let bad = || format!("--amount `{amount}` is not an amount like 1200.50 or -3.05");
    let negative = amount.starts_with('-');
    let digits = amount.trim_start_matches('-');
    let (units, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if fraction.len() > 9 || units.is_empty() {
        return Err(bad());
    }
    let units: i64 = units.parse().map_err(|_| bad())?;
    let nanos: i32 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let sign = if negative { -1 } else { 1 };
    Ok(Money {
        currency_code: currency.to_owned(),
        units: sign * units,
        nanos: sign as i32 * nanos,
    })
}

fn timestamp(field: &str, value: &str) -> Result<prost_types::Timestamp, String> {
    let at = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            format!("{field} `{value}` is not an RFC 3339 time like 2026-12-06T14:00:00Z")
        })?;
    Ok(custos_kit::time_fmt::to_timestamp(at))
}

fn client(conn: &ClassificationConnection) -> Result<Client, String> {
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
                let all: Vec<_> = response.incidents.iter().map(incident_json).collect();
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
                    state_name(i.state),
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
                println!("{}", incident_json(&i));
            } else {
                println!("{:#}", incident_json(&i));
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
            show(m.conn.json, &i);
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
            show(u.conn.json, &i);
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
            show(o.conn.json, &i);
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
            show(r.conn.json, &i);
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
            show(r.conn.json, &i);
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
            show(c.conn.json, &i);
        }
        IncidentCommand::Breach(b) => breach(b).await?,
        IncidentCommand::Access(a) => access(a).await?,
        IncidentCommand::Action(a) => action(a).await?,
        IncidentCommand::Cost(c) => cost(c).await?,
    }
    Ok(())
}

async fn breach(command: BreachCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    let (conn, i) = match command {
        BreachCommand::Aware {
            incident,
            revision,
            at,
            conn,
        } => {
            let i = client(&conn)?
                .record_breach_awareness(pb::RecordBreachAwarenessRequest {
                    incident_id: incident,
                    revision,
                    aware_at: Some(timestamp("--at", &at)?),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident;
            (conn, i)
        }
        BreachCommand::Decide {
            incident,
            revision,
            notify,
            reason,
            reference,
            conn,
        } => {
            let decision = if notify {
                pb::BreachDecision::Notify
            } else {
                pb::BreachDecision::DoNotNotify
            };
            let i = client(&conn)?
                .decide_breach_notification(pb::DecideBreachNotificationRequest {
                    incident_id: incident,
                    revision,
                    decision: decision as i32,
                    reason,
                    regulator_reference: reference,
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .incident;
            (conn, i)
        }
    };
    let i = i.unwrap_or_default();
    show(conn.json, &i);
    if let Some(b) = &i.breach
        && !conn.json
    {
        println!(
            "Aware {}; the regulator must be told by {} unless decided otherwise",
            output::time(&b.aware_at),
            output::time(&b.report_due_at)
        );
    }
    Ok(())
}

async fn access(command: AccessCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    match command {
        AccessCommand::List(o) => {
            let list = client(&o.conn)?
                .list_incident_access(pb::ListIncidentAccessRequest {
                    incident_id: o.incident.clone(),
                    page_size: 500,
                    page_token: String::new(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .access;
            for a in list {
                let line = json!({"subject": a.subject, "officer": a.officer,
                    "granted_by": a.granted_by, "granted_at": output::time(&a.granted_at)});
                println!("{line}");
            }
        }
        AccessCommand::Grant(a) => {
            let entry = client(&a.conn)?
                .grant_incident_access(pb::GrantIncidentAccessRequest {
                    incident_id: a.incident.clone(),
                    subject: a.subject.clone(),
                    reason: a.reason.clone(),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .access
                .unwrap_or_default();
            println!(
                "{} may see {} (granted by {})",
                entry.subject, a.incident, entry.granted_by
            );
        }
        AccessCommand::Revoke(a) => {
            let revoked = client(&a.conn)?
                .revoke_incident_access(pb::RevokeIncidentAccessRequest {
                    incident_id: a.incident.clone(),
                    subject: a.subject.clone(),
                    reason: a.reason.clone(),
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .revoked;
            println!(
                "{}",
                if revoked {
                    format!("{} no longer sees {}", a.subject, a.incident)
                } else {
                    format!("{} was not on the access list", a.subject)
                }
            );
        }
    }
    Ok(())
}

async fn action(command: ActionCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    match command {
        ActionCommand::List(o) => {
            let actions = client(&o.conn)?
                .list_incident_actions(pb::ListIncidentActionsRequest {
                    incident_id: o.incident.clone(),
                    kinds: vec![],
                    page_size: 500,
                    page_token: String::new(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .actions;
            for a in actions {
                let kind = pb::IncidentActionKind::try_from(a.kind)
                    .map(|k| {
                        k.as_str_name()
                            .trim_start_matches("INCIDENT_ACTION_KIND_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                println!(
                    "{:>4} {} {} {}: {}",
                    a.sequence,
                    output::time(&a.recorded_at),
                    a.actor,
                    kind,
                    a.detail
                );
            }
        }
        ActionCommand::Add {
            incident,
            kind,
            detail,
            conn,
        } => {
            let kind = match kind {
                Step::Identification => pb::IncidentActionKind::Identification,
                Step::LimitingImpact => pb::IncidentActionKind::LimitingImpact,
                Step::Containment => pb::IncidentActionKind::Containment,
                Step::CorrectiveAction => pb::IncidentActionKind::CorrectiveAction,
                Step::Communication => pb::IncidentActionKind::Communication,
                Step::Recovery => pb::IncidentActionKind::Recovery,
            };
            let a = client(&conn)?
                .add_incident_action(pb::AddIncidentActionRequest {
                    incident_id: incident.clone(),
                    kind: kind as i32,
                    detail,
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .action
                .unwrap_or_default();
            println!("{incident}: action {} recorded", a.sequence);
        }
    }
    Ok(())
}

fn shown(m: &Option<Money>) -> String {
    let m = m.clone().unwrap_or_default();
    let negative = m.units < 0 || m.nanos < 0;
    format!(
        "{} {}{}.{:02}",
        m.currency_code,
        if negative { "-" } else { "" },
        m.units.unsigned_abs(),
        m.nanos.unsigned_abs() / 10_000_000
    )
}

async fn cost(command: CostCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    match command {
        CostCommand::List(o) => {
            let response = client(&o.conn)?
                .list_incident_costs(pb::ListIncidentCostsRequest {
                    incident_id: o.incident.clone(),
                    page_size: 500,
                    page_token: String::new(),
                })
                .await
                .map_err(status)?
                .into_inner();
            for c in &response.costs {
                println!(
                    "{} {:>16} {} ({})",
                    output::time(&c.recorded_at),
                    shown(&c.amount),
                    c.category,
                    c.description
                );
            }
            for t in &response.totals {
                println!("Total {}", shown(&Some(t.clone())));
            }
        }
        CostCommand::Add {
            incident,
            category,
            amount,
            currency,
            description,
            conn,
        } => {
            let c = client(&conn)?
                .add_incident_cost(pb::AddIncidentCostRequest {
                    incident_id: incident.clone(),
                    category,
                    amount: Some(money(&amount, &currency)?),
                    description,
                    idempotency_key: key(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .cost
                .unwrap_or_default();
            println!("{incident}: {} {} recorded", shown(&c.amount), c.category);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_money() {
        let m = money("1200.5", "GBP").unwrap();
        assert_eq!((m.units, m.nanos), (1200, 500_000_000));
        let m = money("-3.05", "GBP").unwrap();
        assert_eq!((m.units, m.nanos), (-3, -50_000_000));
        assert_eq!(shown(&Some(m)), "GBP -3.05");
        assert!(money("1.2.3", "GBP").is_err());
        assert!(money("abc", "GBP").is_err());
    }
}
