//! An incident's costs: itemised in whole minor units of the organisation's currency,
//! corrections negative, a retry adding nothing, totals per currency, each page of a
//! personal-data incident's costs audited.

use custos_kit::{auth::Role, error::status_violations};
use custos_proto::{classification::v1 as pb, google::r#type::Money};
use custos_testing::{Backend, on_both_backends};

use crate::{common::*, incidents::raise};

const ADVISOR: &[Role] = &[Role::SecurityAdvisor];

fn fields(status: &tonic::Status) -> Vec<String> {
    status_violations(status)
        .into_iter()
        .map(|v| v.field)
        .collect()
}

fn gbp(units: i64, nanos: i32) -> Money {
    Money {
        currency_code: "GBP".into(),
        units,
        nanos,
    }
}

async fn costs_are_itemised_with_totals(backend: Backend) {
    let c = TestClassification::start(backend).await;
    let incident = raise(&c, 1, true).await;
    let mut sam = c.incidents("sam", ADVISOR);
    let cost = |category: &str, amount: Money, description: &str| pb::AddIncidentCostRequest {
        incident_id: incident.id.clone(),
        category: category.into(),
        amount: Some(amount),
        description: description.into(),
        idempotency_key: key(),
    };
    let err = sam
        .add_incident_cost(cost(
            "moon_rocks",
            Money {
                currency_code: "EUR".into(),
                ..gbp(1, 0)
            },
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        ["category", "amount.currency_code", "description"]
    );
    let err = sam
        .add_incident_cost(cost("staff_time", gbp(0, 5_000_000), "half a penny"))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["amount.nanos"]);
    let first = cost(
        "staff_time",
        gbp(1_200, 340_000_000),
        "Forensic imaging, 2 days",
    );
    let added = sam
        .add_incident_cost(first.clone())
        .await
        .unwrap()
        .into_inner();
    let again = sam.add_incident_cost(first).await.unwrap().into_inner();
    assert_eq!(added, again, "a retry adds nothing");
    sam.add_incident_cost(cost(
        "staff_time",
        gbp(-3, -50_000_000),
        "correction: overtime",
    ))
    .await
    .unwrap();
    sam.add_incident_cost(cost("equipment", gbp(499, 0), "Replacement laptop"))
        .await
        .unwrap();
    let page = sam
        .list_incident_costs(pb::ListIncidentCostsRequest {
            incident_id: incident.id.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.costs.len(), 2);
    assert_eq!(page.costs[0], added.cost.unwrap());
    assert_eq!(
        page.totals,
        [gbp(1_696, 290_000_000)],
        "1200.34 - 3.05 + 499.00"
    );
    let rest = sam
        .list_incident_costs(pb::ListIncidentCostsRequest {
            incident_id: incident.id.clone(),
            page_size: 2,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.costs.len(), 1);
    assert_eq!(rest.costs[0].amount, Some(gbp(499, 0)));
    let audited = custos_kit::audit::entries(c.db.read().await.unwrap(), &incident.id)
        .await
        .unwrap();
    let actions: Vec<&str> = audited.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "incident.read",
            "incident.cost",
            "incident.read",
            "incident.cost",
            "incident.cost",
            "incident.costs.read",
            "incident.costs.read",
        ]
    );
}

on_both_backends!(costs_are_itemised_with_totals);
