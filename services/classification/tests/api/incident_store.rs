//! The register's store on both backends: every filter of ListIncidents alone and
//! together, a person's view through the access list, keyset pages newest first, and
//! the access list's grants and revokes counted once.

use custos_classification::{
    assessment::{GivenFigures, Impact},
    incident::IncidentState,
    matrix::Level,
    store::{self, AccessRow, IncidentFilter, IncidentKey, IncidentPage, NewIncident},
};
use custos_kit::storage::{Db, JsonText};
use custos_testing::{Backend, on_both_backends};
use uuid::Uuid;

use crate::store_contract::{at, db};

fn impact(level: Level) -> Impact {
    Impact {
        matrix_revision: "test".into(),
        overall: level,
        dimensions: vec![],
        figures: GivenFigures::default(),
    }
}

/// Declares incident `n` (declared at minute `n`), then sets what `adjust` changes.
async fn incident(
    db: &Db,
    n: i64,
    category: &str,
    level: Level,
    adjust: impl FnOnce(&mut store::RegisterRow),
) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = db.begin().await.unwrap();
    store::declare(
        &mut tx,
        &NewIncident {
            id,
            title: format!("Incident {n}"),
            summary: String::new(),
            category: category.into(),
            impact: impact(level),
            declared_by: "sam".into(),
            declared_at: at(n),
            personal_data: false,
            paper_records: false,
        },
        "INC-2026-",
    )
    .await
    .unwrap();
    let mut row = store::hold_incident(&mut tx, &IncidentKey::Id(id))
        .await
        .unwrap()
        .unwrap();
    adjust(&mut row);
    assert!(store::save(&mut tx, &row).await.unwrap());
    if let Some(officer) = row.officer.clone() {
        let access = AccessRow {
            subject: officer,
            granted_by: "sam".into(),
            granted_at: at(n),
        };
        store::grant(&mut tx, id, &access).await.unwrap();
    }
    tx.commit().await.unwrap();
    id
}

async fn list(db: &Db, filter: IncidentFilter, viewer: Option<&str>) -> Vec<Uuid> {
    store::list_incidents(db.read().await.unwrap(), &filter, viewer, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn incidents_are_listed_newest_first_by_any_filter(backend: Backend) {
    let (_d, db) = db(backend).await;
    let one = incident(&db, 1, "malware_infection", Level::Low, |_| {}).await;
    let two = incident(&db, 2, "denial_of_service", Level::High, |r| {
        r.service_affecting = true;
        r.business_services = JsonText(vec!["email".into()]);
        r.officer = Some("olga".into());
        r.state = IncidentState::Investigating;
    })
    .await;
    let three = incident(&db, 3, "malware_infection", Level::Medium, |r| {
        r.personal_data = true;
        r.officer = Some("otto".into());
        r.state = IncidentState::Closed;
    })
    .await;
    let four = incident(&db, 4, "denial_of_service", Level::High, |r| {
        r.personal_data = true;
        r.service_affecting = true;
        r.business_services = JsonText(vec!["payroll".into()]);
    })
    .await;

    let all = IncidentFilter::default();
    assert_eq!(list(&db, all.clone(), None).await, [four, three, two, one]);
    let cases: Vec<(IncidentFilter, Vec<Uuid>)> = vec![
        (
            IncidentFilter {
                states: vec![IncidentState::Open, IncidentState::Investigating],
                ..all.clone()
            },
            vec![four, two, one],
        ),
        (
            IncidentFilter {
                levels: vec![Level::High],
                ..all.clone()
            },
            vec![four, two],
        ),
        (
            IncidentFilter {
                categories: vec!["malware_infection".into()],
                ..all.clone()
            },
            vec![three, one],
        ),
        (
            IncidentFilter {
                service_affecting: Some(true),
                ..all.clone()
            },
            vec![four, two],
        ),
        (
            IncidentFilter {
                service_affecting: Some(false),
                ..all.clone()
            },
            vec![three, one],
        ),
        (
            IncidentFilter {
                personal_data: Some(true),
                ..all.clone()
            },
            vec![four, three],
        ),
        (
            IncidentFilter {
                personal_data: Some(false),
                ..all.clone()
            },
            vec![two, one],
        ),
        (
            IncidentFilter {
                officer: Some("olga".into()),
                ..all.clone()
            },
            vec![two],
        ),
        (
            IncidentFilter {
                declared_after: Some(at(2)),
                declared_before: Some(at(4)),
                ..all.clone()
            },
            vec![three, two],
        ),
        (
            IncidentFilter {
                levels: vec![Level::High, Level::Medium],
                personal_data: Some(true),
                states: vec![IncidentState::Open],
                ..all.clone()
            },
            vec![four],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(list(&db, filter.clone(), None).await, want, "{filter:?}");
    }
    // A person sees what their access list gives them, whatever the filter.
    assert_eq!(list(&db, all.clone(), Some("olga")).await, [two]);
    assert_eq!(
        list(&db, all.clone(), Some("nobody")).await,
        Vec::<Uuid>::new()
    );
    let personal = IncidentFilter {
        personal_data: Some(true),
        ..all.clone()
    };
    assert_eq!(list(&db, personal, Some("otto")).await, [three]);

    // Pages of two: each incident once, newest first.
    assert_eq!(pages(&db, &all, None, 2).await, [four, three, two, one]);

    // Through several states, with two incidents declared at the same moment: each once,
    // newest first, ties by id.
    let five = incident(&db, 5, "malware_infection", Level::Low, |_| {}).await;
    let six = incident(&db, 5, "malware_infection", Level::Low, |r| {
        r.state = IncidentState::Closed;
    })
    .await;
    let (first, second) = if five > six { (five, six) } else { (six, five) };
    let two_states = IncidentFilter {
        states: vec![IncidentState::Open, IncidentState::Closed],
        ..all.clone()
    };
    assert_eq!(
        pages(&db, &two_states, None, 1).await,
        [first, second, four, three, one]
    );
    // Two filters: on PostgreSQL the page's keys are found first, then its rows; the
    // same pages.
    let two_filters = IncidentFilter {
        categories: vec!["malware_infection".into()],
        ..two_states
    };
    assert_eq!(
        pages(&db, &two_filters, None, 1).await,
        [first, second, three, one]
    );
    assert_eq!(
        pages(&db, &two_filters, None, 3).await,
        [first, second, three, one]
    );
    // A person's view and a filter are two filters too: still only what they may see.
    assert_eq!(pages(&db, &two_filters, Some("otto"), 1).await, [three]);
    assert_eq!(
        pages(&db, &two_filters, Some("olga"), 1).await,
        Vec::<Uuid>::new()
    );
}

/// Every incident `filter` passes, page by page (`size` a page), as `viewer` (none: an
/// advisor) sees them.
async fn pages(db: &Db, filter: &IncidentFilter, viewer: Option<&str>, size: i64) -> Vec<Uuid> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store::list_incidents(db.read().await.unwrap(), filter, viewer, after, size)
            .await
            .unwrap();
        assert!(
            page.len() as i64 <= size,
            "a page of {size} held {}",
            page.len()
        );
        let Some(last) = page.last() else { break };
        after = Some(IncidentPage {
            declared_at: last.declared_at,
            id: last.id,
        });
        seen.extend(page.iter().map(|r| r.id));
    }
    seen
}

async fn access_changes_are_counted_once(backend: Backend) {
    let (_d, db) = db(backend).await;
    let id = incident(&db, 1, "malware_infection", Level::Low, |_| {}).await;
    let access = |subject: &str, minute: i64| AccessRow {
        subject: subject.into(),
        granted_by: "sam".into(),
        granted_at: at(minute),
    };
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        store::grant(&mut tx, id, &access("rita", 1)).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store::grant(&mut tx, id, &access("rita", 2)).await.unwrap(),
        None
    );
    assert_eq!(
        store::grant(&mut tx, id, &access("ron", 3)).await.unwrap(),
        Some(2)
    );
    assert_eq!(store::revoke(&mut tx, id, "rita").await.unwrap(), Some(3));
    assert_eq!(store::revoke(&mut tx, id, "rita").await.unwrap(), None);
    tx.commit().await.unwrap();
    let conn = db.read().await.unwrap();
    let listed = store::access_list(conn, id, None, 10).await.unwrap();
    assert_eq!(listed, [access("ron", 3)]);
    assert!(
        !store::is_listed(db.read().await.unwrap(), id, "rita")
            .await
            .unwrap()
    );
    assert!(
        store::is_listed(db.read().await.unwrap(), id, "ron")
            .await
            .unwrap()
    );
}

async fn published_incidents_match_level_and_services(backend: Backend) {
    let (_d, db) = db(backend).await;
    let publish = |services: &'static [&'static str]| {
        move |r: &mut store::RegisterRow| {
            r.continuity_published = true;
            r.ever_affected_services = JsonText(services.iter().map(|s| (*s).into()).collect());
        }
    };
    let low = incident(
        &db,
        1,
        "denial_of_service",
        Level::Low,
        publish(&["pay_roll"]),
    )
    .await;
    let high = incident(&db, 2, "denial_of_service", Level::High, |r| {
        publish(&["payxroll", "email"])(r);
        r.highest_level = Level::High;
    })
    .await;
    incident(&db, 3, "denial_of_service", Level::High, |_| {}).await;
    let published = |minimum: i16, services: &[&str]| {
        let db = db.clone();
        let services: Vec<String> = services.iter().map(|s| (*s).into()).collect();
        async move {
            store::published_incidents(db.read().await.unwrap(), minimum, &services, None, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        published(0, &[]).await,
        [high, low],
        "unpublished ones never"
    );
    assert_eq!(published(3, &[]).await, [high]);
    // `_` is a code's own character, not LIKE's wildcard.
    assert_eq!(published(0, &["pay_roll"]).await, [low]);
    assert_eq!(published(0, &["pay_roll", "email"]).await, [high, low]);
    assert_eq!(published(3, &["pay_roll"]).await, Vec::<Uuid>::new());
}

on_both_backends!(
    incidents_are_listed_newest_first_by_any_filter,
    published_incidents_match_level_and_services,
    access_changes_are_counted_once,
);

/// An incident read by its id or its reference on a lookup connection is planned once:
/// after PostgreSQL's five plans for values, its generic plan is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_incident_lookups_are_planned_once() {
    let (_database, db) = db(Backend::Postgres).await;
    let id = incident(&db, 1, "malware_infection", Level::Low, |_| {}).await;
    // (The connection may have served the declaring transaction, whose statements that
    // hold the incident are kept too: only the lookups' are counted.)
    let mut lookup = db.lookup().await.unwrap();
    for key in [
        IncidentKey::Id(id),
        IncidentKey::Reference("INC-2026-000001".into()),
    ] {
        for _ in 0..7 {
            let seen = store::incident_for(&mut lookup, &key, "sam")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(seen.row.id, id);
        }
    }
    let custos_kit::storage::Conn::Postgres(c) = custos_kit::storage::AsConn::conn(&mut lookup)
    else {
        unreachable!("PostgreSQL")
    };
    let plans: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT custom_plans, generic_plans FROM pg_prepared_statements \
         WHERE starts_with(statement, 'SELECT i.id, i.reference') \
         AND strpos(statement, 'AS listed') > 0 AND strpos(statement, 'FOR UPDATE') = 0 \
         ORDER BY statement",
    )
    .persistent(false)
    .fetch_all(&mut *c)
    .await
    .unwrap();
    assert_eq!(plans, [(5, 2), (5, 2)], "by id and by reference");
}
