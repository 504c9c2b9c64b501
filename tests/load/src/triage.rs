//! `custos-load triage`: ListTriageQueue (classification) with every combination of the
//! filters the API offers (kind, a category, medium, personal information, waiting longer
//! than some days), each at a chosen concurrency for a chosen time, values drawn at
//! random for each call. Prints the latency of each.

use std::sync::Arc;

use custos_proto::classification::v1 as pb;
use rand::{Rng, rngs::SmallRng};

use crate::{Target, measure};

#[derive(Debug, clap::Args)]
pub struct TriageArgs {
    /// Classification's address (`--server`).
    #[command(flatten)]
    target: Target,
    /// Token of a security advisor.
    #[arg(long)]
    token: String,
    /// The categories to draw filters from (repeat), as seeded.
    #[arg(long = "category", required = true)]
    categories: Vec<String>,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per combination.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Days back that ages are drawn from (the seeded queue's span).
    #[arg(long, default_value_t = 365)]
    span_days: i64,
    /// Entries per page.
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    /// Print one JSON object per combination instead of a table.
    #[arg(long)]
    json: bool,
    /// Only these combinations (as printed, e.g. `kind+category`); repeat for several.
    #[arg(long)]
    only: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Combination(u8);

const FILTERS: [&str; 5] = ["kind", "category", "medium", "personal", "age"];

impl Combination {
    fn has(self, filter: usize) -> bool {
        self.0 & (1 << filter) != 0
    }

    fn name(self) -> String {
        let parts: Vec<&str> = (0..FILTERS.len())
            .filter(|&i| self.has(i))
            .map(|i| FILTERS[i])
            .collect();
        if parts.is_empty() {
            "(none)".into()
        } else {
            parts.join("+")
        }
    }

    fn filter(
        self,
        rng: &mut impl Rng,
        categories: &[String],
        span_days: i64,
    ) -> pb::TriageEntryFilter {
        let mut filter = pb::TriageEntryFilter::default();
        if self.has(0) {
            filter.kind = rng.random_range(1..=2);
        }
        if self.has(1) {
            filter.categories = vec![categories[rng.random_range(0..categories.len())].clone()];
        }
        if self.has(2) {
            filter.medium = rng.random_range(1..=2);
        }
        if self.has(3) {
            filter.personal_information = Some(rng.random_bool(0.5));
        }
        if self.has(4) {
            // Waiting longer than some days.
            let before = time::OffsetDateTime::now_utc()
                - time::Duration::days(rng.random_range(0..span_days.max(1)));
            filter.submitted_before = Some(custos_kit::time_fmt::to_timestamp(before));
        }
        filter
    }
}

pub async fn run(args: TriageArgs) -> Result<(), String> {
    let channels = args.target.channels().await?;
    let mut table = measure::Table::new(
        &format!(
            "ListTriageQueue ({} per page), {} concurrent calls, {} s per combination, values \
             drawn per call",
            args.page_size, args.concurrency, args.seconds
        ),
        args.seconds,
        args.json,
    );
    for bits in 0..32u8 {
        let combination = Combination(bits);
        if !args.only.is_empty() && !args.only.contains(&combination.name()) {
            continue;
        }
        let categories = args.categories.clone();
        let (span, page_size) = (args.span_days, args.page_size);
        let make = Arc::new(move |rng: &mut SmallRng| pb::ListTriageQueueRequest {
            filter: Some(combination.filter(rng, &categories, span)),
            page_size,
            page_token: String::new(),
        });
        let m = measure::measure(
            &channels,
            &args.token,
            "/custos.classification.v1.ClassificationService/ListTriageQueue",
            args.concurrency,
            args.seconds,
            u64::from(bits),
            make,
        )
        .await?;
        table.row(&combination.name(), &m)?;
    }
    table.finish();
    Ok(())
}
