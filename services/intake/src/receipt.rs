//! Anonymous reporters' receipts and idempotency keys. Only hashes are stored: a receipt
//! cannot be read back from the database. A receipt for a submission that carried an
//! idempotency key is derived from that key, so that a retry can hand it out again
//! without the server keeping it.

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A receipt as shown to the reporter: 160 random (or key-derived) bits in groups of four.
pub fn new_receipt(report_id: Uuid, idempotency_key: Option<&str>) -> String {
    let bytes: [u8; 20] = match idempotency_key {
        Some(key) => {
            let digest = Sha256::new()
                .chain_update(b"custos receipt v1\0")
                .chain_update(report_id.as_bytes())
                .chain_update(b"\0")
                .chain_update(key.as_bytes())
                .finalize();
            digest[..20].try_into().expect("20 of 32 bytes")
        }
        None => {
            let mut bytes = [0u8; 20];
            getrandom::fill(&mut bytes).expect("the operating system's random source works");
            bytes
        }
    };
    let text = BASE32_NOPAD.encode(&bytes);
    text.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join("-")
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

/// The stored hash of an idempotency key, scoped to who sent it (a subject, or
/// `anonymous`), so that two people's keys never collide.
pub fn idempotency_hash(scope: &str, key: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(b"custos idempotency v1\0")
        .chain_update(scope.as_bytes())
        .chain_update(b"\0")
        .chain_update(key.as_bytes())
        .finalize()
        .to_vec()
}

/// Fingerprint of a request, to tell a true retry from a key reused for another report.
pub fn request_hash(encoded_request: &[u8]) -> Vec<u8> {
    Sha256::digest(encoded_request).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_receipts_are_reproducible_and_random_ones_are_not() {
        let id = Uuid::now_v7();
        let a = new_receipt(id, Some("key-0123456789abcdef"));
        assert_eq!(a, new_receipt(id, Some("key-0123456789abcdef")));
        assert_ne!(a, new_receipt(id, Some("key-0123456789abcdeg")));
        assert_ne!(new_receipt(id, None), new_receipt(id, None));
        assert!(looks_like_receipt(&a));
        assert_eq!(
            receipt_hash(&a),
            receipt_hash(&a.to_lowercase().replace('-', " "))
        );
    }
}
