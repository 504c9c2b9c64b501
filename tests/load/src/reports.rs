//! Reports to send: the fixed one `submit` measures, and the spread `seed` fills intake
//! with (kinds, categories by the organisation's own taxonomy with a few common and many
//! rare, paper now and then, personal information sometimes, many reporters).

use std::time::Instant;

use custos_proto::intake::v1 as pb;
use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::{Target, client};

fn occurred() -> prost_types::Timestamp {
    custos_kit::time_fmt::to_timestamp(
        time::OffsetDateTime::now_utc() - time::Duration::minutes(30),
    )
}

fn reporter(anonymous: bool) -> pb::submit_report_request::Reporter {
    if anonymous {
        pb::submit_report_request::Reporter::Anonymous(pb::Anonymous {})
    } else {
        pb::submit_report_request::Reporter::Contact(pb::ReporterContact {
            name: "Load Test".into(),
            phone: "01632 960123".into(),
            email: "load@example.org".into(),
        })
    }
}

/// The report `submit` sends, each time with a new idempotency key.
pub fn phishing(anonymous: bool) -> pb::SubmitReportRequest {
    pb::SubmitReportRequest {
        kind: pb::ReportKind::Event as i32,
        details: Some(pb::ReportDetails {
            category: "phishing".into(),
            medium: pb::ReportMedium::Electronic as i32,
            data_involved: "Mailbox".into(),
            risk_to_others: pb::RiskToOthers::Unknown as i32,
            incident_location: "Head office".into(),
            occurred_at: Some(occurred()),
            circumstances: "Email asking for bank details".into(),
            ..Default::default()
        }),
        reporter: Some(reporter(anonymous)),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    }
}

/// A report drawn from the spread: 60% events; a category that applies to its kind,
/// the first few of the taxonomy far more often than the rest; 15% on paper.
pub fn spread(rng: &mut impl Rng, categories: &[pb::Category]) -> pb::SubmitReportRequest {
    let kind = if rng.random_bool(0.6) {
        pb::ReportKind::Event
    } else {
        pb::ReportKind::Weakness
    };
    let fitting: Vec<&pb::Category> = categories
        .iter()
        .filter(|c| c.kinds.contains(&(kind as i32)))
        .collect();
    // Zipf-like: the n-th fitting category is chosen in proportion to 1/n.
    let weights: Vec<f64> = (1..=fitting.len()).map(|n| 1.0 / n as f64).collect();
    let mut pick = rng.random::<f64>() * weights.iter().sum::<f64>();
    let mut category = fitting[fitting.len() - 1];
    for (c, w) in fitting.iter().zip(&weights) {
        if pick < *w {
            category = c;
            break;
        }
        pick -= w;
    }
    let medium = if rng.random_bool(0.15) {
        pb::ReportMedium::Paper
    } else {
        pb::ReportMedium::Electronic
    };
    let event = kind == pb::ReportKind::Event;
    pb::SubmitReportRequest {
        kind: kind as i32,
        details: Some(pb::ReportDetails {
            category: category.code.clone(),
            medium: medium as i32,
            data_involved: "Case files".into(),
            risk_to_others: pb::RiskToOthers::Unknown as i32,
            incident_location: if event {
                "Civic centre".into()
            } else {
                String::new()
            },
            occurred_at: event.then(occurred),
            circumstances: "Seeded for the list benchmark".into(),
            personal_information: rng.random_bool(0.2),
            ..Default::default()
        }),
        reporter: Some(reporter(false)),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    }
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    target: Target,
    /// Reporter tokens (repeat): reports are spread over their subjects.
    #[arg(long = "token", required_unless_present = "secret")]
    tokens: Vec<String>,
    /// Instead of --token: the service's HS256 development secret, to mint tokens for
    /// `--reporters` subjects `reporter-1` … `reporter-N` (so that each has a few
    /// reports, as people do).
    #[arg(long, env = "CUSTOS_LOAD_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The issuer the service expects, with --secret.
    #[arg(long, default_value = "custos")]
    issuer: String,
    /// Reporters to mint tokens for, with --secret.
    #[arg(long, default_value_t = 20_000)]
    reporters: usize,
    /// Reports to submit.
    #[arg(long, default_value_t = 1_000_000)]
    reports: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// The reporter tokens to seed with: given, or minted with the development secret.
fn tokens(args: &SeedArgs) -> Vec<String> {
    let Some(secret) = &args.secret else {
        return args.tokens.clone();
    };
    let minter = custos_kit::auth::TokenMinter::from_config(&custos_kit::config::AuthConfig {
        issuer: args.issuer.clone(),
        hs256_secret: Some(secret.clone().into()),
        ..Default::default()
    })
    .expect("a secret is set");
    (1..=args.reporters.max(1))
        .map(|n| {
            minter.mint(
                &format!("reporter-{n}"),
                &[custos_kit::auth::Role::Reporter],
                std::time::Duration::from_secs(24 * 3600),
            )
        })
        .collect()
}

pub async fn seed(args: SeedArgs) -> Result<(), String> {
    let channels = args.target.channels().await?;
    let tokens = std::sync::Arc::new(tokens(&args));
    let categories = client(channels[0].clone(), Some(&tokens[0]))?
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner()
        .categories;
    let started = Instant::now();
    let per_worker = args.reports.div_ceil(args.concurrency);
    let mut workers = Vec::new();
    for i in 0..args.concurrency {
        let channel = channels[i % channels.len()].clone();
        let (categories, tokens) = (categories.clone(), tokens.clone());
        let count = per_worker.min(args.reports.saturating_sub(i * per_worker));
        workers.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(i as u64);
            for _ in 0..count {
                // Each report from a reporter drawn at random.
                let token = &tokens[rng.random_range(0..tokens.len())];
                let request = tonic::Request::new(spread(&mut rng, &categories));
                client(channel.clone(), Some(token))?
                    .submit_report(request)
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
            }
            Ok::<_, String>(())
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    println!(
        "seeded {} reports in {:.0} s",
        args.reports,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
