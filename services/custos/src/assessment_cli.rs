//! `custos triage assess` and `custos triage assessments`: a security advisor's decision
//! about a report, and the history of them.

use clap::{ArgGroup, Args};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::classification::v1::{self as pb, assess_report_request::Decision};
use serde_json::json;

use crate::{
    classification_cli::{ClassificationConnection, ImpactArgs, level, score_json, score_table},
    output,
};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["dismiss", "monitor", "raise", "link"])))]
pub struct Assess {
    /// The report's id (as `custos triage list --json` shows it).
    report_id: String,
    /// The report's revision you read (the queue's report_revision).
    #[arg(long)]
    revision: i32,
    /// The sequence of the latest assessment you read (0, the default, for a first one).
    #[arg(long, default_value_t = 0)]
    previous: i32,
    /// The category (a code of the taxonomy).
    #[arg(long)]
    category: String,
    #[command(flatten)]
    impact: ImpactArgs,
    /// Dismiss the report, saying why.
    #[arg(long, value_name = "REASON")]
    dismiss: Option<String>,
    /// Keep watching it, without an incident.
    #[arg(long)]
    monitor: bool,
    /// Raise a new incident with this title.
    #[arg(long, value_name = "TITLE")]
    raise: Option<String>,
    /// The new incident's summary (with --raise).
    #[arg(long, requires = "raise", default_value = "")]
    summary: String,
    /// Link the report to this incident (its id or reference).
    #[arg(long, value_name = "INCIDENT")]
    link: Option<String>,
    /// A note for the record.
    #[arg(long, default_value = "")]
    note: String,
    /// Retry-safe key (a UUID is generated when omitted; give the printed one to retry a
    /// call whose outcome you did not learn).
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    conn: ClassificationConnection,
}

#[derive(Debug, Args)]
pub struct Assessments {
    /// The report's id.
    report_id: String,
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    #[arg(long, default_value = "")]
    page_token: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

fn decision_name(v: i32) -> &'static str {
    match pb::AssessmentDecision::try_from(v) {
        Ok(pb::AssessmentDecision::Dismiss) => "dismiss",
        Ok(pb::AssessmentDecision::Monitor) => "monitor",
        Ok(pb::AssessmentDecision::RaiseIncident) => "raise incident",
        Ok(pb::AssessmentDecision::LinkIncident) => "link incident",
        _ => "unknown",
    }
}

fn assessment_json(a: &pb::Assessment) -> serde_json::Value {
    json!({"id": a.id, "report_id": a.report_id, "report_reference": a.report_reference,
        "sequence": a.sequence, "report_revision": a.report_revision, "category": a.category,
        "impact": a.impact.as_ref().map(score_json), "decision": decision_name(a.decision),
        "reason": a.reason, "note": a.note, "incident_id": a.incident_id,
        "incident_reference": a.incident_reference, "assessed_by": a.assessed_by,
        "assessed_at": output::time(&a.assessed_at)})
}

pub async fn assess(a: Assess) -> Result<(), String> {
    let mut client = a.conn.client()?;
    let (figures, choices) = a.impact.to_wire(&mut client).await?;
    let decision = match (&a.dismiss, a.monitor, &a.raise, &a.link) {
        (Some(reason), ..) => Decision::Dismiss(pb::DismissDecision {
            reason: reason.clone(),
        }),
        (_, true, ..) => Decision::Monitor(pb::MonitorDecision {}),
        (_, _, Some(title), _) => Decision::RaiseIncident(pb::RaiseIncidentDecision {
            title: title.clone(),
            summary: a.summary.clone(),
        }),
        (.., Some(incident)) => Decision::LinkIncident(pb::LinkIncidentDecision {
            incident_id: incident.clone(),
        }),
        _ => return Err("choose --dismiss, --monitor, --raise or --link".into()),
    };
    let key = a
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let response = client
        .assess_report(pb::AssessReportRequest {
            report_id: a.report_id.clone(),
            report_revision: a.revision,
            previous_sequence: a.previous,
            category: a.category.clone(),
            figures: Some(figures),
            choices,
            decision: Some(decision),
            note: a.note.clone(),
            idempotency_key: key.clone(),
        })
        .await;
    let assessment = match response {
        Ok(r) => r.into_inner().assessment.unwrap_or_default(),
        // The outcome is unknown: the same key makes the retry safe.
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ) =>
        {
            return Err(format!(
                "{}\nThe assessment may or may not have been recorded: retry with --idempotency-key {key}",
                output::status_error(&s)
            ));
        }
        Err(s) => return Err(output::status_error(&s)),
    };
    if a.conn.json {
        println!("{}", assessment_json(&assessment));
        return Ok(());
    }
    println!(
        "{} assessment {} recorded: {}{}",
        assessment.report_reference,
        assessment.sequence,
        decision_name(assessment.decision),
        match assessment.incident_reference.as_str() {
            "" => String::new(),
            r => format!(" {r}"),
        }
    );
    if let Some(score) = &assessment.impact {
        println!("{}", score_table(score));
        println!(
            "Overall impact: {}",
            level(score.overall_level).to_uppercase()
        );
    }
    Ok(())
}

pub async fn assessments(a: Assessments) -> Result<(), String> {
    let response = a
        .conn
        .client()?
        .list_assessments(pb::ListAssessmentsRequest {
            report_id: a.report_id.clone(),
            page_size: a.page_size,
            page_token: a.page_token.clone(),
        })
        .await
        .map_err(|s| output::status_error(&s))?
        .into_inner();
    if a.conn.json {
        let all: Vec<_> = response.assessments.iter().map(assessment_json).collect();
        println!(
            "{}",
            json!({"assessments": all, "next_page_token": response.next_page_token})
        );
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "#",
            "decision",
            "incident",
            "category",
            "level",
            "by",
            "at",
            "reason / note",
        ]);
    for x in &response.assessments {
        let words = [x.reason.as_str(), x.note.as_str()]
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        table.add_row([
            x.sequence.to_string(),
            decision_name(x.decision).to_owned(),
            x.incident_reference.clone(),
            x.category.clone(),
            level(x.impact.as_ref().map_or(0, |s| s.overall_level)).to_owned(),
            x.assessed_by.clone(),
            output::time(&x.assessed_at),
            words,
        ]);
    }
    println!("{table}");
    if !response.next_page_token.is_empty() {
        println!("More: --page-token {}", response.next_page_token);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct Related {
    /// The report's id.
    report_id: String,
    #[command(flatten)]
    conn: ClassificationConnection,
}

fn related_by(v: &[i32]) -> String {
    v.iter()
        .map(|r| match pb::RelatedBy::try_from(*r) {
            Ok(pb::RelatedBy::InventoryNumber) => "inventory number",
            Ok(pb::RelatedBy::Location) => "location",
            Ok(pb::RelatedBy::Category) => "category",
            _ => "unknown",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn related(a: Related) -> Result<(), String> {
    let r = a
        .conn
        .client()?
        .suggest_related(pb::SuggestRelatedRequest {
            report_id: a.report_id.clone(),
        })
        .await
        .map_err(|s| output::status_error(&s))?
        .into_inner();
    if a.conn.json {
        let reports: Vec<_> = r
            .reports
            .iter()
            .map(|x| {
                json!({"report_id": x.report_id, "reference": x.reference, "category": x.category,
                "submitted_at": output::time(&x.submitted_at), "monitored": x.monitored,
                "related_by": related_by(&x.related_by)})
            })
            .collect();
        let incidents: Vec<_> = r
            .incidents
            .iter()
            .map(|x| {
                json!({"incident_id": x.incident_id, "reference": x.reference, "title": x.title,
                "related_by": related_by(&x.related_by)})
            })
            .collect();
        println!(
            "{}",
            json!({"reports": reports, "incidents": incidents, "possible_incident": r.possible_incident,
                "window_hours": r.window.map(|w| w.seconds / 3600), "threshold": r.threshold,
                "category_threshold": r.category_threshold})
        );
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["related", "what", "category / title", "submitted", "shares"]);
    for x in &r.incidents {
        table.add_row([
            x.reference.clone(),
            "incident".into(),
            x.title.clone(),
            String::new(),
            related_by(&x.related_by),
        ]);
    }
    for x in &r.reports {
        table.add_row([
            x.reference.clone(),
            if x.monitored {
                "report (monitored)"
            } else {
                "report"
            }
            .into(),
            x.category.clone(),
            output::time(&x.submitted_at),
            related_by(&x.related_by),
        ]);
    }
    println!("{table}");
    let hours = r.window.map_or(0, |w| w.seconds / 3600);
    println!(
        "Within {hours} h either side.{}",
        if r.possible_incident {
            format!(
                " POSSIBLE INCIDENT: {} or more sharing an inventory number or location, or {} or more of the category.",
                r.threshold, r.category_threshold
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
