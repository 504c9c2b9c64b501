//! `custos feed`: an operator's view of a service's feed consumers (role `admin`): their
//! state, their parked events, replaying one, and resetting a stopped consumer.

use std::process::ExitCode;

use clap::Subcommand;
use custos_proto::common::v1::{self as pb, feed_admin_service_client::FeedAdminServiceClient};
use serde_json::json;

use crate::{cli::Connection, output};

#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// List the service's feed consumers and where each stands.
    Consumers {
        #[command(flatten)]
        conn: Connection,
    },
    /// List parked events (events a consumer gave up on after its attempts).
    Parked {
        /// Only this consumer's.
        #[arg(long, default_value = "")]
        consumer: String,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Apply a parked event again.
    Replay {
        consumer: String,
        event_id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Set a consumer's cursor (default: the start of the feed) and restart it.
    Reset {
        consumer: String,
        #[arg(long, default_value = "")]
        cursor: String,
        #[command(flatten)]
        conn: Connection,
    },
}

fn state(v: i32) -> &'static str {
    match pb::ConsumerState::try_from(v) {
        Ok(pb::ConsumerState::Connecting) => "connecting",
        Ok(pb::ConsumerState::Running) => "running",
        Ok(pb::ConsumerState::Standby) => "standby",
        Ok(pb::ConsumerState::Stopped) => "STOPPED",
        _ => "unknown",
    }
}

fn consumer_json(c: &pb::FeedConsumer) -> serde_json::Value {
    json!({
        "name": c.name, "state": state(c.state), "detail": c.detail, "cursor": c.cursor,
        "parked_events": c.parked_events, "lag_secs": c.lag.map_or(0, |d| d.seconds),
    })
}

pub async fn feed(command: FeedCommand) -> ExitCode {
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: FeedCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    match command {
        FeedCommand::Consumers { conn } => {
            let mut client = FeedAdminServiceClient::new(conn.channel()?);
            let consumers = client
                .list_consumers(pb::ListConsumersRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .consumers;
            if conn.json() {
                let list: Vec<_> = consumers.iter().map(consumer_json).collect();
                println!("{}", json!({ "consumers": list }));
            } else {
                for c in &consumers {
                    println!(
                        "{}: {} ({} parked){}",
                        c.name,
                        state(c.state),
                        c.parked_events,
                        if c.detail.is_empty() {
                            String::new()
                        } else {
                            format!("\n  {}", c.detail)
                        }
                    );
                }
            }
        }
        FeedCommand::Parked {
            consumer,
            page_size,
            page_token,
            conn,
        } => {
            let mut client = FeedAdminServiceClient::new(conn.channel()?);
            let response = client
                .list_parked_events(pb::ListParkedEventsRequest {
                    consumer,
                    page_size,
                    page_token,
                })
                .await
                .map_err(status)?
                .into_inner();
            if conn.json() {
                let list: Vec<_> = response
                    .parked_events
                    .iter()
                    .map(|p| {
                        json!({
                            "consumer": p.consumer, "event_id": p.event_id, "event_type": p.event_type,
                            "aggregate_reference": p.aggregate_reference, "error": p.error,
                            "attempts": p.attempts, "parked_at": output::time(&p.parked_at),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"parked_events": list, "next_page_token": response.next_page_token})
                );
            } else {
                if response.parked_events.is_empty() {
                    println!("No parked events.");
                }
                for p in &response.parked_events {
                    println!(
                        "{} {} {} {} ({} attempts, parked {})\n  {}",
                        p.consumer,
                        p.event_id,
                        p.event_type,
                        p.aggregate_reference,
                        p.attempts,
                        output::time(&p.parked_at),
                        p.error
                    );
                }
                if !response.next_page_token.is_empty() {
                    println!("more: --page-token {}", response.next_page_token);
                }
            }
        }
        FeedCommand::Replay {
            consumer,
            event_id,
            conn,
        } => {
            let mut client = FeedAdminServiceClient::new(conn.channel()?);
            let response = client
                .replay_parked_event(pb::ReplayParkedEventRequest { consumer, event_id })
                .await
                .map_err(status)?
                .into_inner();
            if conn.json() {
                println!(
                    "{}",
                    json!({"applied": response.applied, "error": response.error})
                );
            } else if response.applied {
                println!("Applied; no longer parked.");
            } else {
                return Err(format!(
                    "The event failed again and stays parked: {}",
                    response.error
                ));
            }
        }
        FeedCommand::Reset {
            consumer,
            cursor,
            conn,
        } => {
            let mut client = FeedAdminServiceClient::new(conn.channel()?);
            let response = client
                .reset_consumer(pb::ResetConsumerRequest { consumer, cursor })
                .await
                .map_err(status)?
                .into_inner();
            let c = response.consumer.unwrap_or_default();
            if conn.json() {
                println!("{}", consumer_json(&c));
            } else {
                println!("{} reset; it resumes after the new cursor.", c.name);
            }
        }
    }
    Ok(())
}
