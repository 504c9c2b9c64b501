//! `custos-load continuity`: many subscribers follow the business-continuity feed while an
//! incident changes at a steady rate; for every change, the time from its commit (the
//! notice's `updated_at`, taken just before the commit: the figure errs high) to its
//! delivery to each subscriber. Prints the latency over every delivery, and how many
//! arrived.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use custos_kit::client::ClientInterceptor;
use custos_proto::{
    classification::v1::{self as pb, incident_service_client::IncidentServiceClient},
    continuity::v1::{
        self as cpb, continuity_service_client::ContinuityServiceClient,
        watch_incident_notices_response::Item,
    },
};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tonic::service::interceptor::InterceptedService;

use crate::Target;

#[derive(Debug, clap::Args)]
pub struct ContinuityArgs {
    /// Classification's address (`--server`); `--connections` carry the subscribers.
    #[command(flatten)]
    target: Target,
    /// Token with role business_continuity.
    #[arg(long)]
    subscriber_token: String,
    /// Token of a security advisor, who changes the incident.
    #[arg(long)]
    advisor_token: String,
    /// The service-affecting incident to change (id or reference).
    #[arg(long)]
    incident: String,
    /// Subscribers following the feed at once.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Changes made, one after another.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Changes per second.
    #[arg(long, default_value_t = 10)]
    rate: u32,
}

fn now_micros() -> u64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as u64
}

fn micros(ts: &Option<prost_types::Timestamp>) -> u64 {
    ts.as_ref()
        .map_or(0, |t| t.seconds as u64 * 1_000_000 + t.nanos as u64 / 1_000)
}

pub async fn run(args: ContinuityArgs) -> Result<(), String> {
    let channels = args.target.channels().await?;
    // One permit per subscriber that has caught up.
    let caught_up = Arc::new(Semaphore::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let marker = format!("load {}", uuid::Uuid::new_v4());
    let mut subscribers = Vec::new();
    for i in 0..args.subscribers {
        let interceptor = ClientInterceptor::bearer(&args.subscriber_token)?;
        let mut client = ContinuityServiceClient::new(InterceptedService::new(
            channels[i % channels.len()].clone(),
            interceptor,
        ));
        let (caught_up, delivered, marker) = (caught_up.clone(), delivered.clone(), marker.clone());
        let expected = args.changes;
        subscribers.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
            // From the snapshot's cursor, as a subscriber does.
            let cursor = client
                .list_incident_notices(cpb::ListIncidentNoticesRequest::default())
                .await
                .map_err(|s| s.to_string())?
                .into_inner()
                .cursor;
            let mut stream = client
                .watch_incident_notices(cpb::WatchIncidentNoticesRequest {
                    after_cursor: cursor,
                    filter: None,
                })
                .await
                .map_err(|s| s.to_string())?
                .into_inner();
            let mut seen = 0;
            while seen < expected {
                let item = tokio::time::timeout(Duration::from_secs(60), stream.message())
                    .await
                    .map_err(|_| "no item for 60 s".to_owned())?
                    .map_err(|s| s.to_string())?
                    .ok_or("the stream ended")?;
                match item.item {
                    Some(Item::CaughtUp(_)) => {
                        caught_up.add_permits(1);
                    }
                    Some(Item::Change(change)) => {
                        let notice = change.notice.unwrap_or_default();
                        if notice.current_action.starts_with(&marker) {
                            let at = now_micros();
                            latency
                                .saturating_record(at.saturating_sub(micros(&notice.updated_at)));
                            seen += 1;
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
            Ok::<_, String>(latency)
        }));
    }
    let all = u32::try_from(args.subscribers).map_err(|_| "too many subscribers")?;
    let _ = caught_up
        .acquire_many(all)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{} subscribers caught up; making {} changes at {}/s",
        args.subscribers, args.changes, args.rate
    );

    let mut advisor = IncidentServiceClient::new(InterceptedService::new(
        channels[0].clone(),
        ClientInterceptor::bearer(&args.advisor_token)?,
    ));
    let mut revision = advisor
        .get_incident(pb::GetIncidentRequest {
            incident_id: args.incident.clone(),
        })
        .await
        .map_err(|s| s.to_string())?
        .into_inner()
        .incident
        .unwrap_or_default()
        .revision;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    for step in 0..args.changes {
        tick.tick().await;
        let changed = advisor
            .update_incident(pb::UpdateIncidentRequest {
                incident_id: args.incident.clone(),
                revision,
                incident: Some(pb::Incident {
                    continuity_statement: format!("{marker} step {step}"),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["continuity_statement".into()],
                }),
                reason: "load".into(),
                idempotency_key: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .map_err(|s| s.to_string())?
            .into_inner()
            .incident
            .unwrap_or_default();
        revision = changed.revision;
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let mut failed = 0;
    for s in subscribers {
        match s.await.map_err(|e| e.to_string())? {
            Ok(h) => total.add(&h).map_err(|e| e.to_string())?,
            Err(e) => {
                failed += 1;
                eprintln!("a subscriber failed: {e}");
            }
        }
    }
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "delivered {} of {} ({} subscribers failed); commit to delivery: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        delivered.load(Ordering::Relaxed),
        args.changes * args.subscribers,
        failed,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        total.max() as f64 / 1000.0
    );
    if failed > 0 {
        return Err(format!("{failed} subscribers failed"));
    }
    Ok(())
}
