//! An incident's costs, itemised (14.2.3: "costs incurred during the incidents"), in
//! whole minor units of the organisation's currency; corrections are negative items.

use custos_kit::{
    auth::Principal,
    error::{Violations, text},
    idempotency::{self, Key},
    page,
    storage::DbTime,
    time_fmt::to_timestamp,
};
use custos_proto::{classification::v1 as pb, google::r#type::Money};
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{IncidentApi, Needs, Opened, parse_key};
use crate::{
    error::ClassificationError,
    incident::ActionKind,
    store::{self, CostRow},
};

/// Amounts above this many major units are refused as typing mistakes (and so that no
/// total of them can overflow).
const MAX_UNITS: i64 = 10_000_000_000;

/// A money amount as minor units (pence), or what is wrong with it.
fn minor_units(m: &Money, currency: &str, digits: u32) -> Result<i64, (&'static str, String)> {
    if m.currency_code != currency {
        return Err((
            ".currency_code",
            format!("must be {currency}, the organisation's currency"),
        ));
    }
    if !(-999_999_999..=999_999_999).contains(&m.nanos)
        || (m.units > 0 && m.nanos < 0)
        || (m.units < 0 && m.nanos > 0)
    {
        return Err((
            ".nanos",
            "must be between -999,999,999 and 999,999,999, with the sign of units".into(),
        ));
    }
    let step = 10i32.pow(9 - digits);
    if m.nanos % step != 0 {
        return Err((
            ".nanos",
            format!("must be whole minor units of {currency}: a multiple of {step}"),
        ));
    }
    if m.units.unsigned_abs() > MAX_UNITS.unsigned_abs() {
        return Err((".units", format!("must be at most {MAX_UNITS} in size")));
    }
    let minor = m.units * 10i64.pow(digits) + i64::from(m.nanos / step);
    if minor == 0 {
        return Err(("", "must not be zero".into()));
    }
    Ok(minor)
}

/// An amount as people read it: `GBP -0.50`, `JPY 5`.
fn shown(minor: i64, currency: &str, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let (sign, abs) = (if minor < 0 { "-" } else { "" }, minor.unsigned_abs());
    if digits == 0 {
        format!("{currency} {sign}{abs}")
    } else {
        let width = digits as usize;
        format!("{currency} {sign}{}.{:0width$}", abs / scale, abs % scale)
    }
}

fn money(minor: i64, currency: &str, digits: u32) -> Money {
    let scale = 10i64.pow(digits);
    Money {
        currency_code: currency.to_owned(),
        units: minor / scale,
        nanos: i32::try_from((minor % scale) * 10i64.pow(9 - digits)).unwrap_or(0),
    }
}

impl IncidentApi {
    fn cost_to_wire(&self, c: CostRow) -> pb::IncidentCost {
        pb::IncidentCost {
            id: c.id.to_string(),
            category: c.category,
            amount: Some(money(
                c.amount_minor,
                &c.currency,
                self.matrix.minor_unit_digits,
            )),
            description: c.description,
            recorded_by: c.recorded_by,
            recorded_at: Some(to_timestamp(c.recorded_at.get())),
        }
    }

    /// AddIncidentCost: the officer or an advisor.
    #[tracing::instrument(skip_all)]
    pub(super) async fn add_cost(
        &self,
        caller: &Principal,
        req: pb::AddIncidentCostRequest,
    ) -> Result<pb::AddIncidentCostResponse, ClassificationError> {
        let (currency, digits) = (&self.matrix.currency, self.matrix.minor_unit_digits);
        let mut v = Violations::new();
        let incident_key = parse_key(&mut v, "incident_id", &req.incident_id);
        let category = text(&mut v, "category", &req.category, 64, true);
        if !category.is_empty() && !self.cost_categories.contains(&category) {
            v.add(
                "category",
                format!("`{category}` is not one of this organisation's cost categories"),
            );
        }
        let amount = match &req.amount {
            None => {
                v.add("amount", "is required");
                None
            }
            Some(m) => match minor_units(m, currency, digits) {
                Ok(minor) => Some(minor),
                Err((part, message)) => {
                    v.add(format!("amount{part}"), message);
                    None
                }
            },
        };
        let description = text(&mut v, "description", &req.description, 2_000, true);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, true);
        v.finish()?;
        let amount = amount.expect("checked");
        let key = Key::new(&caller.subject, "AddIncidentCost", &req.idempotency_key);
        let fingerprint = idempotency::fingerprint(&(&category, amount, currency, &description));
        let needs = Needs::Change("add to its costs");
        let incident_key = incident_key.expect("checked");
        let c = match self
            .open_change(caller, &incident_key, needs, &key, &fingerprint)
            .await?
        {
            Opened::Replay(bytes) => {
                return pb::AddIncidentCostResponse::decode(bytes.as_slice())
                    .map_err(|_| ClassificationError::Corrupt("a stored response".into()));
            }
            Opened::New(c) => c,
        };
        // Costs arrive after closing too (invoices, fines): the ledger stays open.
        let super::Changing {
            mut tx,
            pending,
            row,
            ..
        } = *c;
        let cost = CostRow {
            id: Uuid::now_v7(),
            category,
            amount_minor: amount,
            currency: currency.clone(),
            minor_digits: digits as i16,
            description,
            recorded_by: caller.subject.clone(),
            recorded_at: DbTime::now(),
        };
        store::add_cost(&mut tx, row.id, &cost).await?;
        let detail = format!(
            "{}: {} ({})",
            cost.category,
            shown(amount, currency, digits),
            cost.description
        );
        store::append_action(
            &mut tx,
            row.id,
            ActionKind::CostAdded,
            &detail,
            None,
            &caller.subject,
            cost.recorded_at,
        )
        .await?;
        if row.personal_data {
            custos_kit::audit::record(
                &mut tx,
                caller,
                "incident.cost",
                "incident",
                &[row.id.to_string()],
            )
            .await?;
        }
        let response = pb::AddIncidentCostResponse {
            cost: Some(self.cost_to_wire(cost)),
        };
        idempotency::complete(&mut tx, pending, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// ListIncidentCosts: anyone who may see the incident.
    #[tracing::instrument(skip_all)]
    pub(super) async fn costs(
        &self,
        request: Request<pb::ListIncidentCostsRequest>,
    ) -> Result<Response<pb::ListIncidentCostsResponse>, Status> {
        let caller = custos_kit::auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let key = parse_key(&mut v, "incident_id", &req.incident_id);
        let limit = page::size(&mut v, "page_size", req.page_size);
        v.finish().map_err(ClassificationError::from)?;
        let mut totals = Vec::new();
        let (_, rows, next_page_token) = self
            .child_page(
                &caller,
                &key.expect("checked"),
                "ListIncidentCosts",
                "incident.costs.read",
                &req.page_token,
                limit,
                async |conn, id, after, limit| {
                    let rows = store::costs(&mut *conn, id, after, limit).await?;
                    totals = store::cost_totals(conn, id).await?;
                    Ok(rows)
                },
                |r| r.id,
            )
            .await?;
        Ok(Response::new(pb::ListIncidentCostsResponse {
            costs: rows.into_iter().map(|c| self.cost_to_wire(c)).collect(),
            next_page_token,
            totals: totals
                .into_iter()
                .map(|(currency, digits, minor)| money(minor, &currency, digits as u32))
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_whole_pence_and_back() {
        let m = |units, nanos| Money {
            currency_code: "GBP".into(),
            units,
            nanos,
        };
        assert_eq!(minor_units(&m(12, 340_000_000), "GBP", 2), Ok(1234));
        assert_eq!(minor_units(&m(-3, -50_000_000), "GBP", 2), Ok(-305));
        assert_eq!(money(-305, "GBP", 2), m(-3, -50_000_000));
        assert_eq!(money(1234, "GBP", 2), m(12, 340_000_000));
        assert_eq!(shown(-50, "GBP", 2), "GBP -0.50");
        assert_eq!(shown(5, "JPY", 0), "JPY 5");
        assert_eq!(shown(123_456, "BHD", 3), "BHD 123.456");
        assert!(
            minor_units(&m(i64::MIN, -10_000_000), "GBP", 2).is_err(),
            "no overflow"
        );
        assert!(minor_units(&m(i64::MAX, 0), "GBP", 2).is_err());
        assert!(
            minor_units(&m(1, 5_000_000), "GBP", 2).is_err(),
            "half a penny"
        );
        assert!(minor_units(&m(0, 0), "GBP", 2).is_err(), "nothing");
        assert!(
            minor_units(&m(1, -10_000_000), "GBP", 2).is_err(),
            "mixed signs"
        );
        let euros = Money {
            currency_code: "EUR".into(),
            ..m(1, 0)
        };
        assert_eq!(
            minor_units(&euros, "GBP", 2).unwrap_err().0,
            ".currency_code"
        );
    }
}
