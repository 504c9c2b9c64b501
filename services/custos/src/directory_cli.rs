//! `custos directory …` (contacts, lists, policies): who the escalation service tells,
//! from the command line.

use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::escalation::v1 as pb;
use serde_json::json;

use crate::{
    escalation_cli::{EscalationConnection, name, trigger},
    output,
};

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

fn list_kind(v: i32) -> String {
    pb::ContactListKind::try_from(v)
        .map(|k| name(k.as_str_name(), "CONTACT_LIST_KIND_"))
        .unwrap_or_else(|_| "unknown".into())
}

pub async fn directory(command: DirectoryCommand) -> Result<(), String> {
    let fail = |s: tonic::Status| output::status_error(&s);
    match command {
        DirectoryCommand::Contacts { all, conn } => {
            let client = conn.directory()?;
            let contacts = output::every_page(|page_token| {
                let mut client = client.clone();
                async move {
                    let page = client
                        .list_contacts(pb::ListContactsRequest {
                            include_inactive: all,
                            page_size: 500,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.contacts, page.next_page_token))
                }
            })
            .await?;
            if conn.json() {
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
                if conn.json() {
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
            if conn.json() {
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
            if conn.json() {
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
