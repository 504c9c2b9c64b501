//! Paging for every list call: the page size rule, and page tokens.
//!
//! `page_size` 0 means 50, above 500 is coerced to 500, negative is INVALID_ARGUMENT.
//! Page tokens are opaque, sealed, and bound to the list call and filter they were issued
//! for. A token is the page position (any serde value) encrypted with ChaCha20-Poly1305
//! under the service's key, with the call's scope (method and filter) as associated
//! data: a client cannot read or forge one, and a token used with another filter fails
//! to open and is refused with INVALID_ARGUMENT instead of returning the wrong page.

use data_encoding::BASE64URL_NOPAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::Violations;

/// The page size when the request gives none.
pub const DEFAULT_SIZE: i32 = 50;
/// The largest page; larger requests get this many.
pub const MAX_SIZE: i32 = 500;

/// The number of items to return for a requested `page_size` (records a violation for a
/// negative one).
pub fn size(v: &mut Violations, field: &str, requested: i32) -> i64 {
    match requested {
        0 => i64::from(DEFAULT_SIZE),
        s if s < 0 => {
            v.add(field, "must not be negative");
            0
        }
        s => i64::from(s.min(MAX_SIZE)),
    }
}

/// Cuts `rows` (read with one more than `limit`, to know whether there is a next page)
/// to `limit`, and returns the next page's token (`token` of the last row kept), or the
/// empty string on the last page.
pub fn cut<R>(rows: &mut Vec<R>, limit: i64, token: impl Fn(&R) -> String) -> String {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(token).unwrap_or_default()
    } else {
        String::new()
    }
}

/// What a client is told about a token that does not open.
pub const INVALID: &str =
    "is not a page token of this call with this filter: start again without a page_token";

pub struct PageTokens {
    key: LessSafeKey,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens")
    }
}

impl PageTokens {
    /// A sealer with a 32-byte key.
    pub fn new(key: &[u8]) -> Self {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// Seals `position` for the list call identified by `scope` (e.g. the method name
    /// and the filter as the service parsed it).
    pub fn seal<P: Serialize>(&self, scope: &[u8], position: &P) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source works");
        let mut data = serde_json::to_vec(position).expect("a page position serialises");
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(scope),
                &mut data,
            )
            .expect("sealing fits in memory");
        let mut token = nonce.to_vec();
        token.extend_from_slice(&data);
        BASE64URL_NOPAD.encode(&token)
    }

    /// Opens a token for `scope`: `Ok(None)` for the empty token (the first page),
    /// `Err` with [`INVALID`] for anything this call did not issue with this scope.
    pub fn open<P: DeserializeOwned>(
        &self,
        scope: &[u8],
        token: &str,
    ) -> Result<Option<P>, String> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || INVALID.to_owned();
        let bytes = BASE64URL_NOPAD
            .decode(token.as_bytes())
            .map_err(|_| invalid())?;
        if bytes.len() < NONCE_LEN {
            return Err(invalid());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| invalid())?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(scope), &mut sealed)
            .map_err(|_| invalid())?;
        serde_json::from_slice(plain)
            .map(Some)
            .map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_for_their_scope_and_hide_the_position() {
        let tokens = PageTokens::new(&[7; 32]);
        let token = tokens.seal(
            b"ListReports kind=EVENT",
            &(1_764_000_000_000_000_i64, "abc"),
        );
        assert!(!token.contains("abc") && !token.contains("1764"));
        let back: Option<(i64, String)> = tokens.open(b"ListReports kind=EVENT", &token).unwrap();
        assert_eq!(back, Some((1_764_000_000_000_000, "abc".to_owned())));
        assert_eq!(
            tokens.open::<(i64, String)>(b"ListReports kind=WEAKNESS", &token),
            Err(INVALID.to_owned()),
            "a token is bound to its filter"
        );
        assert!(tokens.open::<(i64, String)>(b"x", "garbage!").is_err());
        assert!(tokens.open::<(i64, String)>(b"x", "").unwrap().is_none());
        let other_key = PageTokens::new(&[8; 32]);
        assert!(
            other_key
                .open::<(i64, String)>(b"ListReports kind=EVENT", &token)
                .is_err()
        );
    }
}
