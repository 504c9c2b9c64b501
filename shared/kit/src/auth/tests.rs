//! Tests of token verification: shared secrets, JWKS keys (ES256, RS256) and the tokens
//! that must be refused.

use super::*;
use std::time::Duration;

fn config() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SecretString::from("0123456789abcdef0123456789abcdef")),
        ..AuthConfig::default()
    }
}

#[test]
fn a_minted_token_verifies_with_its_roles() {
    let config = config();
    let token = TokenMinter::from_config(&config).unwrap().mint(
        "alice",
        &[Role::Helpdesk, Role::Reporter],
        Duration::from_secs(60),
    );
    let principal = Verifier::from_config(&config)
        .unwrap()
        .verify(&token)
        .unwrap();
    assert_eq!(principal.subject, "alice");
    assert!(principal.has_any(&[Role::Helpdesk]));
    assert!(!principal.has_any(&[Role::Admin]));
}

#[test]
fn alg_none_is_refused() {
    let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64(
        br#"{"sub":"mallory","iss":"custos","aud":"custos","exp":99999999999,"roles":["admin"]}"#,
    );
    let token = format!("{header}.{claims}.");
    assert!(
        Verifier::from_config(&config())
            .unwrap()
            .verify(&token)
            .is_err()
    );
}

#[test]
fn space_separated_roles_are_understood() {
    let config = config();
    let minter = TokenMinter::from_config(&config).unwrap();
    let token = minter.mint_claims(serde_json::json!({
        "sub": "bob", "iss": "custos", "aud": "custos",
        "exp": jsonwebtoken::get_current_timestamp() + 60,
        "roles": "helpdesk not_a_role security_advisor",
    }));
    let principal = Verifier::from_config(&config)
        .unwrap()
        .verify(&token)
        .unwrap();
    assert_eq!(
        principal.roles,
        BTreeSet::from([Role::Helpdesk, Role::SecurityAdvisor])
    );
}

/// A P-256 key made for this test only (openssl ecparam -name prime256v1).
const TEST_EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoKdJde7/0tZkb6am
3h/Y4B7FZYQlHKFqf2fbadoZmwehRANCAAQMrOatRSOPfrmz1CQfPUP7ZnKbU9wE
v0+cTlaNya2Autnmw6BWiO+1oiFOdyHVIDI2RHCYfZblGA+1YaKecpTP
-----END PRIVATE KEY-----";

/// A verifier that knows only the keys of `jwks` (a JWKS document), from a file as in
/// production.
fn jwks_verifier(name: &str, jwks: &str) -> Verifier {
    let dir = std::env::temp_dir().join(format!("custos-jwks-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks).unwrap();
    let verifier = Verifier::from_config(&AuthConfig {
        jwks_file: Some(file),
        ..AuthConfig::default()
    })
    .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    verifier
}

fn claims(subject: &str, role: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": subject, "iss": "custos", "aud": "custos",
        "exp": jsonwebtoken::get_current_timestamp() + 60, "roles": [role],
    })
}

#[test]
fn es256_tokens_verify_against_the_jwks_file() {
    let verifier = jwks_verifier(
        "es256",
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256",
            "x":"DKzmrUUjj365s9QkHz1D-2Zym1PcBL9PnE5WjcmtgLo",
            "y":"2ebDoFaI77WiIU53IdUgMjZEcJh9luUYD7Vhop5ylM8"}]}"#,
    );
    let key = EncodingKey::from_ec_pem(TEST_EC_KEY.as_bytes()).unwrap();
    let claims = claims("carol", "security_advisor");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let principal = verifier.verify(&token).unwrap();
    assert_eq!(principal.subject, "carol");
    assert!(principal.has_any(&[Role::SecurityAdvisor]));

    // An unknown key id, or an HS256 token when no shared secret is configured, fail.
    header.kid = Some("k2".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert!(matches!(verifier.verify(&token), Err(TokenError::NoKey)));
    let hs = TokenMinter::from_config(&config())
        .unwrap()
        .mint("x", &[], Duration::from_secs(60));
    assert!(matches!(verifier.verify(&hs), Err(TokenError::NoKey)));
}

/// A 2048-bit RSA key made for this test only (openssl genpkey -algorithm RSA).
const TEST_RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCvdvGQyW3YHF1W
bS0JXhaxp1P7jsSq0vSIDwgC6u3M9VHWjhiJln66Q4PtaeIrxsZDsKSIDZQ+Oz7P
j4IEyP5AOId1LV35UoraI2p9bFESWwz2ZuPSrNSOxFemr2tP9wHN+iolDHjjON0G
zZ3TXgodkw6Y/V7+Wa7nhSsSTFR96ljhPLksHlVx+575cTGll2Rpc3Gg3vFEuXAW
Z9mylQ7zsQObC0UL85whOPJ8VK+ODn81xGImoIP+iB2AB/IEVxzIplqEFmxDnSIH
5xgUaboI4vUlCsTr5NIvBFFPSHoEQM8ekdPMNdND/cYbmm/4fe6FJmBv6jgNe/qC
uXsHVV6ZAgMBAAECggEAAYvRRh7YRnK9idDteCsplQgt78YKypyQRhCn1+q9DLTO
s07OPYwjcr28kF+B/DPEtHz+fipsd33rKEYR9bvVrbgxzWEIdnV5PsHYIuHM9xXx
T8yJTmZyew2U3iWmku5QyEFflLL+77WlEPXH4cBu42LT2ppE94XPyj98qS0eA3wE
51wBxS7f83OJv46jiX7FH+DuWa3ECgvFZAj8phw+DuCsdRvAnuGrpMRfAfNKK/v1
fvlJyIlbRgoJr3uOMan2BSLhwjiu49ltZHlySVLD8Q/AXxdFgMCd0oFx6EyNAGj1
ki8d6jel5f3UmiJko8/5YZsntpHMFPtt1brKvfKvGQKBgQDw//OVDn42bnW+/X/T
q82Yo3qie5iSwP5DAA+LdOcVS2vbljYMK46xbM7shYfJpa39Wb9sdTYr5k7pJOjJ
ZBbgAm7cZyUC1tLziunmtZZGDypII/i0xIEvz6xmhB9+6uncIeQDrLB5DYhTe3Nb
uk8TarUdKuAOlDL6KXk1aqg4hQKBgQC6YsQYukOiv3uXPgsJP3hmMaqwSct7MLLI
GmOHKR1jVCn3k0Hyxv9kamDQZ7Ugvm2X1QW7emKrs3VkcZ9psT+2ag5QL88B5v9E
6v8ScTMWEx/9+XikpTsKRRIjNHXCJ1IU1c7LUgcvX5VSuWwcWkgJnPmnk0aanEzZ
tkkmebB0BQKBgAnUVqoAslMkBDdq/XizrCoKmOjho6Jwrq4q5XdpqDctIVQOd1vd
tu8zoejxtU0bLdKEg5M34KK/vP4zXC9CntA6KS1iI5dPDcGTK+EWDPAElFPm67Dr
xt0dWknAH8y8ZhdtZnBj7bqyO5o0Ectu+OSw2Hw9EHBnyQB9Co2MMRpFAoGAP0dM
4EBMujJcWWq9AHTGAZwXISbMqJRN/lXHOJoi2hg271DVcQFSr9rV56tt+SHtv0CZ
Y58XZMfWsTVKM+3zfZDgLyUsGK8+Nz25P5+jAnmXwPgzl2JpewEcOUuUN0h2O5Cj
VrAQtGq1HZLKO44DKxBaSiRcMh2ikb+rch6aY6kCgYA6qysk2TdVIbQM7pbwH8OC
RDy3MoS5jg981y6lXwumQnw5Vn1pC9JmOGHISyp7g2GrwDDvyjC0isttLxJWC+y9
LBC3rtFzOgBSSCyL4roRsVY2IdroAPvQZ6A3+a6lNiwIzHwYlDIgzi/1q1Hu2Ibi
9BxPJ+OI0pDmAy8SJhqgDg==
-----END PRIVATE KEY-----";

#[test]
fn rs256_tokens_verify_against_the_jwks_file() {
    let verifier = jwks_verifier(
        "rs256",
        r#"{"keys":[{"kty":"RSA","kid":"r1","use":"sig","alg":"RS256","e":"AQAB",
            "n":"r3bxkMlt2BxdVm0tCV4WsadT-47EqtL0iA8IAurtzPVR1o4YiZZ-ukOD7WniK8bGQ7CkiA2UPjs-z4-CBMj-QDiHdS1d-VKK2iNqfWxRElsM9mbj0qzUjsRXpq9rT_cBzfoqJQx44zjdBs2d014KHZMOmP1e_lmu54UrEkxUfepY4Ty5LB5Vcfue-XExpZdkaXNxoN7xRLlwFmfZspUO87EDmwtFC_OcITjyfFSvjg5_NcRiJqCD_ogdgAfyBFccyKZahBZsQ50iB-cYFGm6COL1JQrE6-TSLwRRT0h6BEDPHpHTzDXTQ_3GG5pv-H3uhSZgb-o4DXv6grl7B1VemQ"}]}"#,
    );
    let key = EncodingKey::from_rsa_pem(TEST_RSA_KEY.as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("r1".into());
    let token = jsonwebtoken::encode(&header, &claims("dana", "incident_officer"), &key).unwrap();
    let principal = verifier.verify(&token).unwrap();
    assert_eq!(principal.subject, "dana");
    assert!(principal.has_any(&[Role::IncidentOfficer]));

    // The same key cannot be used to claim another algorithm, and a token whose
    // signature does not match its claims fails.
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("r1".into());
    let token = jsonwebtoken::encode(&header, &claims("dana", "admin"), &key).unwrap();
    assert!(verifier.verify(&token).is_err());
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("r1".into());
    let token = jsonwebtoken::encode(&header, &claims("dana", "reporter"), &key).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let (head, _) = signed.split_once('.').unwrap();
    let forged_claims =
        data_encoding::BASE64URL_NOPAD.encode(claims("dana", "admin").to_string().as_bytes());
    assert!(
        verifier
            .verify(&format!("{head}.{forged_claims}.{signature}"))
            .is_err()
    );
}

/// A second P-256 key, for rotation (openssl ecparam -name prime256v1).
const TEST_EC_KEY_2: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKZ3VkCH7GoYIygEN
Ug5XbeTgc98NBGMxvf1fXX2tEzOhRANCAASjUvgTe5+bUxq5Xg7CfUOjIZZ6q6mV
V1lWkIAFfru+3734h0t6tZTLXr3lma5x4X5nz9RMFpygURZp8Glq+wnR
-----END PRIVATE KEY-----";

const JWK_1: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256",
    "x":"DKzmrUUjj365s9QkHz1D-2Zym1PcBL9PnE5WjcmtgLo",
    "y":"2ebDoFaI77WiIU53IdUgMjZEcJh9luUYD7Vhop5ylM8"}"#;
const JWK_2: &str = r#"{"kty":"EC","crv":"P-256","kid":"k2","use":"sig","alg":"ES256",
    "x":"o1L4E3ufm1MauV4Own1DoyGWequplVdZVpCABX67vt8",
    "y":"vfiHS3q1lMteveWZrnHhfmfP1EwWnKBRFmnwaWr7CdE"}"#;

fn es256(key: &str, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// During a rotation a token may come without a `kid`: it is tried against every key of
/// its algorithm, and accepted if any signed it.
#[test]
fn a_token_without_a_key_id_is_tried_against_every_key() {
    let verifier = jwks_verifier("rotation", &format!(r#"{{"keys":[{JWK_1},{JWK_2}]}}"#));
    let claims = claims("erin", "helpdesk");
    for key in [TEST_EC_KEY, TEST_EC_KEY_2] {
        let principal = verifier.verify(&es256(key, None, &claims)).unwrap();
        assert_eq!(principal.subject, "erin");
    }
    // A key id still pins the key: k1's id on k2's signature is refused.
    assert!(
        verifier
            .verify(&es256(TEST_EC_KEY_2, Some("k1"), &claims))
            .is_err()
    );
}

/// The JWKS file is read again when it changes: a new key is accepted without a
/// restart, and a removed one is refused.
#[test]
fn the_jwks_file_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, format!(r#"{{"keys":[{JWK_1}]}}"#)).unwrap();
    let verifier = Verifier::from_config(&AuthConfig {
        jwks_file: Some(file.clone()),
        jwks_reload_secs: 0,
        ..AuthConfig::default()
    })
    .unwrap();
    let claims = claims("frank", "helpdesk");
    let new_key = es256(TEST_EC_KEY_2, Some("k2"), &claims);
    let old_key = es256(TEST_EC_KEY, Some("k1"), &claims);
    assert!(verifier.verify(&new_key).is_err(), "not yet published");
    std::fs::write(&file, format!(r#"{{"keys":[{JWK_2}]}}"#)).unwrap();
    assert!(verifier.verify(&new_key).is_ok(), "published: accepted");
    assert!(verifier.verify(&old_key).is_err(), "retired: refused");
    // A broken file keeps the keys in use.
    std::fs::write(&file, "{not json").unwrap();
    assert!(verifier.verify(&new_key).is_ok());
}

/// `nbf` (not before) is checked: a token that is not valid yet is refused.
#[test]
fn a_token_not_valid_yet_is_refused() {
    let config = config();
    let minter = TokenMinter::from_config(&config).unwrap();
    let now = jsonwebtoken::get_current_timestamp();
    let token = |nbf: u64| {
        minter.mint_claims(serde_json::json!({
            "sub": "gail", "iss": "custos", "aud": "custos", "exp": now + 7200, "nbf": nbf,
            "roles": ["helpdesk"],
        }))
    };
    let verifier = Verifier::from_config(&config).unwrap();
    assert!(
        verifier.verify(&token(now + 3600)).is_err(),
        "not before an hour from now"
    );
    assert!(verifier.verify(&token(now - 10)).is_ok());
}
