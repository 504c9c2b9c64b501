//! Registering, reading and listing items: need to know (NOT_FOUND for everyone not on
//! the incident's access list, but internal audit), every read recorded in the chain
//! before anything is returned (and no read when it cannot be), bad fields named, a
//! retried registration returning the first, and the event internal audit is told by.

use custos_proto::custody::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::{TestCustody, fields, raw, raw_result, reason, register, registration};

async fn an_item_is_registered_with_its_first_entry_and_an_event(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    let incident = svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let item = register(&mut responder, "INC-2026-000001").await;
    assert!(item.reference.starts_with("EVD-20"), "{}", item.reference);
    assert_eq!(item.incident_id, incident.to_string());
    assert_eq!(item.incident_reference, "INC-2026-000001");
    assert_eq!(item.state(), pb::evidence_item::State::InCustody);
    assert_eq!(item.custodian, "Rhys Evans");
    assert_eq!(item.registered_by, "rhys");
    assert!(item.incident_evidence_required);
    assert_eq!(item.custody_entry_count, 1);
    assert_eq!(item.revision, 1);
    let c = item.collection.unwrap();
    assert_eq!(c.time_zone, "Europe/London");
    assert_eq!(c.collected_at.unwrap().seconds, 1_780_000_000);

    // By reference too; the read is recorded before the item is returned.
    let got = responder
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.reference.clone(),
            reason: "checking the label".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(got.id, item.id);
    assert_eq!(got.custody_entry_count, 2);
    let entries = responder
        .list_custody_entries(pb::ListCustodyEntriesRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<_> = entries.iter().map(|e| e.action()).collect();
    assert_eq!(
        actions,
        [
            pb::CustodyAction::Registered,
            pb::CustodyAction::Accessed,
            pb::CustodyAction::Accessed
        ]
    );
    assert_eq!(entries[1].reason, "checking the label");
    assert_eq!(entries[1].actor, "rhys");
    assert_eq!(entries[0].details["custodian"], "Rhys Evans");
    assert_eq!(entries[1].previous_hash, entries[0].entry_hash);
    // Every page of the chain is a recorded read, the first and the next.
    let page = |token: String| pb::ListCustodyEntriesRequest {
        item_id: item.id.clone(),
        page_size: 1,
        page_token: token,
    };
    let first = responder
        .list_custody_entries(page(String::new()))
        .await
        .unwrap()
        .into_inner();
    responder
        .list_custody_entries(page(first.next_page_token))
        .await
        .unwrap();
    let after = responder
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .item
        .unwrap();
    assert_eq!(after.custody_entry_count, 6, "3 before, 2 pages, this read");

    // Internal audit hears of it through the feed: one EvidenceRegistered, naming the
    // incident and no people.
    let mut tx = svc.db.begin().await.unwrap();
    let events: Vec<(String, String)> = custos_kit::with_conn!(&mut tx, c => {
        sqlx::query_as("SELECT event_type, aggregate_reference FROM outbox").fetch_all(&mut *c).await.unwrap()
    });
    drop(tx);
    assert_eq!(
        events,
        [(
            "custos.custody.v1.EvidenceRegistered".to_owned(),
            item.reference.clone()
        )]
    );
}

async fn only_the_access_list_and_internal_audit_see_evidence(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    svc.incident("INC-2026-000002").await;
    let mut responder = svc.responder();
    let item = register(&mut responder, "INC-2026-000001").await;

    // An outsider (even a security advisor) is told it does not exist, exactly as for an
    // item that does not.
    let mut outsider = svc.outsider();
    let hidden = outsider
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let missing = outsider
        .get_evidence(pb::GetEvidenceRequest {
            item_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (hidden.code(), reason(&hidden)),
        (Code::NotFound, "ITEM_NOT_FOUND".into())
    );
    assert_eq!(
        (hidden.code(), hidden.message()),
        (missing.code(), missing.message())
    );
    let registered = outsider
        .register_evidence(registration("INC-2026-000001"))
        .await
        .unwrap_err();
    assert_eq!(reason(&registered), "INCIDENT_NOT_FOUND");
    for (i, r) in [
        outsider
            .list_evidence(pb::ListEvidenceRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items,
        outsider
            .list_evidence(pb::ListEvidenceRequest {
                filter: Some(pb::EvidenceFilter {
                    incident_id: "INC-2026-000001".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .items,
    ]
    .iter()
    .enumerate()
    {
        assert!(r.is_empty(), "list {i}: {r:?}");
    }
    for denied in [
        outsider
            .list_custody_entries(pb::ListCustodyEntriesRequest {
                item_id: item.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        outsider
            .verify_chain(pb::VerifyChainRequest {
                item_id: item.id.clone(),
            })
            .await
            .unwrap_err(),
        outsider
            .download_content(pb::DownloadContentRequest {
                item_id: item.id.clone(),
                reason: "curious".into(),
            })
            .await
            .unwrap_err(),
        outsider
            .get_custody_report(pb::GetCustodyReportRequest {
                scope: Some(pb::get_custody_report_request::Scope::ItemId(
                    item.id.clone(),
                )),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(reason(&denied), "ITEM_NOT_FOUND", "{denied:?}");
    }

    // Internal audit sees it by role; an access revoked hides it again.
    let mut auditor = svc.auditor();
    let listed = auditor
        .list_evidence(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].custody_entry_count, 2,
        "the list's read is recorded"
    );
    let incident = uuid::Uuid::parse_str(&item.incident_id).unwrap();
    let mut tx = svc.db.begin().await.unwrap();
    custos_evidence_custody::store::set_access(&mut tx, incident, "rhys", false, 9)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let gone = responder
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&gone), "ITEM_NOT_FOUND");

    // Nobody's reads but the permitted ones are in the chain.
    let entries = auditor
        .list_custody_entries(pb::ListCustodyEntriesRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(entries.iter().all(|e| e.actor != "oscar"), "{entries:?}");
}

async fn lists_filter_and_page(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    svc.incident("INC-2026-000002").await;
    let mut responder = svc.responder();
    let mut ids = Vec::new();
    for i in 0..5 {
        let incident = if i % 2 == 0 {
            "INC-2026-000001"
        } else {
            "INC-2026-000002"
        };
        ids.push(register(&mut responder, incident).await.id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = responder
            .list_evidence(pb::ListEvidenceRequest {
                filter: Some(pb::EvidenceFilter {
                    incident_id: "INC-2026-000001".into(),
                    ..Default::default()
                }),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.items.iter().map(|i| i.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, [ids[0].clone(), ids[2].clone(), ids[4].clone()]);
    // A token from another filter is refused.
    let first = responder
        .list_evidence(pb::ListEvidenceRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let refused = responder
        .list_evidence(pb::ListEvidenceRequest {
            filter: Some(pb::EvidenceFilter {
                on_legal_hold: Some(true),
                ..Default::default()
            }),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&refused), ["page_token"]);
    let sealed = responder
        .list_evidence(pb::ListEvidenceRequest {
            filter: Some(pb::EvidenceFilter {
                states: vec![pb::evidence_item::State::Sealed as i32],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(sealed.items.is_empty());
}

async fn bad_registrations_name_their_fields(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let mut bad = registration("INC-2026-000001");
    bad.kind = 0;
    bad.description = " ".into();
    bad.custodian = "two\nlines".into();
    bad.idempotency_key = "not-a-uuid".into();
    let c = bad.collection.as_mut().unwrap();
    c.time_zone = "Mars/Olympus Mons".into();
    c.collected_at = Some(custos_proto::prost_types::Timestamp {
        seconds: 4_000_000_000,
        nanos: 0,
    });
    c.method = String::new();
    let status = responder.register_evidence(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_FIELD");
    let named = fields(&status);
    for f in [
        "idempotency_key",
        "kind",
        "description",
        "collection.collected_at",
        "collection.time_zone",
        "collection.method",
        "custodian",
    ] {
        assert!(named.contains(&f.to_owned()), "{f} not in {named:?}");
    }
    let mut no_collection = registration("INC-2026-000001");
    no_collection.collection = None;
    no_collection.incident_id = "INC 1; DROP".into();
    let status = responder
        .register_evidence(no_collection)
        .await
        .unwrap_err();
    let named = fields(&status);
    assert!(
        named.contains(&"collection".to_owned()) && named.contains(&"incident_id".to_owned()),
        "{named:?}"
    );
    // Nothing was registered.
    assert!(
        responder
            .list_evidence(pb::ListEvidenceRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items
            .is_empty()
    );
}

async fn a_retried_registration_returns_the_first(backend: Backend) {
    let svc = TestCustody::start(backend).await;
    svc.incident("INC-2026-000001").await;
    let mut responder = svc.responder();
    let request = registration("INC-2026-000001");
    let first = responder
        .register_evidence(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = responder
        .register_evidence(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let mut changed = request;
    changed.description = "Something else".into();
    let reused = responder.register_evidence(changed).await.unwrap_err();
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");
    let auditor_list = svc
        .auditor()
        .list_evidence(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(auditor_list.items.len(), 1);
}

async fn a_read_that_cannot_be_recorded_returns_nothing(backend: Backend) {
    let (svc, mut responder, item) = TestCustody::with_item(backend).await;
    let content = crate::common::bytes(10_000);
    crate::common::upload(&mut responder, &item.id, &content, "", 4096)
        .await
        .unwrap();
    // The custody log refuses new entries (a full disk, a revoked grant).
    match backend {
        Backend::Postgres => raw(&svc.db, &[
            "CREATE FUNCTION refuse_entries() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no'; END $$",
            "CREATE TRIGGER refuse_entries BEFORE INSERT ON custody_entries FOR EACH ROW EXECUTE FUNCTION refuse_entries()",
        ])
        .await,
        Backend::Sqlite => raw(&svc.db, &[
            "CREATE TRIGGER refuse_entries BEFORE INSERT ON custody_entries BEGIN SELECT RAISE(ABORT, 'no'); END",
        ])
        .await,
    }
    let get = responder
        .get_evidence(pb::GetEvidenceRequest {
            item_id: item.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(get.code(), Code::Internal | Code::Unavailable),
        "{get:?}"
    );
    assert!(!get.message().contains("Disk image"), "{get:?}");
    let list = responder
        .list_evidence(pb::ListEvidenceRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(list.code(), Code::Internal | Code::Unavailable),
        "{list:?}"
    );
    let (download, received) = crate::common::download(&mut responder, &item.id)
        .await
        .unwrap_err();
    assert!(
        matches!(download.code(), Code::Internal | Code::Unavailable),
        "{download:?}"
    );
    assert!(
        received.is_empty(),
        "no byte leaves before the read is recorded"
    );
    let _ = raw_result;
}

on_both_backends!(
    an_item_is_registered_with_its_first_entry_and_an_event,
    only_the_access_list_and_internal_audit_see_evidence,
    lists_filter_and_page,
    bad_registrations_name_their_fields,
    a_retried_registration_returns_the_first,
    a_read_that_cannot_be_recorded_returns_nothing,
);
