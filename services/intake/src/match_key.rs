//! Match keys: keyed digests of the inventory numbers and locations of a report, carried
//! in intake's events so that classification can group reports that share one (policy 6:
//! a series of events may be one incident) without ever holding the words. The key is
//! derived from the receipt secret, so it is the same on every replica and no one without
//! the secret can test a guess against a digest.

use custos_proto::intake::v1 as pb;
use data_encoding::BASE64URL_NOPAD;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};

use crate::report::Details;

/// Derives match keys (never logged).
#[derive(Clone)]
pub struct MatchKeys {
    key: hmac::Key,
}

impl std::fmt::Debug for MatchKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MatchKeys")
    }
}

/// Upper-case letters and digits only: "lt 00421" and "LT-00421" are one number.
fn inventory_number(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Lower-case words separated by single spaces: "Finance Office, 2nd floor" and "finance
/// office 2nd  floor" are one place.
fn location(value: &str) -> String {
    value
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Normalised values that name no particular thing: as keys they would join unrelated
/// reports into false series.
const NOT_A_THING: &[&str] = &[
    "",
    "NA",
    "NONE",
    "NIL",
    "UNKNOWN",
    "TBC",
    "TBA",
    "0",
    "N",
    "X",
    "n a",
    "na",
    "none",
    "nil",
    "unknown",
    "not known",
    "tbc",
    "tba",
    "home",
    "remote",
    "various",
    "multiple",
    "office",
    "n",
    "x",
];

impl MatchKeys {
    pub fn new(receipt_secret: &SecretString) -> Self {
        // A key of its own, so that a digest here can never equal a receipt.
        let root = hmac::Key::new(hmac::HMAC_SHA256, receipt_secret.expose_secret().as_bytes());
        let derived = hmac::sign(&root, b"custos match keys v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    fn digest(&self, kind: &[u8], normalised: &str) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(kind);
        context.update(b"\0");
        context.update(normalised.as_bytes());
        BASE64URL_NOPAD.encode(&context.sign().as_ref()[..16])
    }

    /// The keys of a report's details: one per distinct non-empty value.
    pub fn of(&self, d: &Details) -> pb::MatchKeys {
        let keys = |kind: &[u8], values: Vec<String>| {
            let mut keys: Vec<String> = values
                .into_iter()
                .filter(|v| !NOT_A_THING.contains(&v.as_str()))
                .map(|v| self.digest(kind, &v))
                .collect();
            keys.sort();
            keys.dedup();
            keys
        };
        pb::MatchKeys {
            inventory_numbers: keys(
                b"inventory",
                d.inventory_numbers
                    .iter()
                    .map(|n| inventory_number(n))
                    .collect(),
            ),
            locations: keys(
                b"location",
                vec![
                    location(&d.incident_location),
                    location(&d.affected_location),
                ],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_normalised_before_they_are_keyed() {
        assert_eq!(inventory_number(" lt-00421 "), "LT00421");
        assert_eq!(
            location("Finance Office, 2nd  floor"),
            "finance office 2nd floor"
        );
        let keys = MatchKeys::new(&SecretString::from("a".repeat(32)));
        assert_eq!(keys.digest(b"location", "x"), keys.digest(b"location", "x"));
        assert_ne!(
            keys.digest(b"location", "x"),
            keys.digest(b"inventory", "x")
        );
        let other = MatchKeys::new(&SecretString::from("b".repeat(32)));
        assert_ne!(
            keys.digest(b"location", "x"),
            other.digest(b"location", "x"),
            "keyed"
        );
        assert_eq!(
            keys.digest(b"location", "x").len(),
            22,
            "128 bits, unpadded base64url"
        );
        let mut d = Details {
            category: "x".into(),
            medium: crate::report::Medium::Electronic,
            data_involved: String::new(),
            risk_to_others: None,
            risk_details: String::new(),
            incident_location: "N/A".into(),
            inventory_numbers: vec!["unknown".into(), "LT-1".into(), "lt 1".into()],
            occurred_at: None,
            affected_location: "Home".into(),
            circumstances: String::new(),
            symptoms: String::new(),
            personal_information: false,
            malware_suspected: false,
        };
        let k = keys.of(&d);
        assert_eq!(
            (k.inventory_numbers.len(), k.locations.len()),
            (1, 0),
            "placeholders give no key, one number written twice gives one: {k:?}"
        );
        d.incident_location = "Finance office".into();
        assert_eq!(keys.of(&d).locations.len(), 1);
    }
}
