//! `custos-load list`: ListReports with every combination of the filters the API offers
//! (kind, category, status, medium, a time window; and a reporter's own reports), each
//! combination at a chosen concurrency for a chosen time, values drawn at random for each
//! call (so some combinations match nothing, as users' do). Prints the latency of each.

use std::sync::Arc;

use custos_proto::intake::v1 as pb;
use rand::{Rng, rngs::SmallRng};

use crate::{Target, client, measure};

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

/// The name of the first row: ListCategories, which reads no database.
const FLOOR: &str = "floor: ListCategories (no database)";

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
    let mut table = measure::Table::new(
        &format!(
            "ListReports ({:?} view, {} per page), {} concurrent calls, {} s per combination, \
             values drawn per call",
            args.view, args.page_size, args.concurrency, args.seconds
        ),
        args.seconds,
        args.json,
    );
    if args.only.is_empty() || args.only.iter().any(|o| o == FLOOR) {
        // What this machine gives the cheapest authenticated call of the same service,
        // through the same client: the floor under every combination below.
        let m = measure::measure(
            &channels,
            &args.staff_token,
            "/custos.intake.v1.IntakeService/ListCategories",
            args.concurrency,
            args.seconds,
            0,
            Arc::new(|_: &mut SmallRng| pb::ListCategoriesRequest {}),
        )
        .await?;
        table.reference(FLOOR, &m)?;
    }
    for (n, combination) in Combination::all().into_iter().enumerate() {
        if !args.only.is_empty() && !args.only.contains(&combination.name()) {
            continue;
        }
        let token = if combination.own {
            &args.reporter_token
        } else {
            &args.staff_token
        };
        let categories = categories.clone();
        let (span, page_size) = (args.span_days, args.page_size);
        let view = match args.view {
            View::Basic => pb::ReportView::Basic as i32,
            View::Full => pb::ReportView::Full as i32,
        };
        let make = Arc::new(move |rng: &mut SmallRng| pb::ListReportsRequest {
            filter: Some(combination.filter(rng, &categories, span)),
            page_size,
            page_token: String::new(),
            view,
        });
        let m = measure::measure(
            &channels,
            token,
            "/custos.intake.v1.IntakeService/ListReports",
            args.concurrency,
            args.seconds,
            n as u64,
            make,
        )
        .await?;
        table.row(&combination.name(), &m)?;
    }
    table.finish();
    Ok(())
}
