//! `custos escalation …` (list, show, timeline, ack): escalations from the command line
//! (`directory_cli` has the directory).

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::escalation::v1::{
    self as pb, directory_service_client::DirectoryServiceClient,
    escalation_service_client::EscalationServiceClient,
};
use serde_json::json;

use crate::{cli::connect, output};

#[derive(Debug, Args)]
pub struct EscalationConnection {
    /// Address of the escalation service.
    #[arg(
        long,
        env = "CUSTOS_ESCALATION_SERVER",
        default_value = "http://127.0.0.1:50053",
        global = true
    )]
    server: String,
    /// Bearer token (see `custos token`).
    #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

type Channel = tonic::service::interceptor::InterceptedService<
    tonic::transport::Channel,
    custos_kit::client::ClientInterceptor,
>;

impl EscalationConnection {
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    fn escalations(&self) -> Result<EscalationServiceClient<Channel>, String> {
        Ok(EscalationServiceClient::new(connect(
            &self.server,
            self.token.as_deref(),
        )?))
    }

    pub(crate) fn directory(&self) -> Result<DirectoryServiceClient<Channel>, String> {
        Ok(DirectoryServiceClient::new(connect(
            &self.server,
            self.token.as_deref(),
        )?))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    Open,
    Satisfied,
    Stopped,
}

#[derive(Debug, Subcommand)]
pub enum EscalationCommand {
    /// Escalations you may see, newest first.
    List {
        /// Only in these states (repeat).
        #[arg(long = "state")]
        states: Vec<StateArg>,
        /// Only open ones past their deadline.
        #[arg(long)]
        overdue: bool,
        /// Only those naming you as a nominee.
        #[arg(long)]
        mine: bool,
        /// About this report or incident (its id).
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        conn: EscalationConnection,
    },
    /// One escalation: its tiers and who has acted.
    Show {
        id: String,
        #[command(flatten)]
        conn: EscalationConnection,
    },
    /// What happened to an escalation, in order.
    Timeline {
        id: String,
        #[command(flatten)]
        conn: EscalationConnection,
    },
    /// Acknowledge an escalation you are a nominee of, with what you did.
    Ack {
        id: String,
        /// The action you took.
        #[arg(long)]
        note: String,
        #[command(flatten)]
        conn: EscalationConnection,
    },
}

pub(crate) fn name(wire: &str, prefix: &str) -> String {
    wire.trim_start_matches(prefix).to_lowercase()
}

pub(crate) fn trigger(v: i32) -> String {
    pb::EscalationTrigger::try_from(v)
        .map(|t| name(t.as_str_name(), "ESCALATION_TRIGGER_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn state(v: i32) -> String {
    pb::escalation::State::try_from(v)
        .map(|s| name(s.as_str_name(), "STATE_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn reference(e: &pb::Escalation) -> String {
    match &e.about {
        Some(pb::escalation::About::Report(r)) => r.reference.clone(),
        Some(pb::escalation::About::Incident(i)) => i.reference.clone(),
        None => String::new(),
    }
}

fn escalation_json(e: &pb::Escalation) -> serde_json::Value {
    json!({
        "id": e.id,
        "reference": reference(e),
        "trigger": trigger(e.trigger),
        "state": state(e.state),
        "exhausted": e.exhausted,
        "next_deadline_at": output::time(&e.next_deadline_at),
        "opened_at": output::time(&e.opened_at),
        "stopped_reason": e.stopped_reason,
        "tiers": e.tiers.iter().map(|t| json!({
            "tier": t.tier,
            "reached_at": output::time(&t.reached_at),
            "deadline_at": output::time(&t.deadline_at),
            "satisfied": t.satisfied,
            "nominees": t.nominees.iter().map(|n| json!({
                "contact_id": n.contact_id,
                "display_name": n.display_name,
                "acknowledged_at": output::time(&n.acknowledged_at),
                "note": n.note,
                "missed_deadline": n.missed_deadline,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn escalation_detail(e: &pb::Escalation) -> String {
    let mut out = format!(
        "{} {} ({}), {}{}\nopened {}; next deadline {}\n",
        e.id,
        reference(e),
        trigger(e.trigger),
        state(e.state),
        if e.exhausted {
            ", past its last tier"
        } else {
            ""
        },
        output::time(&e.opened_at),
        output::time(&e.next_deadline_at),
    );
    if !e.stopped_reason.is_empty() {
        out.push_str(&format!("stopped: {}\n", e.stopped_reason));
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "tier",
        "nominee",
        "acknowledged",
        "note",
        "missed",
    ]);
    for t in &e.tiers {
        for n in &t.nominees {
            table.add_row([
                t.tier.to_string(),
                n.display_name.clone(),
                output::time(&n.acknowledged_at),
                n.note.clone(),
                if n.missed_deadline {
                    "yes".into()
                } else {
                    String::new()
                },
            ]);
        }
    }
    out.push_str(&table.to_string());
    out
}

pub async fn escalation(command: EscalationCommand) -> Result<(), String> {
    let fail = |s: tonic::Status| output::status_error(&s);
    match command {
        EscalationCommand::List {
            states,
            overdue,
            mine,
            subject,
            conn,
        } => {
            let states = states
                .iter()
                .map(|s| match s {
                    StateArg::Open => pb::escalation::State::Open as i32,
                    StateArg::Satisfied => pb::escalation::State::Satisfied as i32,
                    StateArg::Stopped => pb::escalation::State::Stopped as i32,
                })
                .collect();
            let page = conn
                .escalations()?
                .list_escalations(pb::ListEscalationsRequest {
                    filter: Some(pb::EscalationFilter {
                        states,
                        overdue,
                        mine,
                        subject_id: subject.unwrap_or_default(),
                        ..Default::default()
                    }),
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .map_err(fail)?
                .into_inner();
            if conn.json {
                println!(
                    "{}",
                    json!(
                        page.escalations
                            .iter()
                            .map(escalation_json)
                            .collect::<Vec<_>>()
                    )
                );
            } else {
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED).set_header([
                    "id",
                    "reference",
                    "trigger",
                    "state",
                    "tier",
                    "acted",
                    "next deadline",
                ]);
                for e in &page.escalations {
                    let last = e.tiers.last();
                    table.add_row([
                        e.id.clone(),
                        reference(e),
                        trigger(e.trigger),
                        state(e.state),
                        format!("{}/{}", e.tiers.len(), e.tier_count),
                        last.map(|t| format!("{}/{}", t.acknowledged_count, t.nominee_count))
                            .unwrap_or_default(),
                        output::time(&e.next_deadline_at),
                    ]);
                }
                println!("{table}");
            }
        }
        EscalationCommand::Show { id, conn } => {
            let e = conn
                .escalations()?
                .get_escalation(pb::GetEscalationRequest {
                    escalation_id: id,
                    view: 0,
                })
                .await
                .map_err(fail)?
                .into_inner()
                .escalation
                .unwrap_or_default();
            if conn.json {
                println!("{}", escalation_json(&e));
            } else {
                println!("{}", escalation_detail(&e));
            }
        }
        EscalationCommand::Timeline { id, conn } => {
            let client = conn.escalations()?;
            let entries = output::every_page(|page_token| {
                let mut client = client.clone();
                let escalation_id = id.clone();
                async move {
                    let page = client
                        .list_escalation_timeline(pb::ListEscalationTimelineRequest {
                            escalation_id,
                            page_size: 500,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.entries, page.next_page_token))
                }
            })
            .await?;
            let kind = |k: i32| {
                pb::timeline_entry::Kind::try_from(k)
                    .map(|k| name(k.as_str_name(), "KIND_"))
                    .unwrap_or_else(|_| "unknown".into())
            };
            if conn.json {
                println!("{}", json!(entries.iter().map(|t| json!({
                    "sequence": t.sequence, "kind": kind(t.kind), "at": output::time(&t.at),
                    "tier": t.tier, "contact_id": t.contact_id, "channel": t.channel, "detail": t.detail,
                })).collect::<Vec<_>>()));
            } else {
                let mut table = Table::new();
                table
                    .load_preset(UTF8_FULL_CONDENSED)
                    .set_header(["#", "at", "what", "tier", "detail"]);
                for t in &entries {
                    table.add_row([
                        t.sequence.to_string(),
                        output::time(&t.at),
                        kind(t.kind),
                        t.tier.to_string(),
                        t.detail.clone(),
                    ]);
                }
                println!("{table}");
            }
        }
        EscalationCommand::Ack { id, note, conn } => {
            let r = conn
                .escalations()?
                .acknowledge_escalation(pb::AcknowledgeEscalationRequest {
                    escalation_id: id,
                    note,
                })
                .await
                .map_err(fail)?
                .into_inner();
            let e = r.escalation.unwrap_or_default();
            if conn.json {
                println!(
                    "{}",
                    json!({"recorded": r.recorded, "acknowledged_at": output::time(&r.acknowledged_at), "note": r.note, "escalation": escalation_json(&e)})
                );
            } else {
                println!(
                    "{} at {}{}\n{}",
                    if r.recorded {
                        "acknowledged"
                    } else {
                        "already acknowledged"
                    },
                    output::time(&r.acknowledged_at),
                    if r.recorded {
                        String::new()
                    } else {
                        format!(": {}", r.note)
                    },
                    escalation_detail(&e)
                );
            }
        }
    }
    Ok(())
}
