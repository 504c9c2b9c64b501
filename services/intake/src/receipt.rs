//! Anonymous reporters' receipts. A receipt is an HMAC-SHA256, under the server's
//! receipt secret, of the report's id and the submission's idempotency key: a retry with
//! the same key gets the same receipt without the server keeping it, and nobody who
//! knows the report id and the key (a gateway's log, the database) can compute it
//! without the secret. Only a hash of the receipt is stored.

use data_encoding::BASE32_NOPAD;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Derives receipts under the configured secret (never logged).
#[derive(Clone)]
pub struct Receipts {
    key: hmac::Key,
}

impl std::fmt::Debug for Receipts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receipts")
    }
}

impl Receipts {
    pub fn new(secret: &SecretString) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes()),
        }
    }

    /// The receipt of an anonymous report, as shown to the reporter: 160 bits in groups
    /// of four base32 characters.
    pub fn receipt(&self, report_id: Uuid, idempotency_key: &str) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(b"custos receipt v2\0");
        context.update(report_id.as_bytes());
        context.update(b"\0");
        context.update(idempotency_key.as_bytes());
        let tag = context.sign();
        let text = BASE32_NOPAD.encode(&tag.as_ref()[..20]);
        text.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// The stored hash of a receipt; spaces, dashes and case do not matter.
pub fn receipt_hash(receipt: &str) -> Vec<u8> {
    let normalised: String = receipt
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Sha256::new()
        .chain_update(b"custos receipt hash v1\0")
        .chain_update(normalised)
        .finalize()
        .to_vec()
}

/// Whether text looks like a receipt at all (32 base32 characters).
pub fn looks_like_receipt(receipt: &str) -> bool {
    let chars: Vec<char> = receipt
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    chars.len() == 32
        && chars
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_lowercase() || ('2'..='7').contains(c))
}

/// The stored hash of a submission's idempotency key, scoped to who sent it (a subject,
/// or `anonymous`), so that two people's keys never collide.
pub fn idempotency_hash(scope: &str, key: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(b"custos idempotency v1\0")
        .chain_update(scope.as_bytes())
        .chain_update(b"\0")
        .chain_update(key.as_bytes())
        .finalize()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_need_the_secret() {
        let secret = SecretString::from("receipt-secret-0123456789abcdef-0123");
        let receipts = Receipts::new(&secret);
        let id = Uuid::new_v4();
        let a = receipts.receipt(id, "key-0123456789abcdef");
        assert_eq!(a, receipts.receipt(id, "key-0123456789abcdef"));
        assert_ne!(a, receipts.receipt(id, "key-0123456789abcdeg"));
        let other = Receipts::new(&SecretString::from("another-secret-0123456789abcdef-012"));
        assert_ne!(
            a,
            other.receipt(id, "key-0123456789abcdef"),
            "the id and the key alone do not give the receipt"
        );
        // Nor does the old, unkeyed derivation from the id and the key.
        let unkeyed = Sha256::new()
            .chain_update(b"custos receipt v1\0")
            .chain_update(id.as_bytes())
            .chain_update(b"\0")
            .chain_update(b"key-0123456789abcdef")
            .finalize();
        assert!(
            !a.replace('-', "")
                .contains(&BASE32_NOPAD.encode(&unkeyed[..20]))
        );
        assert!(looks_like_receipt(&a));
        assert_eq!(
            receipt_hash(&a),
            receipt_hash(&a.to_lowercase().replace('-', " "))
        );
    }
}
