//! `custos escalation …` (list, show, timeline, ack) and `custos directory …` (contacts,
//! lists, policies): the escalation service from the command line.

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
    fn escalations(&self) -> Result<EscalationServiceClient<Channel>, String> {
        Ok(EscalationServiceClient::new(connect(
            &self.server,
            self.token.as_deref(),
        )?))
    }

    fn directory(&self) -> Result<DirectoryServiceClient<Channel>, String> {
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

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// The contacts.
    Contacts {
        /// Deactivated contacts too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        conn: EscalationConnection,
    },
    /// Add a contact.
    AddContact {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        job_title: String,
        /// Their `sub` in your identity provider (needed to acknowledge).
        #[arg(long, default_value = "")]
        token_subject: String,
        /// The contact told when a message to this one fails for good (an id).
        #[arg(long, default_value = "")]
        deputy: String,
        #[command(flatten)]
        conn: EscalationConnection,
    },
    /// The policy's lists and who is on them.
    Lists {
        #[command(flatten)]
        conn: EscalationConnection,
    },
    /// Put contacts on one of the policy's lists (replacing who was on it).
    SetList {
        /// e.g. high_medium, internal_audit.
        kind: String,
        /// Contact ids, in order.
        contacts: Vec<String>,
        /// The list's revision as read (`custos directory lists`).
        #[arg(long)]
        revision: i32,
        #[command(flatten)]
        conn: EscalationConnection,
    },
    /// Every trigger's escalation policy, with what keeps it from being followed.
    Policies {
        #[command(flatten)]
        conn: EscalationConnection,
    },
}

fn name(wire: &str, prefix: &str) -> String {
    wire.trim_start_matches(prefix).to_lowercase()
}

fn trigger(v: i32) -> String {
    pb::EscalationTrigger::try_from(v)
        .map(|t| name(t.as_str_name(), "ESCALATION_TRIGGER_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn state(v: i32) -> String {
    pb::escalation::State::try_from(v)
        .map(|s| name(s.as_str_name(), "STATE_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn list_kind(v: i32) -> String {
    pb::ContactListKind::try_from(v)
        .map(|k| name(k.as_str_name(), "CONTACT_LIST_KIND_"))
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
            let mut client = conn.escalations()?;
            let mut token = String::new();
            let mut entries = Vec::new();
            loop {
                let page = client
                    .list_escalation_timeline(pb::ListEscalationTimelineRequest {
                        escalation_id: id.clone(),
                        page_size: 500,
                        page_token: token,
                    })
                    .await
                    .map_err(fail)?
                    .into_inner();
                entries.extend(page.entries);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
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

pub async fn directory(command: DirectoryCommand) -> Result<(), String> {
    let fail = |s: tonic::Status| output::status_error(&s);
    match command {
        DirectoryCommand::Contacts { all, conn } => {
            let mut client = conn.directory()?;
            let mut token = String::new();
            let mut contacts = Vec::new();
            loop {
                let page = client
                    .list_contacts(pb::ListContactsRequest {
                        include_inactive: all,
                        page_size: 500,
                        page_token: token,
                    })
                    .await
                    .map_err(fail)?
                    .into_inner();
                contacts.extend(page.contacts);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if conn.json {
                println!("{}", json!(contacts.iter().map(|c| json!({
                    "id": c.id, "display_name": c.display_name, "job_title": c.job_title, "email": c.email,
                    "token_subject": c.token_subject, "deputy_contact_id": c.deputy_contact_id, "active": c.active,
                    "revision": c.revision,
                })).collect::<Vec<_>>()));
            } else {
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED).set_header([
                    "id",
                    "name",
                    "job title",
                    "email",
                    "token subject",
                    "active",
                ]);
                for c in &contacts {
                    table.add_row([
                        c.id.clone(),
                        c.display_name.clone(),
                        c.job_title.clone(),
                        c.email.clone(),
                        c.token_subject.clone(),
                        c.active.to_string(),
                    ]);
                }
                println!("{table}");
            }
        }
        DirectoryCommand::AddContact {
            name,
            email,
            job_title,
            token_subject,
            deputy,
            conn,
        } => {
            let c = conn
                .directory()?
                .create_contact(pb::CreateContactRequest {
                    contact: Some(pb::Contact {
                        display_name: name,
                        email,
                        job_title,
                        token_subject,
                        deputy_contact_id: deputy,
                        ..Default::default()
                    }),
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .map_err(fail)?
                .into_inner()
                .contact
                .unwrap_or_default();
            println!(
                "{}",
                if conn.json {
                    json!({"id": c.id, "revision": c.revision}).to_string()
                } else {
                    c.id
                }
            );
        }
        DirectoryCommand::Lists { conn } => {
            let lists = conn
                .directory()?
                .list_contact_lists(pb::ListContactListsRequest {})
                .await
                .map_err(fail)?
                .into_inner()
                .lists;
            if conn.json {
                println!("{}", json!(lists.iter().map(|l| json!({"kind": list_kind(l.kind), "contact_ids": l.contact_ids, "revision": l.revision})).collect::<Vec<_>>()));
            } else {
                let mut table = Table::new();
                table
                    .load_preset(UTF8_FULL_CONDENSED)
                    .set_header(["list", "revision", "contacts"]);
                for l in &lists {
                    table.add_row([
                        list_kind(l.kind),
                        l.revision.to_string(),
                        l.contact_ids.join("\n"),
                    ]);
                }
                println!("{table}");
            }
        }
        DirectoryCommand::SetList {
            kind,
            contacts,
            revision,
            conn,
        } => {
            let wire = pb::ContactListKind::from_str_name(&format!("CONTACT_LIST_KIND_{}", kind.to_uppercase()))
                .ok_or_else(|| format!("`{kind}` is not a list: central_point_of_contact, high_medium, low, business_continuity, senior_management, data_protection_officer, caldicott_guardian, internal_audit"))?;
            let l = conn
                .directory()?
                .set_contact_list(pb::SetContactListRequest {
                    kind: wire as i32,
                    contact_ids: contacts,
                    revision,
                })
                .await
                .map_err(fail)?
                .into_inner()
                .list
                .unwrap_or_default();
            println!(
                "{} is at revision {} with {} contacts",
                list_kind(l.kind),
                l.revision,
                l.contact_ids.len()
            );
        }
        DirectoryCommand::Policies { conn } => {
            let policies = conn
                .directory()?
                .list_escalation_policies(pb::ListEscalationPoliciesRequest {})
                .await
                .map_err(fail)?
                .into_inner()
                .policies;
            if conn.json {
                println!("{}", json!(policies.iter().map(|p| json!({
                    "trigger": trigger(p.trigger), "revision": p.revision, "single_accountable": p.single_accountable,
                    "tiers": p.tiers.iter().map(|t| json!({
                        "contact_ids": t.contact_ids,
                        "lists": t.lists.iter().map(|l| list_kind(*l)).collect::<Vec<_>>(),
                        "response_deadline_secs": t.response_deadline.map(|d| d.seconds),
                    })).collect::<Vec<_>>(),
                    "problems": p.problems,
                })).collect::<Vec<_>>()));
            } else {
                let mut table = Table::new();
                table
                    .load_preset(UTF8_FULL_CONDENSED)
                    .set_header(["trigger", "revision", "tiers", "problems"]);
                for p in &policies {
                    let tiers: Vec<String> = p
                        .tiers
                        .iter()
                        .map(|t| {
                            let mut who: Vec<String> =
                                t.lists.iter().map(|l| list_kind(*l)).collect();
                            who.extend(t.contact_ids.iter().cloned());
                            format!(
                                "{} within {} min",
                                who.join(", "),
                                t.response_deadline.map_or(0, |d| d.seconds / 60)
                            )
                        })
                        .collect();
                    table.add_row([
                        trigger(p.trigger),
                        p.revision.to_string(),
                        tiers.join("\nthen "),
                        p.problems.join("\n"),
                    ]);
                }
                println!("{table}");
            }
        }
    }
    Ok(())
}
