//! `custos-load incidents`: ListIncidents with every combination of the filters the API
//! offers (states, level, category, service affecting, personal data, officer, declared
//! before some day), each at a chosen concurrency for a chosen time, values drawn at
//! random for each call; then GetIncident by random reference. Prints the latency of
//! each.

use std::sync::Arc;

use custos_proto::classification::v1 as pb;
use rand::{Rng, rngs::SmallRng};

use crate::{Target, measure};

#[derive(Debug, clap::Args)]
pub struct IncidentsArgs {
    /// Classification's address (`--server`).
    #[command(flatten)]
    target: Target,
    /// Token of the caller (a security advisor sees the whole register).
    #[arg(long)]
    token: String,
    /// The categories to draw filters from (repeat), as seeded.
    #[arg(long = "category", required = true)]
    categories: Vec<String>,
    /// Officers to draw filters from (repeat), as seeded.
    #[arg(long = "officer", required = true)]
    officers: Vec<String>,
    /// How many incidents were seeded, numbered from 1 (for GetIncident's references).
    #[arg(long)]
    incidents: u64,
    /// Prefix of the references, e.g. `INC-2026-`.
    #[arg(long, default_value = "INC-2026-")]
    reference_prefix: String,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per combination.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Days back that declaration dates are drawn from (the seeded register's span).
    #[arg(long, default_value_t = 1_095)]
    span_days: i64,
    /// Incidents per page.
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    /// Print one JSON object per combination instead of a table.
    #[arg(long)]
    json: bool,
    /// Only these combinations (as printed, e.g. `state+level`); repeat for several.
    #[arg(long)]
    only: Vec<String>,
}

const FILTERS: [&str; 7] = [
    "state",
    "level",
    "category",
    "affecting",
    "personal",
    "officer",
    "age",
];

#[derive(Debug, Clone, Copy)]
struct Combination(u8);

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

    fn filter(self, rng: &mut impl Rng, a: &Drawn) -> pb::IncidentFilter {
        let mut f = pb::IncidentFilter::default();
        if self.has(0) {
            // The open states together (the usual question), or one state.
            f.states = if rng.random_bool(0.5) {
                (1..=5).collect()
            } else {
                vec![rng.random_range(1..=6)]
            };
        }
        if self.has(1) {
            f.levels = vec![rng.random_range(1..=3)];
        }
        if self.has(2) {
            f.categories = vec![a.categories[rng.random_range(0..a.categories.len())].clone()];
        }
        if self.has(3) {
            f.service_affecting = Some(rng.random_bool(0.5));
        }
        if self.has(4) {
            f.personal_data = Some(rng.random_bool(0.5));
        }
        if self.has(5) {
            f.officer = a.officers[rng.random_range(0..a.officers.len())].clone();
        }
        if self.has(6) {
            let before = time::OffsetDateTime::now_utc()
                - time::Duration::days(rng.random_range(0..a.span_days.max(1)));
            f.declared_before = Some(custos_kit::time_fmt::to_timestamp(before));
        }
        f
    }
}

/// What filters are drawn from.
struct Drawn {
    categories: Vec<String>,
    officers: Vec<String>,
    span_days: i64,
}

pub async fn run(args: IncidentsArgs) -> Result<(), String> {
    let channels = args.target.channels().await?;
    let drawn = Arc::new(Drawn {
        categories: args.categories.clone(),
        officers: args.officers.clone(),
        span_days: args.span_days,
    });
    let mut table = measure::Table::new(
        &format!(
            "ListIncidents ({} per page), {} concurrent calls, {} s per combination, values \
             drawn per call",
            args.page_size, args.concurrency, args.seconds
        ),
        args.seconds,
        args.json,
    );
    for bits in 0..(1u8 << FILTERS.len()) {
        let combination = Combination(bits);
        if !args.only.is_empty() && !args.only.contains(&combination.name()) {
            continue;
        }
        let (drawn, page_size) = (drawn.clone(), args.page_size);
        let make = Arc::new(move |rng: &mut SmallRng| pb::ListIncidentsRequest {
            filter: Some(combination.filter(rng, &drawn)),
            page_size,
            page_token: String::new(),
        });
        let m = measure::measure(
            &channels,
            &args.token,
            "/custos.classification.v1.IncidentService/ListIncidents",
            args.concurrency,
            args.seconds,
            u64::from(bits),
            make,
        )
        .await?;
        table.row(&combination.name(), &m)?;
    }
    let (prefix, count) = (args.reference_prefix.clone(), args.incidents.max(1));
    let make = Arc::new(move |rng: &mut SmallRng| pb::GetIncidentRequest {
        incident_id: format!("{prefix}{:06}", rng.random_range(1..=count)),
    });
    let m = measure::measure(
        &channels,
        &args.token,
        "/custos.classification.v1.IncidentService/GetIncident",
        args.concurrency,
        args.seconds,
        999,
        make,
    )
    .await?;
    table.row("GetIncident (by reference)", &m)?;
    table.finish();
    Ok(())
}
