//! Escalation policies: the shipped default until one is set, every tier at least two
//! nominees unless the policy is a single accountable line, refused field by field.

use custos_proto::escalation::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::{TestEscalation, described, fields, minutes, people, reason};

fn tier(
    contact_ids: &[String],
    lists: &[pb::ContactListKind],
    deadline: i64,
) -> pb::EscalationTier {
    pb::EscalationTier {
        contact_ids: contact_ids.to_vec(),
        lists: lists.iter().map(|l| *l as i32).collect(),
        response_deadline: minutes(deadline),
        reminder_before: minutes(deadline / 2),
    }
}

fn policy(trigger: pb::EscalationTrigger, tiers: Vec<pb::EscalationTier>) -> pb::EscalationPolicy {
    pb::EscalationPolicy {
        trigger: trigger as i32,
        tiers,
        repeat_interval: minutes(30),
        ..Default::default()
    }
}

async fn every_trigger_has_the_shipped_default_until_a_policy_is_set(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let policies = dir
        .list_escalation_policies(pb::ListEscalationPoliciesRequest {})
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert_eq!(policies.len(), 8);
    let high = &policies[pb::EscalationTrigger::IncidentHigh as usize - 1];
    assert_eq!(high.trigger, pb::EscalationTrigger::IncidentHigh as i32);
    assert_eq!(high.revision, 0);
    assert_eq!(high.tiers.len(), 1);
    assert_eq!(
        high.tiers[0].lists,
        [pb::ContactListKind::HighMedium as i32]
    );
    assert_eq!(high.tiers[0].response_deadline, minutes(60));
    let personal = &policies[pb::EscalationTrigger::PaperOrPersonal as usize - 1];
    assert_eq!(
        personal.tiers[0].lists,
        [
            pb::ContactListKind::SeniorManagement as i32,
            pb::ContactListKind::DataProtectionOfficer as i32,
            pb::ContactListKind::CaldicottGuardian as i32,
        ],
        "paper and personal information: senior management, the DPO and the Caldicott Guardian"
    );

    let ids = people(&mut dir, "Responder", 3).await;
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::HighMedium as i32,
        contact_ids: ids[1..].to_vec(),
        revision: 0,
    })
    .await
    .unwrap();
    let set = dir
        .set_escalation_policy(pb::SetEscalationPolicyRequest {
            policy: Some(policy(
                pb::EscalationTrigger::IncidentHigh,
                vec![
                    tier(&ids[..1], &[pb::ContactListKind::HighMedium], 30),
                    tier(&ids[1..], &[], 60),
                ],
            )),
            revision: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!((set.revision, set.updated_by.as_str()), (1, "policy-owner"));
    assert_eq!(set.tiers.len(), 2);
    assert_eq!(set.tiers[0].reminder_before, minutes(15));
    let stale = dir
        .set_escalation_policy(pb::SetEscalationPolicyRequest {
            policy: Some(policy(
                pb::EscalationTrigger::IncidentHigh,
                vec![tier(&ids, &[pb::ContactListKind::HighMedium], 30)],
            )),
            revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (stale.code(), reason(&stale).as_str()),
        (Code::Aborted, "POLICY_CHANGED")
    );
    let listed = dir
        .list_escalation_policies(pb::ListEscalationPoliciesRequest {})
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert_eq!(
        listed[pb::EscalationTrigger::IncidentHigh as usize - 1],
        set
    );
}

async fn a_tier_needs_two_nominees_unless_the_policy_is_a_single_accountable_line(
    backend: Backend,
) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Ash", 2).await;
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::Low as i32,
        contact_ids: ids[..1].to_vec(),
        revision: 0,
    })
    .await
    .unwrap();
    let set = |p: pb::EscalationPolicy| pb::SetEscalationPolicyRequest {
        policy: Some(p),
        revision: 0,
    };
    // One person, even counting the list (whose only member is that person).
    let err = dir
        .set_escalation_policy(set(policy(
            pb::EscalationTrigger::IncidentLow,
            vec![
                tier(&ids[..2], &[pb::ContactListKind::Low], 30),
                tier(&ids[..1], &[pb::ContactListKind::Low], 30),
            ],
        )))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["policy.tiers[1]"]);
    assert!(
        described(&err).contains("at least two nominees"),
        "{}",
        described(&err)
    );

    let mut single = policy(
        pb::EscalationTrigger::IncidentLow,
        vec![tier(&ids[..1], &[], 30)],
    );
    single.single_accountable = true;
    let ok = dir
        .set_escalation_policy(set(single.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.policy.unwrap().single_accountable);

    let mut two_tiers = single.clone();
    two_tiers.trigger = pb::EscalationTrigger::IncidentMedium as i32;
    two_tiers.tiers.push(tier(&ids, &[], 30));
    two_tiers.tiers[0]
        .lists
        .push(pb::ContactListKind::Low as i32);
    let err = dir.set_escalation_policy(set(two_tiers)).await.unwrap_err();
    let mut f = fields(&err);
    f.sort();
    assert_eq!(f, ["policy.tiers", "policy.tiers[0]"]);
}

async fn a_bad_policy_is_refused_field_by_field(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Bo", 2).await;
    let mut bad = policy(
        pb::EscalationTrigger::Unspecified,
        vec![
            pb::EscalationTier {
                contact_ids: vec![ids[0].clone(), ids[0].clone(), "nope".into()],
                lists: vec![99],
                response_deadline: Some(custos_proto::prost_types::Duration {
                    seconds: 30,
                    nanos: 0,
                }),
                reminder_before: None,
            },
            pb::EscalationTier {
                contact_ids: ids.clone(),
                lists: vec![],
                response_deadline: minutes(10),
                reminder_before: minutes(10),
            },
            pb::EscalationTier {
                contact_ids: vec![uuid::Uuid::now_v7().to_string(), ids[1].clone()],
                lists: vec![],
                response_deadline: None,
                reminder_before: None,
            },
        ],
    );
    bad.repeat_interval = minutes(1);
    let err = dir
        .set_escalation_policy(pb::SetEscalationPolicyRequest {
            policy: Some(bad),
            revision: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut f = fields(&err);
    f.sort();
    assert_eq!(
        f,
        [
            "policy.repeat_interval",
            "policy.tiers[0].contact_ids[1]",
            "policy.tiers[0].contact_ids[2]",
            "policy.tiers[0].lists[0]",
            "policy.tiers[0].response_deadline",
            "policy.tiers[1].reminder_before",
            "policy.tiers[2].response_deadline",
            "policy.trigger",
            "revision",
        ]
    );
    // Well-formed, but one contact does not exist.
    let err = dir
        .set_escalation_policy(pb::SetEscalationPolicyRequest {
            policy: Some(policy(
                pb::EscalationTrigger::EvidenceRequired,
                vec![tier(
                    &[uuid::Uuid::now_v7().to_string(), ids[1].clone()],
                    &[],
                    30,
                )],
            )),
            revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["policy.tiers[0].contact_ids[0]"]);
}

on_both_backends!(
    every_trigger_has_the_shipped_default_until_a_policy_is_set,
    a_tier_needs_two_nominees_unless_the_policy_is_a_single_accountable_line,
    a_bad_policy_is_refused_field_by_field,
);
