//! Measuring one list call under load: `concurrency` workers call it back to back for
//! `seconds`, each request drawn at random, and the responses are counted rather than
//! decoded (so that the measuring client takes as little of the machine's CPU as it
//! can). Shared by the list benchmarks of every service.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use rand::{SeedableRng, rngs::SmallRng};
use tonic::transport::Channel;

/// A list response as this tool reads it: whatever its message, the listed items are
/// field 1 (ListReportsResponse.reports, ListTriageQueueResponse.entries, …).
#[derive(Clone, PartialEq, prost::Message)]
struct ItemCount {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    items: Vec<bytes::Bytes>,
}

/// What one combination measured.
pub struct Measured {
    pub histogram: Histogram<u64>,
    pub rows: u64,
    pub empty: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Measured {
    fn new() -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
            rows: 0,
            empty: 0,
            errors: 0,
            first_error: None,
        }
    }
}

/// Calls `path` with requests from `make` on `concurrency` workers for `seconds`.
pub async fn measure<Req: prost::Message + Send + 'static>(
    channels: &[Channel],
    token: &str,
    path: &'static str,
    concurrency: usize,
    seconds: u64,
    seed: u64,
    make: Arc<dyn Fn(&mut SmallRng) -> Req + Send + Sync>,
) -> Result<Measured, String> {
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for i in 0..concurrency {
        let interceptor = custos_kit::client::ClientInterceptor::bearer(token)?;
        let mut grpc =
            tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                channels[i % channels.len()].clone(),
                interceptor,
            ));
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed * 1000 + i as u64);
            let mut m = Measured::new();
            while Instant::now() < end {
                let request = make(&mut rng);
                let sent = Instant::now();
                let result = async {
                    grpc.ready()
                        .await
                        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    let codec = tonic_prost::ProstCodec::<Req, ItemCount>::default();
                    let response = grpc
                        .unary(
                            tonic::Request::new(request),
                            path.parse().expect("a path"),
                            codec,
                        )
                        .await?;
                    Ok::<_, tonic::Status>(response.into_inner().items.len())
                }
                .await;
                match result {
                    Ok(rows) => {
                        m.histogram
                            .saturating_record(sent.elapsed().as_micros() as u64);
                        m.rows += rows as u64;
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
    let mut total = Measured::new();
    for worker in workers {
        let m = worker.await.map_err(|e| e.to_string())?;
        total
            .histogram
            .add(&m.histogram)
            .map_err(|e| e.to_string())?;
        total.rows += m.rows;
        total.empty += m.empty;
        total.errors += m.errors;
        total.first_error = total.first_error.or(m.first_error);
    }
    Ok(total)
}

/// The printed results of every combination, and the worst p99 among them.
pub struct Table {
    json: bool,
    seconds: u64,
    worst: f64,
}

impl Table {
    /// Prints `title` and the header (not in JSON).
    pub fn new(title: &str, seconds: u64, json: bool) -> Self {
        if !json {
            println!("{title}");
            println!(
                "{:<40} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
                "filters", "calls/s", "p50 ms", "p99 ms", "max ms", "rows", "empty"
            );
        }
        Self {
            json,
            seconds,
            worst: 0.0,
        }
    }

    /// Prints one combination; an error if any of its calls failed.
    pub fn row(&mut self, name: &str, m: &Measured) -> Result<(), String> {
        let p99 = report(name, m, self.seconds, self.json)?;
        self.worst = self.worst.max(p99);
        Ok(())
    }

    /// Prints a reference row that is not one of the combinations (not in the worst).
    pub fn reference(&mut self, name: &str, m: &Measured) -> Result<(), String> {
        report(name, m, self.seconds, self.json).map(|_| ())
    }

    /// Prints the worst p99 (not in JSON).
    pub fn finish(self) {
        if !self.json {
            println!("worst p99 over all combinations: {:.2} ms", self.worst);
        }
    }
}

/// Prints one combination (a table row, or a JSON object) and returns its p99 in ms;
/// an error if any call failed.
fn report(name: &str, m: &Measured, seconds: u64, json: bool) -> Result<f64, String> {
    let total = &m.histogram;
    let calls = total.len().max(1);
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "filters": name, "calls_per_second": total.len() as f64 / seconds as f64,
                "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": total.max() as f64 / 1000.0,
                "rows_per_call": m.rows as f64 / calls as f64, "empty_share": m.empty as f64 / calls as f64,
                "errors": m.errors,
            })
        );
    } else {
        println!(
            "{:<40} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>7.1} {:>5.0}%",
            name,
            total.len() as f64 / seconds as f64,
            ms(0.5),
            ms(0.99),
            total.max() as f64 / 1000.0,
            m.rows as f64 / calls as f64,
            100.0 * m.empty as f64 / calls as f64,
        );
    }
    match &m.first_error {
        Some(e) => Err(format!("{name}: {} calls failed, first: {e}", m.errors)),
        None => Ok(ms(0.99)),
    }
}
