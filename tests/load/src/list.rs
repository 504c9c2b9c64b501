//! `custos-load list`: ListReports with every combination of the filters the API offers
//! (kind, category, status, medium, a time window; and a reporter's own reports), each
//! combination at a chosen concurrency for a chosen time, values drawn at random for each
//! call (so some combinations match nothing, as users' do). Prints the latency of each.

use std::time::{Duration, Instant};

use custos_proto::intake::v1 as pb;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::{Target, client};

/// ListReportsResponse as this tool reads it: the reports are counted, not decoded, so
/// that the measuring client takes as little of the machine's CPU as it can.
#[derive(Clone, PartialEq, prost::Message)]
struct ListReportsCount {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    reports: Vec<bytes::Bytes>,
}

/// ListReports through a lean codec.
async fn list(
    grpc: &mut tonic::client::Grpc<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            custos_kit::client::ClientInterceptor,
        >,
    >,
    request: pb::ListReportsRequest,
) -> Result<usize, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<pb::ListReportsRequest, ListReportsCount>::default();
    let path = "/custos.intake.v1.IntakeService/ListReports"
        .parse()
        .expect("a path");
    let response = grpc
        .unary(tonic::Request::new(request), path, codec)
        .await?;
    Ok(response.into_inner().reports.len())
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// Token of a caller who sees every report (helpdesk or advisor).
    #[arg(long)]
    staff_token: String,
    /// Token of a reporter, for the "own reports" combinations.
    #[arg(long)]
    reporter_token: String,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per combination.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Days back that time windows are drawn from (the seeded reports' span).
    #[arg(long, default_value_t = 1095)]
    span_days: i64,
    /// Print one JSON object per combination instead of a table.
    #[arg(long)]
    json: bool,
    /// Only these combinations (as printed, e.g. `kind+category`); repeat for several.
    #[arg(long)]
    only: Vec<String>,
    /// The view asked for: full (every field, each report audited) or basic.
    #[arg(long, value_enum, default_value = "full")]
    view: View,
    /// Reports per page.
    #[arg(long, default_value_t = 50)]
    page_size: i32,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum View {
    Basic,
    Full,
}

/// One combination: which filters are set.
#[derive(Debug, Clone, Copy)]
struct Combination {
    kind: bool,
    category: bool,
    status: bool,
    medium: bool,
    window: bool,
    own: bool,
}

impl Combination {
    fn all() -> Vec<Combination> {
        let mut all = Vec::new();
        for own in [false, true] {
            for bits in 0..32u8 {
                all.push(Combination {
                    kind: bits & 1 != 0,
                    category: bits & 2 != 0,
                    status: bits & 4 != 0,
                    medium: bits & 8 != 0,
                    window: bits & 16 != 0,
                    own,
                });
            }
        }
        all
    }

    fn name(&self) -> String {
        let mut parts = Vec::new();
        for (set, name) in [
            (self.own, "own"),
            (self.kind, "kind"),
            (self.category, "category"),
            (self.status, "status"),
            (self.medium, "medium"),
            (self.window, "window"),
        ] {
            if set {
                parts.push(name);
            }
        }
        if parts.is_empty() {
            "(none)".into()
        } else {
            parts.join("+")
        }
    }

    fn filter(
        &self,
        rng: &mut impl Rng,
        categories: &[String],
        span_days: i64,
    ) -> pb::ReportFilter {
        let mut filter = pb::ReportFilter::default();
        if self.kind {
            filter.kind = rng.random_range(1..=2);
        }
        if self.category {
            filter.category = categories[rng.random_range(0..categories.len())].clone();
        }
        if self.status {
            filter.status = rng.random_range(1..=4);
        }
        if self.medium {
            filter.medium = rng.random_range(1..=2);
        }
        if self.window {
            // A 30-day window somewhere in the span.
            let end = time::OffsetDateTime::now_utc()
                - time::Duration::days(rng.random_range(0..span_days.max(31) - 30));
            let start = end - time::Duration::days(30);
            filter.submitted_after = Some(custos_kit::time_fmt::to_timestamp(start));
            filter.submitted_before = Some(custos_kit::time_fmt::to_timestamp(end));
        }
        filter
    }
}

struct Measured {
    histogram: Histogram<u64>,
    rows: u64,
    empty: u64,
    errors: u64,
    first_error: Option<String>,
}

pub async fn run(args: ListArgs) -> Result<(), String> {
    let channels = args.target.channels().await?;
    let categories: Vec<String> = client(channels[0].clone(), Some(&args.staff_token))?
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner()
        .categories
        .into_iter()
        .map(|c| c.code)
        .collect();
    if !args.json {
        println!(
            "ListReports ({:?} view, {} per page), {} concurrent calls, {} s per combination, \
             values drawn per call",
            args.view, args.page_size, args.concurrency, args.seconds
        );
        println!(
            "{:<40} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
            "filters", "calls/s", "p50 ms", "p99 ms", "max ms", "rows", "empty"
        );
    }
    let mut worst = 0.0f64;
    for (n, combination) in Combination::all().into_iter().enumerate() {
        if !args.only.is_empty() && !args.only.contains(&combination.name()) {
            continue;
        }
        let token = if combination.own {
            &args.reporter_token
        } else {
            &args.staff_token
        };
        let end = Instant::now() + Duration::from_secs(args.seconds);
        let mut workers = Vec::new();
        for i in 0..args.concurrency {
            let interceptor = custos_kit::client::ClientInterceptor::bearer(token)?;
            let mut grpc =
                tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                    channels[i % channels.len()].clone(),
                    interceptor,
                ));
            let categories = categories.clone();
            let span = args.span_days;
            let (page_size, view) = (args.page_size, args.view);
            workers.push(tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64((n * 1000 + i) as u64);
                let mut m = Measured {
                    histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
                    rows: 0,
                    empty: 0,
                    errors: 0,
                    first_error: None,
                };
                while Instant::now() < end {
                    let request = pb::ListReportsRequest {
                        filter: Some(combination.filter(&mut rng, &categories, span)),
                        page_size,
                        page_token: String::new(),
                        view: match view {
                            View::Basic => pb::ReportView::Basic as i32,
                            View::Full => pb::ReportView::Full as i32,
                        },
                    };
                    let sent = Instant::now();
                    match list(&mut grpc, request).await {
                        Ok(rows) => {
                            m.histogram
                                .saturating_record(sent.elapsed().as_micros() as u64);
                            let rows = rows as u64;
                            m.rows += rows;
                            m.empty += u64::from(rows == 0);
                        }
                        Err(status) => {
                            m.errors += 1;
                            m.first_error.get_or_insert_with(|| {
                                format!("{:?}: {}", status.code(), status.message())
                            });
                        }
                    }
                }
                m
            }));
        }
        let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        let (mut rows, mut empty, mut errors, mut first_error) = (0, 0, 0, None);
        for worker in workers {
            let m = worker.await.map_err(|e| e.to_string())?;
            total.add(&m.histogram).map_err(|e| e.to_string())?;
            rows += m.rows;
            empty += m.empty;
            errors += m.errors;
            first_error = first_error.or(m.first_error);
        }
        let calls = total.len().max(1);
        let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
        worst = worst.max(ms(0.99));
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "filters": combination.name(), "calls_per_second": total.len() as f64 / args.seconds as f64,
                    "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": total.max() as f64 / 1000.0,
                    "rows_per_call": rows as f64 / calls as f64, "empty_share": empty as f64 / calls as f64,
                    "errors": errors,
                })
            );
        } else {
            println!(
                "{:<40} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>7.1} {:>5.0}%",
                combination.name(),
                total.len() as f64 / args.seconds as f64,
                ms(0.5),
                ms(0.99),
                total.max() as f64 / 1000.0,
                rows as f64 / calls as f64,
                100.0 * empty as f64 / calls as f64,
            );
        }
        if let Some(e) = first_error {
            return Err(format!(
                "{}: {errors} calls failed, first: {e}",
                combination.name()
            ));
        }
    }
    if !args.json {
        println!("worst p99 over all combinations: {worst:.2} ms");
    }
    Ok(())
}
