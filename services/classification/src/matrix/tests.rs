use super::*;

fn pounds(p: i64) -> i128 {
    i128::from(p) * NANOS_PER_UNIT
}

/// The row a figure alone gives the named dimension of the policy's matrix.
fn figure_row(dimension: &str, figures: Figures) -> Option<String> {
    let m = RiskMatrix::policy_default();
    let d = &m.dimensions[m.dimension_index(dimension).unwrap()];
    m.figure_row(d, &figures).map(|r| m.rows[r].code.clone())
}

#[test]
fn the_policy_matrix_has_seven_dimensions_and_five_rows_in_three_levels() {
    let m = RiskMatrix::policy_default();
    assert_eq!(m.dimensions.len(), 7);
    let rows: Vec<(&str, Level)> = m.rows.iter().map(|r| (r.code.as_str(), r.level)).collect();
    assert_eq!(
        rows,
        [
            ("none", Level::Low),
            ("minor", Level::Low),
            ("moderate", Level::Medium),
            ("major", Level::High),
            ("severe", Level::High),
        ]
    );
    assert_eq!(m.currency, "GBP");
    assert_eq!(m.backup_gap, Duration::from_secs(2 * 86_400));
    for figure in Figure::ALL {
        assert!(m.uses(figure), "{figure:?} scores a dimension");
    }
}

#[test]
fn financial_loss_follows_the_policy_bands_read_upwards_where_they_meet() {
    let at = |p: i128| {
        figure_row(
            "financial",
            Figures {
                financial_loss: Some(p),
                ..Figures::default()
            },
        )
    };
    assert_eq!(
        at(0),
        None,
        "no loss says nothing of confidentiality: a choice is needed"
    );
    assert_eq!(
        at(NANOS_PER_UNIT / 100).as_deref(),
        Some("minor"),
        "a penny"
    );
    assert_eq!(at(pounds(99_999)).as_deref(), Some("minor"));
    assert_eq!(at(pounds(100_000)).as_deref(), Some("moderate"));
    assert_eq!(at(pounds(499_999)).as_deref(), Some("moderate"));
    assert_eq!(
        at(pounds(500_000)).as_deref(),
        Some("major"),
        "in both policy bands: the higher"
    );
    assert_eq!(at(pounds(1_000_000)).as_deref(), Some("major"));
    assert_eq!(at(pounds(1_000_000) + 1).as_deref(), Some("severe"));
}

#[test]
fn damages_people_and_backups_follow_the_policy_bands() {
    let legal = |p: i64| {
        figure_row(
            "legal",
            Figures {
                damages_and_fines: Some(pounds(p)),
                ..Figures::default()
            },
        )
    };
    assert_eq!(
        legal(0),
        None,
        "no fine says nothing of a custodial sentence"
    );
    assert_eq!(legal(9_999).as_deref(), Some("minor"));
    assert_eq!(legal(10_000).as_deref(), Some("moderate"));
    assert_eq!(
        legal(100_000).as_deref(),
        Some("major"),
        "neither less nor greater than £100K: the higher"
    );
    assert_eq!(legal(1_000_000).as_deref(), Some("major"));
    assert_eq!(legal(1_000_001).as_deref(), Some("severe"));

    let people = |n: i128| {
        figure_row(
            "reputational_government",
            Figures {
                people_disciplined: Some(n),
                ..Figures::default()
            },
        )
    };
    assert_eq!(
        people(0),
        None,
        "no one disciplined says nothing of government"
    );
    assert_eq!(people(1).as_deref(), Some("minor"));
    assert_eq!(people(2).as_deref(), Some("moderate"));
    assert_eq!(people(9).as_deref(), Some("moderate"));
    assert_eq!(people(10).as_deref(), Some("major"));
    assert_eq!(
        people(500).as_deref(),
        Some("major"),
        "severe is only ever chosen"
    );

    let systems = |n: i128| {
        figure_row(
            "disruption",
            Figures {
                systems_without_backup: Some(n),
                ..Figures::default()
            },
        )
    };
    assert_eq!(
        systems(0),
        None,
        "no lapsed backup says nothing of disruption"
    );
    assert_eq!(systems(1).as_deref(), Some("moderate"));
    assert_eq!(systems(2).as_deref(), Some("major"));
}

/// Appendix 4 of the policy, cell by cell (none, minor, moderate, major, severe),
/// transcribed from its text with runs of spaces folded, trailing spaces dropped, and the
/// cells it breaks over two lines joined with ". ". A second, independent copy: the
/// shipped file must agree with it word for word.
const APPENDIX_4: [(&str, [&str; 5]); 7] = [
    (
        "reputational_media",
        [
            "None",
            "Contained internally within the council. Unfavorable council member response",
            "Unfavorable local media interest. Unfavorable council member response",
            "Sustained local media coverage, extending to national media coverage in the short term",
            "Sustained unfavourable national media coverage",
        ],
    ),
    (
        "reputational_government",
        [
            "None",
            "Internal investigation or disciplinary involving one individual",
            "Government authorised investigation by nationally recognised body or disciplinary involving 2 to 9 people",
            "Government intervention leading to significant business change. Internal disciplinary involving 10 or more people",
            "Service or product outsourced through Government intervention",
        ],
    ),
    (
        "contractual",
        [
            "None",
            "Minor contractual problems / minimal SLA failures",
            "Significant client dissatisfaction. Major SLA failures. Failure to attract new business",
            "Failure to retain contract(s) at the point of renewal",
            "Client contract(s) cancelled",
        ],
    ),
    (
        "legal",
        [
            "None",
            "Civil lawsuit / small fine - less than £10K",
            "Less than £100K Damages and fine",
            "Greater than £100K damages and fine",
            "Over £1M damages and / or fine. Custodial sentence(s) imposed",
        ],
    ),
    (
        "financial",
        [
            "None",
            "Less than £100,000",
            "£100,000 - £500,000",
            "£500,000 - £1,000,000",
            "More than £1,000,000",
        ],
    ),
    (
        "disruption",
        [
            "None",
            "Minor disruption to service activities that can be recovered",
            "Disruption to service that can be recovered with an intermediate level of difficulty. One back up not backing up for 2 or more days",
            "Major disruption to service which is very difficult to recover from. Two or more systems not being backed up for two or more days",
            "Catastrophic disruption - service activities can no longer be continued",
        ],
    ),
    (
        "personal_privacy",
        [
            "None",
            "Personal details revealed or compromised within department",
            "Personal details revealed or compromised internally within authority. Harm mental or physical to one members of staff or public",
            "Severe embarrassment to individual(s)",
            "Detrimental effect on personal & professional life OR large scale compromise affecting many people. Harm mental or physical to two or more members of staff or public",
        ],
    ),
];

#[test]
fn the_default_descriptors_are_the_policys_words() {
    let m = RiskMatrix::policy_default();
    let shipped: Vec<(&str, Vec<&str>)> = m
        .dimensions
        .iter()
        .map(|d| {
            (
                d.code.as_str(),
                d.descriptors.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let policy: Vec<(&str, Vec<&str>)> = APPENDIX_4
        .iter()
        .map(|(code, cells)| (*code, cells.to_vec()))
        .collect();
    assert_eq!(shipped, policy);
}

#[test]
fn the_revision_names_the_content_from_release_to_release() {
    let m = RiskMatrix::policy_default();
    // Pinned: a change here means every stored score's matrix looks different.
    assert_eq!(m.revision(), "fc50a5a7d4ef41e3");
    let mut other = m.clone();
    other.dimensions[0].descriptors[1].push('.');
    assert_ne!(other.revision(), m.revision());
    let mut other = m.clone();
    other.rows[2].level = Level::High;
    assert_ne!(other.revision(), m.revision());
}

#[test]
fn limits_of_a_matrix() {
    let systems = SMALL
        .replace(
            "figure = \"financial_loss\"",
            "figure = \"systems_without_backup\"",
        )
        .replace("at_least = 1000 }", "at_least = 10000 }");
    RiskMatrix::parse(&systems).expect("10,000 systems is a figure a request can give");
    let err = RiskMatrix::parse(&SMALL.replace(
        "currency = \"EUR\"",
        "currency = \"EUR\"\nminor_unit_digits = 5",
    ))
    .unwrap_err();
    assert!(err.contains("minor_unit_digits 5"), "{err}");
    let many_rows: String = (0..33)
        .map(|i| format!("[[row]]\ncode = \"r{i}\"\ndisplay_name = \"R\"\nlevel = \"low\"\n"))
        .collect();
    let err = RiskMatrix::parse(&format!(
        "display_name = \"x\"\ncurrency = \"GBP\"\n{many_rows}"
    ))
    .unwrap_err();
    assert!(err.contains("more than 32 rows"), "{err}");
}

#[test]
fn a_bound_no_request_can_reach_is_refused() {
    let people = SMALL
        .replace(
            "figure = \"financial_loss\"",
            "figure = \"people_disciplined\"",
        )
        .replace("at_least = 1000 }", "at_least = 3000000000 }");
    let err = RiskMatrix::parse(&people).unwrap_err();
    assert!(err.contains("beyond any people_disciplined"), "{err}");
    let systems = SMALL
        .replace(
            "figure = \"financial_loss\"",
            "figure = \"systems_without_backup\"",
        )
        .replace("at_least = 1000 }", "at_least = 10001 }");
    let err = RiskMatrix::parse(&systems).unwrap_err();
    assert!(err.contains("beyond any systems_without_backup"), "{err}");
}

#[test]
fn a_dimension_takes_the_higher_of_figure_and_choice_and_overall_is_the_highest() {
    let m = RiskMatrix::policy_default();
    let row = |c: &str| m.row_index(c).unwrap();
    let mut chosen = vec![Some(row("none")); m.dimensions.len()];
    let financial = m.dimension_index("financial").unwrap();
    chosen[financial] = Some(row("minor"));
    let figures = Figures {
        financial_loss: Some(pounds(250_000)),
        ..Figures::default()
    };
    let score = m.score(&figures, &chosen).unwrap();
    let f = score.dimensions[financial];
    assert_eq!(f.row, row("moderate"), "the figure outranks a lower choice");
    assert_eq!(f.figure_row, Some(row("moderate")));
    assert_eq!(f.chosen_row, Some(row("minor")));
    assert_eq!(score.overall, Level::Medium);

    chosen[financial] = Some(row("severe"));
    let score = m.score(&figures, &chosen).unwrap();
    assert_eq!(
        score.dimensions[financial].row,
        row("severe"),
        "a higher choice wins"
    );
    assert_eq!(score.overall, Level::High);

    let all_low = m
        .score(&Figures::default(), &[Some(row("minor")); 7])
        .unwrap();
    assert_eq!(all_low.overall, Level::Low);
}

#[test]
fn an_impact_is_never_assumed_nil() {
    let m = RiskMatrix::policy_default();
    let mut chosen = vec![None; m.dimensions.len()];
    let privacy = m.dimension_index("personal_privacy").unwrap();
    chosen[privacy] = Some(0);
    // Zero figures are floors that place nothing.
    let figures = Figures {
        financial_loss: Some(0),
        damages_and_fines: Some(0),
        people_disciplined: Some(0),
        systems_without_backup: Some(0),
    };
    let unscored = m.score(&figures, &chosen).unwrap_err();
    let names: Vec<&str> = unscored
        .iter()
        .map(|&d| m.dimensions[d].code.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "reputational_media",
            "reputational_government",
            "contractual",
            "legal",
            "financial",
            "disruption"
        ],
        "only privacy is scored, by its choice"
    );
}

/// A small valid matrix to break one piece at a time.
const SMALL: &str = r#"
display_name = "Corporate"
currency = "EUR"
[[row]]
code = "low"
display_name = "Low"
level = "low"
[[row]]
code = "high"
display_name = "High"
level = "high"
[[dimension]]
code = "money"
display_name = "Money"
figure = "financial_loss"
[dimension.descriptors]
low = "Little"
high = "Much"
[dimension.bounds]
low = { at_least = 0 }
high = { at_least = 1000 }
"#;

#[test]
fn a_corporate_matrix_replaces_the_policy_one() {
    let m = RiskMatrix::parse(SMALL).unwrap();
    assert_eq!(m.currency, "EUR");
    assert_eq!(m.rows.len(), 2);
    assert!(!m.uses(Figure::PeopleDisciplined));
    assert_eq!(m.backup_gap, Duration::from_secs(2 * 86_400), "default gap");
}

#[test]
fn an_invalid_matrix_is_refused_naming_what_is_wrong() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "currency = \"EUR\"",
            "currency = \"euro\"",
            "currency `euro`",
        ),
        (
            "level = \"high\"",
            "level = \"lowest\"",
            "unknown variant `lowest`",
        ),
        (
            "code = \"high\"\ndisplay_name = \"High\"\nlevel = \"high\"",
            "code = \"high\"\ndisplay_name = \"High\"\nlevel = \"low\"\n[[row]]\ncode = \"mid\"\ndisplay_name = \"Mid\"\nlevel = \"medium\"\n[[row]]\ncode = \"x\"\ndisplay_name = \"X\"\nlevel = \"low\"",
            "row `x` is low but follows `mid`, which is medium",
        ),
        (
            "code = \"high\"",
            "code = \"low\"",
            "row `low` appears twice",
        ),
        (
            "code = \"money\"",
            "code = \"Money!\"",
            "dimension code `Money!`",
        ),
        (
            "high = \"Much\"",
            "",
            "dimension `money`: no descriptor for row `high`",
        ),
        (
            "high = \"Much\"",
            "high = \"Much\"\nhuge = \"Ruin\"",
            "`huge` is not a row",
        ),
        (
            "high = { at_least = 1000 }",
            "high = { at_least = 0 }",
            "bound of `high` must be above the bound of `low`",
        ),
        (
            "high = { at_least = 1000 }",
            "high = { at_least = 5, more_than = 6 }",
            "exactly one of at_least and more_than",
        ),
        (
            "figure = \"financial_loss\"",
            "figure = \"weather\"",
            "unknown variant `weather`",
        ),
        (
            "figure = \"financial_loss\"\n",
            "",
            "dimension `money`: has bounds but no figure",
        ),
        (
            "display_name = \"Corporate\"",
            "display_name = \" \"",
            "display_name is empty",
        ),
        (
            "currency = \"EUR\"",
            "currency = \"EUR\"\ncolour = 1",
            "unknown field `colour`",
        ),
        (
            "currency = \"EUR\"",
            "currency = \"EUR\"\nbackup_gap_days = 0",
            "backup_gap_days must be at least 1",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(SMALL.contains(from), "case edits the sample: {from}");
        let text = SMALL.replacen(from, to, 1);
        let err = RiskMatrix::parse(&text).expect_err(expected);
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    }
}

#[test]
fn a_matrix_without_dimensions_or_rows_is_refused() {
    let no_dimensions = &SMALL[..SMALL.find("[[dimension]]").unwrap()];
    assert!(
        RiskMatrix::parse(no_dimensions)
            .unwrap_err()
            .contains("no dimensions")
    );
    let err = RiskMatrix::parse("display_name = \"x\"\ncurrency = \"GBP\"").unwrap_err();
    assert!(err.contains("at least two [[row]]s"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let err = RiskMatrix::load(Path::new("/nonexistent/matrix.toml")).unwrap_err();
    assert!(err.starts_with("/nonexistent/matrix.toml:"), "{err}");
}
