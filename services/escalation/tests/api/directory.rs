//! Contacts and the policy's lists: created, read, changed against their revision,
//! deactivated; every bad field named; only the policy owner and administrators write.

use custos_kit::auth::Role;
use custos_proto::{escalation::v1 as pb, prost_types::FieldMask};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::{TestEscalation, contact, described, fields, people, reason};

async fn contacts_are_created_once_read_and_listed_by_name(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let key = uuid::Uuid::new_v4().to_string();
    let mut sam = contact("Sam Patel");
    sam.token_subject = "sam".into();
    let request = pb::CreateContactRequest {
        contact: Some(sam.clone()),
        idempotency_key: key.clone(),
    };
    let first = dir
        .create_contact(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = dir.create_contact(request).await.unwrap().into_inner();
    assert_eq!(first, again, "a retry returns the first response");
    let created = first.contact.unwrap();
    assert!(created.active);
    assert_eq!(created.revision, 1);
    assert_eq!(created.token_subject, "sam");

    let mut other = sam.clone();
    other.display_name = "Someone Else".into();
    let reused = dir
        .create_contact(pb::CreateContactRequest {
            contact: Some(other),
            idempotency_key: key,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED");

    let got = dir
        .get_contact(pb::GetContactRequest {
            contact_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(got, created);

    people(&mut dir, "Alex", 3).await;
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = dir
            .list_contacts(pb::ListContactsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.contacts.into_iter().map(|c| c.display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, ["Alex 1", "Alex 2", "Alex 3", "Sam Patel"]);
    let first = dir
        .list_contacts(pb::ListContactsRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let refused = dir
        .list_contacts(pb::ListContactsRequest {
            include_inactive: true,
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(
        fields(&refused),
        ["page_token"],
        "a token is bound to its filter"
    );
}

async fn every_bad_field_of_a_contact_is_named(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let err = dir
        .create_contact(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                display_name: " ".into(),
                email: "not-an-address".into(),
                job_title: "x".repeat(201),
                deputy_contact_id: "nobody".into(),
                token_subject: "a\u{202E}b".into(),
                ..Default::default()
            }),
            idempotency_key: "not-a-uuid".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut f = fields(&err);
    f.sort();
    assert_eq!(
        f,
        [
            "contact.deputy_contact_id",
            "contact.display_name",
            "contact.email",
            "contact.job_title",
            "contact.token_subject",
            "idempotency_key",
        ]
    );
    let mut c = contact("Deputy Missing");
    c.deputy_contact_id = uuid::Uuid::now_v7().to_string();
    let err = dir
        .create_contact(pb::CreateContactRequest {
            contact: Some(c),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["contact.deputy_contact_id"]);
    assert!(
        described(&err).contains("no such contact"),
        "{}",
        described(&err)
    );

    let err = dir
        .get_contact(pb::GetContactRequest {
            contact_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "CONTACT_NOT_FOUND")
    );
}

async fn a_contact_changes_against_its_revision_and_a_subject_is_one_persons(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Kim", 2).await;
    let mask = |paths: &[&str]| {
        Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        })
    };
    let updated = dir
        .update_contact(pb::UpdateContactRequest {
            contact_id: ids[0].clone(),
            revision: 1,
            contact: Some(pb::Contact {
                email: "kim.new@example.org".into(),
                deputy_contact_id: ids[1].clone(),
                display_name: "ignored: not in the mask".into(),
                ..Default::default()
            }),
            update_mask: mask(&["email", "deputy_contact_id"]),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(updated.email, "kim.new@example.org");
    assert_eq!(updated.deputy_contact_id, ids[1]);
    assert_eq!(updated.display_name, "Kim 1");
    assert_eq!(updated.revision, 2);

    let stale = dir
        .update_contact(pb::UpdateContactRequest {
            contact_id: ids[0].clone(),
            revision: 1,
            contact: Some(pb::Contact {
                job_title: "Lead".into(),
                ..Default::default()
            }),
            update_mask: mask(&["job_title"]),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (stale.code(), reason(&stale).as_str()),
        (Code::Aborted, "CONTACT_CHANGED")
    );

    let taken = dir
        .update_contact(pb::UpdateContactRequest {
            contact_id: ids[0].clone(),
            revision: 2,
            contact: Some(pb::Contact {
                token_subject: "kim-2".into(),
                ..Default::default()
            }),
            update_mask: mask(&["token_subject"]),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (taken.code(), reason(&taken).as_str()),
        (Code::AlreadyExists, "SUBJECT_TAKEN")
    );

    let bad = dir
        .update_contact(pb::UpdateContactRequest {
            contact_id: ids[0].clone(),
            revision: 2,
            contact: Some(pb::Contact {
                deputy_contact_id: ids[0].clone(),
                ..Default::default()
            }),
            update_mask: mask(&["deputy_contact_id", "active", "*"]),
        })
        .await
        .unwrap_err();
    let mut f = fields(&bad);
    f.sort();
    assert_eq!(f, ["update_mask.paths[1]", "update_mask.paths[2]"]);
    let own_deputy = dir
        .update_contact(pb::UpdateContactRequest {
            contact_id: ids[0].clone(),
            revision: 2,
            contact: Some(pb::Contact {
                deputy_contact_id: ids[0].clone(),
                ..Default::default()
            }),
            update_mask: mask(&["deputy_contact_id"]),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&own_deputy), ["contact.deputy_contact_id"]);
}

async fn lists_change_against_their_revision_and_lose_deactivated_contacts(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Lee", 3).await;
    let set = |revision: i32, contact_ids: Vec<String>| pb::SetContactListRequest {
        kind: pb::ContactListKind::HighMedium as i32,
        contact_ids,
        revision,
    };
    let list = dir
        .set_contact_list(set(0, ids.clone()))
        .await
        .unwrap()
        .into_inner()
        .list
        .unwrap();
    assert_eq!((list.revision, list.contact_ids.clone()), (1, ids.clone()));
    let stale = dir
        .set_contact_list(set(0, ids[..1].to_vec()))
        .await
        .unwrap_err();
    assert_eq!(
        (stale.code(), reason(&stale).as_str()),
        (Code::Aborted, "LIST_CHANGED")
    );

    let bad = dir
        .set_contact_list(pb::SetContactListRequest {
            kind: 0,
            contact_ids: vec![ids[0].clone(), ids[0].clone(), "x".into()],
            revision: -1,
        })
        .await
        .unwrap_err();
    let mut f = fields(&bad);
    f.sort();
    assert_eq!(f, ["contact_ids[1]", "contact_ids[2]", "kind", "revision"]);

    let lee = dir
        .deactivate_contact(pb::DeactivateContactRequest {
            contact_id: ids[1].clone(),
            revision: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert!(!lee.active);
    let lists = dir
        .list_contact_lists(pb::ListContactListsRequest {})
        .await
        .unwrap()
        .into_inner()
        .lists;
    assert_eq!(lists.len(), 8, "every kind of list");
    let hm = lists
        .iter()
        .find(|l| l.kind == pb::ContactListKind::HighMedium as i32)
        .unwrap();
    assert_eq!(hm.contact_ids, [ids[0].clone(), ids[2].clone()]);
    assert_eq!(hm.revision, 2, "taking someone off a list changes it");
    let empty = lists
        .iter()
        .find(|l| l.kind == pb::ContactListKind::Low as i32)
        .unwrap();
    assert_eq!((empty.revision, empty.contact_ids.len()), (0, 0));

    let inactive = dir.set_contact_list(set(2, ids.clone())).await.unwrap_err();
    assert_eq!(fields(&inactive), ["contact_ids[1]"]);
    assert!(
        described(&inactive).contains("deactivated"),
        "{}",
        described(&inactive)
    );
    let listed = dir
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(
        listed.len(),
        2,
        "a deactivated contact is listed only when asked"
    );
}

async fn only_the_policy_owner_and_administrators_change_the_directory(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let request = || pb::CreateContactRequest {
        contact: Some(contact("Pat")),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    };
    for roles in [
        &[Role::SecurityAdvisor][..],
        &[Role::Reporter],
        &[Role::Service],
        &[Role::SeniorManagement],
    ] {
        let err = svc
            .directory("someone", roles)
            .create_contact(request())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{roles:?}");
    }
    svc.directory("admin", &[Role::Admin])
        .create_contact(request())
        .await
        .unwrap();
    let mut advisor = svc.directory("advisor", &[Role::SecurityAdvisor]);
    assert_eq!(
        advisor
            .list_contacts(pb::ListContactsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .contacts
            .len(),
        1
    );
    let mut reporter = svc.directory("reporter", &[Role::Reporter]);
    let err = reporter
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut anonymous = pb::directory_service_client::DirectoryServiceClient::new(
        custos_testing::anonymous(svc.running.addr),
    );
    let err = anonymous
        .list_contact_lists(pb::ListContactListsRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

on_both_backends!(
    contacts_are_created_once_read_and_listed_by_name,
    every_bad_field_of_a_contact_is_named,
    a_contact_changes_against_its_revision_and_a_subject_is_one_persons,
    lists_change_against_their_revision_and_lose_deactivated_contacts,
    only_the_policy_owner_and_administrators_change_the_directory,
);
