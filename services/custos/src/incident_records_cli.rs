//! `custos incident breach|access|action|cost`: the records kept beside an incident: the
//! personal-data breach, the access list, the actions log and the costs.

use clap::{Args, Subcommand, ValueEnum};
use custos_proto::{classification::v1 as pb, google::r#type::Money};
use serde_json::json;

use crate::{
    classification_cli::ClassificationConnection,
    incident_cli::{One, client, key, timestamp},
    output,
};

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

pub(crate) async fn breach(command: BreachCommand) -> Result<(), String> {
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
    output::incident(conn.json, &i);
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

pub(crate) async fn access(command: AccessCommand) -> Result<(), String> {
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

pub(crate) async fn action(command: ActionCommand) -> Result<(), String> {
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

pub(crate) async fn cost(command: CostCommand) -> Result<(), String> {
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
