//! `custos-load submit`: SubmitReport at a chosen concurrency for a chosen time, then
//! throughput and latency percentiles.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::{Target, client, reports};

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    target: Target,
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
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

struct WorkerResult {
    histogram: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

pub async fn run(args: SubmitArgs) -> Result<(), String> {
    let channels = args.target.channels().await?;
    let anonymous = args.token.is_none();
    let start = Instant::now();
    let warmup_end = start + Duration::from_secs(args.warmup);
    let end = warmup_end + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for i in 0..args.concurrency {
        let mut client = client(channels[i % channels.len()].clone(), args.token.as_deref())?;
        workers.push(tokio::spawn(async move {
            let mut result = WorkerResult {
                histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
                errors: 0,
                first_error: None,
            };
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = client.submit_report(reports::phishing(anonymous)).await;
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
        }));
    }
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
