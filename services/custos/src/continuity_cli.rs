//! `custos continuity follow`: the reference subscriber of the public business-continuity
//! feed. It takes a snapshot, then watches from the snapshot's cursor; it resumes from the
//! last cursor after UNAVAILABLE or SUBSCRIBER_TOO_SLOW (with jittered backoff), and takes
//! a new snapshot after CURSOR_EXPIRED. Each notice is printed as it is applied.

use std::{collections::HashMap, time::Duration};

use clap::{Args, Subcommand, ValueEnum};
use custos_proto::continuity::v1::{
    self as cpb, continuity_service_client::ContinuityServiceClient,
    watch_incident_notices_response::Item,
};
use serde_json::json;

use crate::{classification_cli::ClassificationConnection, output};

#[derive(Debug, Subcommand)]
pub enum ContinuityCommand {
    /// Print the service-affecting incidents, then every change as it happens (roles
    /// business_continuity, service). Stops with Ctrl-C.
    Follow(Follow),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MinimumLevel {
    Low,
    Medium,
    High,
}

#[derive(Debug, Args)]
pub struct Follow {
    /// Only incidents that have reached this level.
    #[arg(long)]
    minimum_level: Option<MinimumLevel>,
    /// Only incidents that have affected this business service (repeat).
    #[arg(long = "service")]
    services: Vec<String>,
    /// Start after this cursor instead of taking a snapshot.
    #[arg(long)]
    after: Option<String>,
    #[command(flatten)]
    conn: ClassificationConnection,
}

/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn level_name(v: i32) -> String {
    cpb::IncidentLevel::try_from(v)
        .map(|l| {
            l.as_str_name()
                .trim_start_matches("INCIDENT_LEVEL_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn stage_name(v: i32) -> String {
    cpb::incident_notice::Stage::try_from(v)
        .map(|s| s.as_str_name().trim_start_matches("STAGE_").to_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

fn print(json_out: bool, n: &cpb::IncidentNotice) {
    if json_out {
        let line = json!({"reference": n.reference, "revision": n.revision, "title": n.title,
            "stage": stage_name(n.stage), "level": level_name(n.level),
            "service_affecting": n.service_affecting, "business_services": n.business_services,
            "current_action": n.current_action, "resolved": n.resolved,
            "started_at": output::time(&n.started_at),
            "expected_recovery_at": output::time(&n.expected_recovery_at),
            "updated_at": output::time(&n.updated_at)});
        println!("{line}");
    } else {
        println!(
            "{} r{} {} {} {}: {}{}",
            n.reference,
            n.revision,
            stage_name(n.stage),
            level_name(n.level),
            if n.service_affecting {
                n.business_services.join(",")
            } else {
                "no longer service affecting".into()
            },
            n.title,
            if n.current_action.is_empty() {
                String::new()
            } else {
                format!(" — {}", n.current_action)
            }
        );
    }
}

fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// Up to `base`, less a random share of up to a half (so that many subscribers do not
/// come back at once).
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base.mul_f64(1.0 - f64::from(nanos % 1_000) / 2_000.0)
}

pub async fn continuity(command: ContinuityCommand) -> Result<(), String> {
    let ContinuityCommand::Follow(f) = command;
    let mut client = ContinuityServiceClient::new(f.conn.channel()?);
    let filter = cpb::NoticeFilter {
        minimum_level: f.minimum_level.map_or(0, |l| l as i32 + 1),
        business_services: f.services.clone(),
    };
    let mut cursor = f.after.clone();
    let mut backoff = Duration::from_secs(1);
    // The highest revision printed per incident: a repeat, or an older copy after a
    // snapshot or a resume, is not news.
    let mut latest: HashMap<String, i32> = HashMap::new();
    loop {
        let from = match cursor.clone() {
            Some(c) => c,
            None => snapshot(&mut client, &filter, f.conn.json, &mut latest).await?,
        };
        cursor = Some(from.clone());
        let outcome = client
            .watch_incident_notices(cpb::WatchIncidentNoticesRequest {
                after_cursor: from,
                filter: Some(filter.clone()),
            })
            .await;
        let ended = match outcome {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(r)) => {
                            backoff = Duration::from_secs(1);
                            match r.item {
                                Some(Item::Change(change)) => {
                                    if let Some(n) = &change.notice
                                        && latest.get(&n.reference).is_none_or(|r| n.revision > *r)
                                    {
                                        latest.insert(n.reference.clone(), n.revision);
                                        print(f.conn.json, n);
                                    }
                                    cursor = Some(change.cursor);
                                }
                                Some(Item::Checkpoint(beat)) => cursor = Some(beat.cursor),
                                Some(Item::CaughtUp(_)) => eprintln!("(caught up; following)"),
                                // Items of a newer contract: ignored, as the contract asks.
                                None => {}
                            }
                        }
                        Err(status) => break status,
                        Ok(None) => break tonic::Status::unavailable("the stream ended"),
                    }
                }
            }
            Err(status) => status,
        };
        match (ended.code(), reason(&ended).as_str()) {
            (tonic::Code::FailedPrecondition, "CURSOR_EXPIRED") => {
                eprintln!(
                    "(the cursor cannot be resumed: {}; taking a new snapshot)",
                    ended.message()
                );
                cursor = None;
            }
            (
                tonic::Code::Unavailable | tonic::Code::ResourceExhausted | tonic::Code::Unknown,
                _,
            ) => {
                let wait = jittered(backoff);
                eprintln!(
                    "({}; resuming in {:.1} s)",
                    ended.message(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            _ => return Err(output::status_error(&ended)),
        }
    }
}

/// Prints every page of a snapshot; returns its cursor.
async fn snapshot(
    client: &mut ContinuityServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            custos_kit::client::ClientInterceptor,
        >,
    >,
    filter: &cpb::NoticeFilter,
    json_out: bool,
    latest: &mut HashMap<String, i32>,
) -> Result<String, String> {
    let mut token = String::new();
    loop {
        let page = client
            .list_incident_notices(cpb::ListIncidentNoticesRequest {
                filter: Some(filter.clone()),
                page_size: 500,
                page_token: token,
            })
            .await
            .map_err(|s| output::status_error(&s))?
            .into_inner();
        for n in &page.notices {
            latest.insert(n.reference.clone(), n.revision);
            print(json_out, n);
        }
        if page.next_page_token.is_empty() {
            return Ok(page.cursor);
        }
        token = page.next_page_token;
    }
}
