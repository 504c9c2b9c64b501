//! GetRiskMatrix and ScoreImpact: the policy's matrix, a corporate one, scoring from
//! figures and choices, and every way a request or a matrix file can be wrong.

use custos_classification::ClassificationSettings;
use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
    service::App,
};
use custos_proto::{
    classification::v1::{self as pb, figure_bound::Value},
    google::r#type::Money,
    prost_types::Duration,
};
use custos_testing::{Backend, TestDatabase, on_both_backends};
use tonic::Code;

use crate::common::*;

fn gbp(units: i64, nanos: i32) -> Option<Money> {
    Some(Money {
        currency_code: "GBP".into(),
        units,
        nanos,
    })
}

fn days(d: i64) -> Duration {
    Duration {
        seconds: d * 86_400,
        nanos: 0,
    }
}

fn choice(dimension: &str, row: &str) -> pb::ImpactChoice {
    pb::ImpactChoice {
        dimension: dimension.into(),
        row: row.into(),
    }
}

fn advisor(c: &TestClassification) -> Client {
    c.client("sam", &[Role::SecurityAdvisor])
}

/// Where each dimension landed: (dimension, row, figure_row, chosen_row).
fn rows(score: &pb::ImpactScore) -> Vec<(&str, &str, &str, &str)> {
    score
        .dimensions
        .iter()
        .map(|d| {
            (
                d.dimension.as_str(),
                d.row.as_str(),
                d.figure_row.as_str(),
                d.chosen_row.as_str(),
            )
        })
        .collect()
}

async fn the_policy_matrix_is_served_to_anyone_signed_in(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let matrix = c
        .client("rita", &[Role::Reporter])
        .get_risk_matrix(pb::GetRiskMatrixRequest {})
        .await
        .expect("any signed-in person may read the matrix")
        .into_inner()
        .matrix
        .unwrap();
    assert_eq!(matrix.currency_code, "GBP");
    assert_eq!(matrix.backup_gap_threshold, Some(days(2)));
    let rows: Vec<(&str, i32)> = matrix
        .rows
        .iter()
        .map(|r| (r.code.as_str(), r.level))
        .collect();
    use pb::ImpactLevel::{High, Low, Medium};
    assert_eq!(
        rows,
        [
            ("none", Low as i32),
            ("minor", Low as i32),
            ("moderate", Medium as i32),
            ("major", High as i32),
            ("severe", High as i32)
        ]
    );
    assert_eq!(matrix.dimensions.len(), 7);
    let financial = matrix
        .dimensions
        .iter()
        .find(|d| d.code == "financial")
        .unwrap();
    assert_eq!(financial.figure, pb::ImpactFigure::FinancialLoss as i32);
    assert_eq!(financial.descriptors.len(), 5);
    let severe = &financial.descriptors[4];
    assert_eq!(severe.text, "More than £1,000,000");
    assert_eq!(
        severe.bound,
        Some(pb::FigureBound {
            value: Some(Value::Amount(gbp(1_000_000, 0).unwrap())),
            exclusive: true
        })
    );
    let contractual = matrix
        .dimensions
        .iter()
        .find(|d| d.code == "contractual")
        .unwrap();
    assert_eq!(contractual.figure, pb::ImpactFigure::None as i32);
    assert_eq!(matrix.revision.len(), 16, "a revision: {}", matrix.revision);
    assert!(contractual.descriptors.iter().all(|d| d.bound.is_none()));

    let err = c
        .anonymous()
        .get_risk_matrix(pb::GetRiskMatrixRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

on_both_backends!(the_policy_matrix_is_served_to_anyone_signed_in);

#[tokio::test]
async fn an_impact_is_scored_from_figures_and_choices() {
    let c = TestClassification::start(Backend::Sqlite).await;
    let score = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            figures: Some(pb::ImpactFigures {
                estimated_financial_loss: gbp(250_000, 0),
                damages_and_fines: gbp(9_999, 990_000_000),
                people_disciplined: Some(3),
                systems_without_backup: Some(pb::SystemsWithoutBackup {
                    // Three days and one day: only the first has lapsed (2 days).
                    backup_gaps: vec![days(3), days(1)],
                }),
            }),
            choices: vec![
                choice("reputational_media", "minor"),
                choice("contractual", "none"),
                // A choice below the figure's row: the figure counts.
                choice("financial", "minor"),
                // A choice above the figure's row: the choice counts.
                choice("legal", "severe"),
                choice("personal_privacy", "moderate"),
            ],
        })
        .await
        .expect("score")
        .into_inner()
        .score
        .unwrap();
    assert_eq!(
        rows(&score),
        [
            ("reputational_media", "minor", "", "minor"),
            ("reputational_government", "moderate", "moderate", ""),
            ("contractual", "none", "", "none"),
            ("legal", "severe", "minor", "severe"),
            ("financial", "moderate", "moderate", "minor"),
            ("disruption", "moderate", "moderate", ""),
            ("personal_privacy", "moderate", "", "moderate"),
        ]
    );
    assert_eq!(score.overall_level, pb::ImpactLevel::High as i32);
    let legal = &score.dimensions[3];
    assert_eq!(legal.level, pb::ImpactLevel::High as i32);
    assert_eq!(
        legal.descriptor,
        "Over £1M damages and / or fine. Custodial sentence(s) imposed"
    );
    let matrix = advisor(&c)
        .get_risk_matrix(pb::GetRiskMatrixRequest {})
        .await
        .unwrap()
        .into_inner()
        .matrix
        .unwrap();
    assert_eq!(
        score.matrix_revision, matrix.revision,
        "the score names its matrix"
    );

    // Without the severe choice, the highest level is medium.
    let medium = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            figures: Some(pb::ImpactFigures {
                estimated_financial_loss: gbp(250_000, 0),
                damages_and_fines: gbp(0, 0),
                people_disciplined: Some(0),
                ..Default::default()
            }),
            // Zero figures place nothing (no fine says nothing of a custodial
            // sentence): those dimensions need choices too.
            choices: [
                "reputational_media",
                "reputational_government",
                "contractual",
                "legal",
                "disruption",
                "personal_privacy",
            ]
            .map(|d| choice(d, "minor"))
            .to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    assert_eq!(medium.overall_level, pb::ImpactLevel::Medium as i32);
}

#[tokio::test]
async fn anyone_signed_in_may_score_and_no_one_else() {
    let c = TestClassification::start(Backend::Sqlite).await;
    let request = || pb::ScoreImpactRequest {
        choices: DIMENSIONS.map(|d| choice(d, "none")).to_vec(),
        ..Default::default()
    };
    let err = c.anonymous().score_impact(request()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        status_reason(&err),
        Some(("TOKEN_MISSING".into(), "classification.custos".into()))
    );
    for role in [
        Role::Reporter,
        Role::Helpdesk,
        Role::SecurityAdvisor,
        Role::IncidentOfficer,
        Role::Dpo,
        Role::Service,
    ] {
        let score = c
            .client("x", &[role])
            .score_impact(request())
            .await
            .unwrap_or_else(|e| panic!("{role}: {e:?}"))
            .into_inner()
            .score
            .unwrap();
        assert_eq!(score.overall_level, pb::ImpactLevel::Low as i32, "{role}");
    }
}

#[tokio::test]
async fn every_bad_field_is_named_at_once() {
    let c = TestClassification::start(Backend::Sqlite).await;
    let err = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            figures: Some(pb::ImpactFigures {
                estimated_financial_loss: Some(Money {
                    currency_code: "EUR".into(),
                    units: 5,
                    nanos: 0,
                }),
                damages_and_fines: gbp(-1, 0),
                people_disciplined: Some(-2),
                systems_without_backup: Some(pb::SystemsWithoutBackup {
                    backup_gaps: vec![days(3), days(-1)],
                }),
            }),
            choices: vec![
                choice("weather", "none"),
                choice("legal", "catastrophic"),
                choice("contractual", "minor"),
                choice("contractual", "major"),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        status_reason(&err),
        Some(("INVALID_ARGUMENT".into(), "classification.custos".into()))
    );
    let fields: Vec<String> = status_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "figures.estimated_financial_loss.currency_code",
            "figures.damages_and_fines",
            "figures.people_disciplined",
            "figures.systems_without_backup.backup_gaps[1]",
            "choices[0].dimension",
            "choices[1].row",
            "choices[3].dimension",
        ]
    );
    let text: Vec<String> = status_violations(&err)
        .into_iter()
        .map(|v| v.description)
        .collect();
    assert!(text[0].contains("must be GBP"), "{}", text[0]);
    assert!(
        text[5].contains("rows: none, minor, moderate, major, severe"),
        "{}",
        text[5]
    );
    assert!(
        text[6].contains("already chosen at choices[2]"),
        "{}",
        text[6]
    );

    // Money whose parts disagree, out of range, or finer than a penny.
    for (units, nanos) in [
        (1, -10_000_000),
        (-1, 10_000_000),
        (0, 1_000_000_000),
        (12, 5),
    ] {
        let err = advisor(&c)
            .score_impact(pb::ScoreImpactRequest {
                figures: Some(pb::ImpactFigures {
                    estimated_financial_loss: gbp(units, nanos),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let v = status_violations(&err);
        assert_eq!(
            v[0].field, "figures.estimated_financial_loss.nanos",
            "{units} {nanos}"
        );
    }
}

#[tokio::test]
async fn a_huge_request_gets_a_short_answer() {
    let c = TestClassification::start(Backend::Sqlite).await;
    // More choices than dimensions are refused before any is looked at.
    let err = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            choices: vec![choice(&"x".repeat(100_000), "none"); 8],
            ..Default::default()
        })
        .await
        .unwrap_err();
    let v = status_violations(&err);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].field, "choices");
    assert!(
        v[0].description.contains("at most 7"),
        "{}",
        v[0].description
    );

    // What a violation quotes of the caller's input is cut short.
    let err = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            choices: vec![choice(&"x".repeat(100_000), "none")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    let v = status_violations(&err);
    assert_eq!(v[0].field, "choices[0].dimension");
    assert!(v[0].description.len() < 300, "{}", v[0].description.len());

    // Thousands of bad durations: ten named, the rest counted.
    let err = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            figures: Some(pb::ImpactFigures {
                systems_without_backup: Some(pb::SystemsWithoutBackup {
                    backup_gaps: vec![days(-1); 5_000],
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let v = status_violations(&err);
    assert_eq!(v.len(), 11);
    assert_eq!(v[9].field, "figures.systems_without_backup.backup_gaps[9]");
    assert_eq!(v[10].field, "figures.systems_without_backup.backup_gaps");
    assert_eq!(v[10].description, "4990 more invalid durations");
}

#[tokio::test]
async fn a_dimension_left_unscored_is_refused_by_name() {
    let c = TestClassification::start(Backend::Sqlite).await;
    let err = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            figures: Some(pb::ImpactFigures {
                estimated_financial_loss: gbp(10, 0),
                // Lapsed backups below the threshold place nothing.
                systems_without_backup: Some(pb::SystemsWithoutBackup {
                    backup_gaps: vec![days(1)],
                }),
                ..Default::default()
            }),
            choices: vec![choice("personal_privacy", "none")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        status_reason(&err),
        Some(("IMPACT_UNSCORED".into(), "classification.custos".into()))
    );
    let details = tonic_types::StatusExt::get_error_details(&err);
    assert_eq!(
        details.error_info().unwrap().metadata["dimensions"],
        "reputational_media,reputational_government,contractual,legal,disruption"
    );
    let v = status_violations(&err);
    assert_eq!(v.len(), 5, "one per dimension: {v:?}");
    assert!(v.iter().all(|v| v.field == "choices"));
    assert_eq!(
        v[3].description,
        "no figure or choice scores the dimension `legal`: choose a row for it"
    );
}

const CORPORATE: &str = r#"
display_name = "Corporate risk matrix"
currency = "EUR"
backup_gap_days = 1
[[row]]
code = "acceptable"
display_name = "Acceptable"
level = "low"
[[row]]
code = "serious"
display_name = "Serious"
level = "medium"
[[row]]
code = "critical"
display_name = "Critical"
level = "high"
[[dimension]]
code = "cost"
display_name = "Cost"
figure = "financial_loss"
[dimension.descriptors]
acceptable = "Under €5,000"
serious = "€5,000 to €50,000"
critical = "Over €50,000"
[dimension.bounds]
acceptable = { at_least = 0 }
serious = { at_least = 5000 }
critical = { more_than = 50000 }
"#;

#[tokio::test]
async fn a_corporate_matrix_replaces_the_policy_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix.toml");
    std::fs::write(&path, CORPORATE).unwrap();
    let c = TestClassification::start_with(
        Backend::Sqlite,
        ClassificationSettings {
            risk_matrix_file: Some(path),
            ..settings(NO_INTAKE)
        },
    )
    .await;
    let matrix = advisor(&c)
        .get_risk_matrix(pb::GetRiskMatrixRequest {})
        .await
        .unwrap()
        .into_inner()
        .matrix
        .unwrap();
    assert_eq!(matrix.display_name, "Corporate risk matrix");
    assert_eq!(matrix.dimensions.len(), 1);
    assert_eq!(matrix.backup_gap_threshold, Some(days(1)));
    assert_eq!(matrix.revision.len(), 16);
    let policy = TestClassification::start(Backend::Sqlite).await;
    let policy_matrix = advisor(&policy)
        .get_risk_matrix(pb::GetRiskMatrixRequest {})
        .await
        .unwrap()
        .into_inner()
        .matrix
        .unwrap();
    assert_ne!(
        matrix.revision, policy_matrix.revision,
        "another matrix, another revision"
    );

    let score = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            figures: Some(pb::ImpactFigures {
                estimated_financial_loss: Some(Money {
                    currency_code: "EUR".into(),
                    units: 50_000,
                    nanos: 500_000_000,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    assert_eq!(rows(&score), [("cost", "critical", "critical", "")]);
    assert_eq!(score.overall_level, pb::ImpactLevel::High as i32);

    // A figure this matrix does not score is refused, not silently dropped.
    let err = advisor(&c)
        .score_impact(pb::ScoreImpactRequest {
            figures: Some(pb::ImpactFigures {
                estimated_financial_loss: Some(Money {
                    currency_code: "EUR".into(),
                    units: 1,
                    nanos: 0,
                }),
                people_disciplined: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let v = status_violations(&err);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "figures.people_disciplined");
    assert!(
        v[0].description.contains("scores no dimension"),
        "{}",
        v[0].description
    );
}

#[tokio::test]
async fn an_invalid_matrix_stops_the_start_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix.toml");
    std::fs::write(
        &path,
        CORPORATE.replace(
            "critical = { more_than = 50000 }",
            "critical = { more_than = 10 }",
        ),
    )
    .unwrap();
    let database = TestDatabase::new(Backend::Sqlite).await;
    let config: custos_classification::Config = custos_testing::config(
        &database,
        ClassificationSettings {
            risk_matrix_file: Some(path.clone()),
            ..settings(NO_INTAKE)
        },
    );
    let err = App::build::<custos_classification::Classification>(config)
        .await
        .expect_err("an invalid matrix must not start");
    let text = custos_kit::error::DisplayChain(&err).to_string();
    assert!(text.contains("classification.risk_matrix_file"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("dimension `cost`: bound of `critical` must be above the bound of `serious`"),
        "{text}"
    );
}
