//! What keeps the directory honest: a change that would leave a stored policy unable to
//! be followed is refused, a revision sent for a list or policy never set writes
//! nothing, addresses and one-line fields are checked, a duration out of range is named
//! rather than crashing the call, every write needs the policy owner or an
//! administrator, and reads of contacts are audited.

use custos_kit::auth::Role;
use custos_proto::{
    escalation::v1 as pb,
    prost_types::{Duration, FieldMask},
};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::{TestEscalation, contact, fields, minutes, people, reason};

async fn low_policy_on(dir: &mut crate::common::Directory, ids: Vec<String>) {
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::Low as i32,
        contact_ids: ids,
        revision: 0,
    })
    .await
    .unwrap();
    dir.set_escalation_policy(pb::SetEscalationPolicyRequest {
        policy: Some(pb::EscalationPolicy {
            trigger: pb::EscalationTrigger::IncidentLow as i32,
            tiers: vec![pb::EscalationTier {
                lists: vec![pb::ContactListKind::Low as i32],
                response_deadline: minutes(60),
                ..Default::default()
            }],
            repeat_interval: minutes(60),
            ..Default::default()
        }),
        revision: 0,
    })
    .await
    .unwrap();
}

async fn a_change_that_would_leave_a_policy_short_of_nominees_is_refused(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Pat", 3).await;
    low_policy_on(&mut dir, ids[..2].to_vec()).await;
    let refused = [
        dir.deactivate_contact(pb::DeactivateContactRequest {
            contact_id: ids[0].clone(),
            revision: 1,
        })
        .await
        .unwrap_err(),
        dir.set_contact_list(pb::SetContactListRequest {
            kind: pb::ContactListKind::Low as i32,
            contact_ids: ids[..1].to_vec(),
            revision: 1,
        })
        .await
        .unwrap_err(),
        dir.update_contact(pb::UpdateContactRequest {
            contact_id: ids[1].clone(),
            revision: 1,
            contact: Some(pb::Contact::default()),
            update_mask: Some(FieldMask {
                paths: vec!["token_subject".into()],
            }),
        })
        .await
        .unwrap_err(),
    ];
    for err in refused {
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::FailedPrecondition, "POLICY_NOMINEES"),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("ESCALATION_TRIGGER_INCIDENT_LOW"),
            "{}",
            err.message()
        );
    }
    // With a third person on the list, one may go.
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::Low as i32,
        contact_ids: ids.clone(),
        revision: 1,
    })
    .await
    .unwrap();
    dir.deactivate_contact(pb::DeactivateContactRequest {
        contact_id: ids[0].clone(),
        revision: 1,
    })
    .await
    .unwrap();
    let policies = dir
        .list_escalation_policies(pb::ListEscalationPoliciesRequest {})
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert!(
        policies[pb::EscalationTrigger::IncidentLow as usize - 1]
            .problems
            .is_empty()
    );
    let high = &policies[pb::EscalationTrigger::IncidentHigh as usize - 1];
    assert_eq!(high.revision, 0);
    assert_eq!(high.problems.len(), 1, "{:?}", high.problems);
    assert!(
        high.problems[0].starts_with("tiers[0]: names 0 active people who can act"),
        "{:?}",
        high.problems
    );
}

async fn a_revision_sent_for_a_list_or_policy_never_set_writes_nothing(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Ola", 2).await;
    let err = dir
        .set_contact_list(pb::SetContactListRequest {
            kind: pb::ContactListKind::InternalAudit as i32,
            contact_ids: ids.clone(),
            revision: 3,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Aborted, "LIST_CHANGED")
    );
    let lists = dir
        .list_contact_lists(pb::ListContactListsRequest {})
        .await
        .unwrap()
        .into_inner()
        .lists;
    let audit = &lists[pb::ContactListKind::InternalAudit as usize - 1];
    assert_eq!((audit.revision, audit.contact_ids.len()), (0, 0));
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::InternalAudit as i32,
        contact_ids: ids,
        revision: 0,
    })
    .await
    .unwrap();
    let err = dir
        .set_escalation_policy(pb::SetEscalationPolicyRequest {
            policy: Some(pb::EscalationPolicy {
                trigger: pb::EscalationTrigger::EvidenceRequired as i32,
                tiers: vec![pb::EscalationTier {
                    lists: vec![pb::ContactListKind::InternalAudit as i32],
                    response_deadline: minutes(60),
                    ..Default::default()
                }],
                repeat_interval: minutes(60),
                ..Default::default()
            }),
            revision: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Aborted, "POLICY_CHANGED")
    );
    let policies = dir
        .list_escalation_policies(pb::ListEscalationPoliciesRequest {})
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert_eq!(
        policies[pb::EscalationTrigger::EvidenceRequired as usize - 1].revision,
        0
    );
}

async fn addresses_lines_and_durations_are_checked(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    for (email, name) in [
        ("Evil <a@example.org>", "Display"),
        ("root@localhost", "Local"),
        ("x@[10.0.0.1]", "Literal"),
        ("a@example.org\r\nBcc: b@example.org", "Header"),
    ] {
        let mut c = contact(name);
        c.email = email.into();
        let err = dir
            .create_contact(pb::CreateContactRequest {
                contact: Some(c),
                idempotency_key: uuid::Uuid::new_v4().to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["contact.email"], "{email}");
    }
    let mut c = contact("Two\nLines");
    c.email = "two.lines@example.org".into();
    c.job_title = "A\tB".into();
    let err = dir
        .create_contact(pb::CreateContactRequest {
            contact: Some(c),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    let mut f = fields(&err);
    f.sort();
    assert_eq!(f, ["contact.display_name", "contact.job_title"]);
    let err = dir
        .create_contact(pb::CreateContactRequest {
            contact: None,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["contact"]);

    let ids = people(&mut dir, "Dee", 2).await;
    let huge = Some(Duration {
        seconds: i64::MAX,
        nanos: 999_999_999,
    });
    let err = dir
        .set_escalation_policy(pb::SetEscalationPolicyRequest {
            policy: Some(pb::EscalationPolicy {
                trigger: pb::EscalationTrigger::IncidentLow as i32,
                tiers: vec![pb::EscalationTier {
                    contact_ids: ids,
                    lists: vec![pb::ContactListKind::Low as i32],
                    response_deadline: huge,
                    reminder_before: huge,
                }],
                repeat_interval: Some(Duration {
                    seconds: i64::MIN,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            revision: 0,
        })
        .await
        .unwrap_err();
    let mut f = fields(&err);
    f.sort();
    assert_eq!(
        f,
        [
            "policy.repeat_interval",
            "policy.tiers[0].reminder_before",
            "policy.tiers[0].response_deadline"
        ]
    );
}

async fn every_write_needs_the_policy_owner_or_an_administrator(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let id = people(&mut svc.owner(), "Ivy", 1).await.remove(0);
    for roles in [
        &[Role::SecurityAdvisor][..],
        &[Role::SeniorManagement],
        &[Role::Service],
        &[Role::Reporter],
    ] {
        let mut dir = svc.directory("someone", roles);
        let errors = [
            dir.update_contact(pb::UpdateContactRequest {
                contact_id: id.clone(),
                revision: 1,
                contact: Some(contact("Ivy")),
                update_mask: Some(FieldMask {
                    paths: vec!["job_title".into()],
                }),
            })
            .await
            .unwrap_err(),
            dir.deactivate_contact(pb::DeactivateContactRequest {
                contact_id: id.clone(),
                revision: 1,
            })
            .await
            .unwrap_err(),
            dir.set_contact_list(pb::SetContactListRequest {
                kind: pb::ContactListKind::Low as i32,
                contact_ids: vec![id.clone()],
                revision: 0,
            })
            .await
            .unwrap_err(),
            dir.set_escalation_policy(pb::SetEscalationPolicyRequest::default())
                .await
                .unwrap_err(),
        ];
        for err in errors {
            assert_eq!(
                (err.code(), reason(&err).as_str()),
                (Code::PermissionDenied, "ROLE_REQUIRED"),
                "{roles:?}"
            );
        }
    }
    for roles in [
        &[Role::Reporter][..],
        &[Role::Responder],
        &[Role::IncidentOfficer],
    ] {
        let mut dir = svc.directory("someone", roles);
        let reads = [
            dir.get_contact(pb::GetContactRequest {
                contact_id: id.clone(),
            })
            .await
            .unwrap_err(),
            dir.list_contact_lists(pb::ListContactListsRequest {})
                .await
                .unwrap_err(),
            dir.list_escalation_policies(pb::ListEscalationPoliciesRequest {})
                .await
                .unwrap_err(),
        ];
        for err in reads {
            assert_eq!(err.code(), Code::PermissionDenied, "{roles:?}");
        }
    }
}

async fn reads_of_contacts_are_audited_before_they_are_returned(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let id = people(&mut svc.owner(), "Max", 1).await.remove(0);
    svc.directory("auditor-test", &[Role::Service])
        .get_contact(pb::GetContactRequest {
            contact_id: id.clone(),
        })
        .await
        .unwrap();
    svc.directory("advisor", &[Role::SecurityAdvisor])
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap();
    let mut conn = svc.db.read().await.unwrap();
    let entries = custos_kit::audit::entries(&mut conn, &id).await.unwrap();
    assert_eq!(
        entries,
        [
            ("policy-owner".to_owned(), "CreateContact".to_owned()),
            ("auditor-test".to_owned(), "GetContact".to_owned()),
            ("advisor".to_owned(), "ListContacts".to_owned()),
        ]
    );
}

on_both_backends!(
    a_change_that_would_leave_a_policy_short_of_nominees_is_refused,
    a_revision_sent_for_a_list_or_policy_never_set_writes_nothing,
    addresses_lines_and_durations_are_checked,
    every_write_needs_the_policy_owner_or_an_administrator,
    reads_of_contacts_are_audited_before_they_are_returned,
);
