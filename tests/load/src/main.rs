//! `custos-load`: drives SubmitReport against a running intake service at a chosen
//! concurrency for a chosen time, then prints throughput and latency percentiles.
//! Every request is a new report (its own idempotency key), so each one is a durable
//! write. Only ever point it at a service on this machine.

use std::time::{Duration, Instant};

use clap::Parser;
use custos_kit::client::ClientInterceptor;
use custos_proto::intake::v1::{self as pb, intake_service_client::IntakeServiceClient};
use hdrhistogram::Histogram;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Intake address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Bearer token of a reporter (named reports); without one, reports are anonymous.
    #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// HTTP/2 connections shared by the workers.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn request(anonymous: bool) -> pb::SubmitReportRequest {
    let occurred = time::OffsetDateTime::now_utc() - time::Duration::minutes(30);
    let reporter = if anonymous {
        pb::submit_report_request::Reporter::Anonymous(pb::Anonymous {})
    } else {
        pb::submit_report_request::Reporter::Contact(pb::ReporterContact {
            name: "Load Test".into(),
            phone: "01632 960123".into(),
            email: "load@example.org".into(),
        })
    };
    pb::SubmitReportRequest {
        kind: pb::ReportKind::Event as i32,
        details: Some(pb::ReportDetails {
            category: "phishing".into(),
            medium: pb::ReportMedium::Electronic as i32,
            data_involved: "Mailbox".into(),
            risk_to_others: pb::RiskToOthers::Unknown as i32,
            incident_location: "Head office".into(),
            occurred_at: Some(custos_kit::time_fmt::to_timestamp(occurred)),
            circumstances: "Email asking for bank details".into(),
            ..Default::default()
        }),
        reporter: Some(reporter),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    }
}

struct WorkerResult {
    histogram: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let interceptor = match &args.token {
        Some(t) => ClientInterceptor::bearer(t)?,
        None => ClientInterceptor::anonymous(),
    };
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = Channel::from_shared(args.server.clone())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", args.server))?;
        channels.push(channel);
    }
    let anonymous = args.token.is_none();
    let start = Instant::now();
    let warmup_end = start + Duration::from_secs(args.warmup);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let channel = channels[i % channels.len()].clone();
            let mut client =
                IntakeServiceClient::new(InterceptedService::new(channel, interceptor.clone()));
            tokio::spawn(async move {
                let mut result = WorkerResult {
                    histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                        .expect("histogram bounds"),
                    errors: 0,
                    first_error: None,
                };
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let outcome = client.submit_report(request(anonymous)).await;
                    let took = sent.elapsed();
                    if sent < warmup_end {
                        continue;
                    }
                    match outcome {
                        Ok(_) => result.histogram.saturating_record(took.as_micros() as u64),
                        Err(status) => {
                            result.errors += 1;
                            result.first_error.get_or_insert_with(|| {
                                format!("{:?}: {}", status.code(), status.message())
                            });
                        }
                    }
                }
                result
            })
        })
        .collect();
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let (mut errors, mut first_error) = (0, None);
    for worker in workers {
        let r = worker.await.map_err(|e| e.to_string())?;
        histogram.add(&r.histogram).map_err(|e| e.to_string())?;
        errors += r.errors;
        first_error = first_error.or(r.first_error);
    }
    let ok = histogram.len();
    let rate = ok as f64 / args.seconds as f64;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "concurrency": args.concurrency, "seconds": args.seconds, "ok": ok, "errors": errors,
                "per_second": rate, "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": histogram.max() as f64 / 1000.0,
            })
        );
    } else {
        println!(
            "SubmitReport: {} concurrent calls for {} s ({} s warm-up)",
            args.concurrency, args.seconds, args.warmup
        );
        println!("  succeeded {ok}, failed {errors}");
        println!("  throughput {rate:.0} reports/s");
        println!(
            "  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            histogram.max() as f64 / 1000.0
        );
    }
    if let Some(e) = first_error {
        eprintln!("first error: {e}");
    }
    if ok == 0 {
        Err("no call succeeded".into())
    } else {
        Ok(())
    }
}
