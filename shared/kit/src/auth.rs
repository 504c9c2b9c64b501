//! Bearer-token authentication and role checks. The `AuthLayer` verifies a JWT on every
//! call (signature, issuer, audience, expiry and not-before; `alg: none` and unexpected
//! algorithms are refused) and puts the caller's `Principal` in the request's extensions. Handlers
//! declare the roles they need with `require_any`, next to their code.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    path::PathBuf,
    str::FromStr,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::config::{AuthConfig, ConfigError};

/// The roles of the architecture; a person may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reporter,
    Helpdesk,
    ItSupport,
    SecurityAdvisor,
    IncidentOfficer,
    Responder,
    SeniorManagement,
    Dpo,
    CaldicottGuardian,
    InternalAudit,
    BusinessContinuity,
    PolicyOwner,
    Admin,
    Service,
}

impl Role {
    pub const ALL: [Role; 14] = [
        Role::Reporter,
        Role::Helpdesk,
        Role::ItSupport,
        Role::SecurityAdvisor,
        Role::IncidentOfficer,
        Role::Responder,
        Role::SeniorManagement,
        Role::Dpo,
        Role::CaldicottGuardian,
        Role::InternalAudit,
        Role::BusinessContinuity,
        Role::PolicyOwner,
        Role::Admin,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reporter => "reporter",
            Role::Helpdesk => "helpdesk",
            Role::ItSupport => "it_support",
            Role::SecurityAdvisor => "security_advisor",
            Role::IncidentOfficer => "incident_officer",
            Role::Responder => "responder",
            Role::SeniorManagement => "senior_management",
            Role::Dpo => "dpo",
            Role::CaldicottGuardian => "caldicott_guardian",
            Role::InternalAudit => "internal_audit",
            Role::BusinessContinuity => "business_continuity",
            Role::PolicyOwner => "policy_owner",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// Who is calling: the token's subject and the roles it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }
}

/// The ErrorInfo domain of the service a request is for; the `AuthLayer` puts it in
/// every request's extensions, so that role checks name the right service.
#[derive(Debug, Clone, Copy)]
pub struct RequestDomain(pub &'static str);

fn request_domain<T>(request: &tonic::Request<T>) -> &'static str {
    request
        .extensions()
        .get::<RequestDomain>()
        .map_or("custos", |d| d.0)
}

/// The authenticated caller of a request, if it presented a token.
pub fn principal<T>(request: &tonic::Request<T>) -> Option<&Principal> {
    request.extensions().get::<Principal>()
}

fn unauthenticated(domain: &str, reason: &str, message: &str) -> Status {
    crate::error::status(tonic::Code::Unauthenticated, message, reason, domain)
}

/// The caller, who must hold one of `roles`: UNAUTHENTICATED without a token,
/// PERMISSION_DENIED with the wrong roles.
pub fn require_any<'r, T>(
    request: &'r tonic::Request<T>,
    roles: &[Role],
) -> Result<&'r Principal, Status> {
    let principal = require_authenticated(request)?;
    if principal.has_any(roles) {
        Ok(principal)
    } else {
        let needed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(crate::error::status(
            tonic::Code::PermissionDenied,
            format!("this call needs one of the roles: {}", needed.join(", ")),
            "ROLE_REQUIRED",
            request_domain(request),
        ))
    }
}

/// Any authenticated caller.
pub fn require_authenticated<T>(request: &tonic::Request<T>) -> Result<&Principal, Status> {
    principal(request).ok_or_else(|| {
        unauthenticated(
            request_domain(request),
            "TOKEN_MISSING",
            "this call needs a bearer token",
        )
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

/// Verifies bearer tokens against the configured keys: an HS256 secret (development)
/// or the keys of a JWKS file (production), never both. The JWKS file is read again
/// when it changes, so keys can be rotated without a restart; a token without a `kid`
/// is tried against every key of its algorithm.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksFile>,
    issuer: String,
    audience: String,
    roles_claim: String,
    leeway: u64,
}

/// The keys of a JWKS file, re-read at most every `reload` when it changes.
struct JwksFile {
    path: PathBuf,
    reload: Duration,
    state: RwLock<JwksState>,
}

struct JwksState {
    keys: Arc<[JwksKey]>,
    text: String,
    checked: Instant,
}

struct JwksKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("jwks", &self.inner.jwks.as_ref().map(|j| &j.path))
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (logged at debug; the client sees a generic message).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed authorization header")]
    Header,
    #[error("token refused: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("no key for this token's algorithm or key id")]
    NoKey,
    #[error("token has an empty subject")]
    NoSubject,
}

/// Parses a JWKS document into verification keys.
fn parse_jwks(text: &str) -> Result<Vec<JwksKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    set.keys
        .iter()
        .map(|jwk| {
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => return Err("only RSA (RS256) and EC P-256 (ES256) keys are supported".into()),
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
            Ok(JwksKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            })
        })
        .collect()
}

impl JwksFile {
    /// The current keys, re-reading the file if it is due and has changed. A file that
    /// cannot be read or parsed keeps the keys in use (and says so in the log).
    fn keys(&self) -> Arc<[JwksKey]> {
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if state.checked.elapsed() < self.reload {
                return state.keys.clone();
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() < self.reload {
            return state.keys.clone();
        }
        state.checked = Instant::now();
        match std::fs::read_to_string(&self.path) {
            Ok(text) if text != state.text => match parse_jwks(&text) {
                Ok(keys) => {
                    tracing::info!(path = %self.path.display(), keys = keys.len(), "JWKS file changed: keys reloaded");
                    state.keys = keys.into();
                    state.text = text;
                }
                Err(error) => {
                    tracing::error!(path = %self.path.display(), %error, "JWKS file changed but cannot be used; keeping the previous keys");
                    state.text = text;
                }
            },
            Ok(_) => {}
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "JWKS file cannot be read; keeping the previous keys");
            }
        }
        state.keys.clone()
    }
}

impl Verifier {
    pub fn from_config(config: &AuthConfig) -> Result<Self, ConfigError> {
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes()));
        let jwks = match &config.jwks_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::invalid("auth.jwks_file", e.to_string()))?;
                let keys =
                    parse_jwks(&text).map_err(|e| ConfigError::invalid("auth.jwks_file", e))?;
                Some(JwksFile {
                    path: path.clone(),
                    reload: Duration::from_secs(config.jwks_reload_secs),
                    state: RwLock::new(JwksState {
                        keys: keys.into(),
                        text,
                        checked: Instant::now(),
                    }),
                })
            }
            None => None,
        };
        Ok(Self {
            inner: Arc::new(VerifierInner {
                hs256,
                jwks,
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                roles_claim: config.roles_claim.clone(),
                leeway: config.leeway_secs,
            }),
        })
    }

    /// Verifies a compact JWT and returns its principal.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let inner = &self.inner;
        // Refuses `alg: none` and anything unknown: the header must parse to a real algorithm.
        let header = jsonwebtoken::decode_header(token)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&inner.issuer]);
        validation.set_audience(&[&inner.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = inner.leeway;
        let data = match header.alg {
            Algorithm::HS256 => {
                let key = inner.hs256.as_ref().ok_or(TokenError::NoKey)?;
                jsonwebtoken::decode::<Claims>(token, key, &validation)?
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let keys = inner.jwks.as_ref().ok_or(TokenError::NoKey)?.keys();
                // With a `kid`, the key of that id; without, every key of the algorithm
                // in turn (during a rotation a token may be signed by either).
                let mut candidates = keys.iter().filter(|k| {
                    k.alg == header.alg && (header.kid.is_none() || k.kid == header.kid)
                });
                let mut result = Err(TokenError::NoKey);
                for candidate in candidates.by_ref() {
                    result = jsonwebtoken::decode::<Claims>(token, &candidate.key, &validation)
                        .map_err(TokenError::from);
                    match &result {
                        Err(TokenError::Invalid(e))
                            if matches!(
                                e.kind(),
                                jsonwebtoken::errors::ErrorKind::InvalidSignature
                            ) => {}
                        _ => break,
                    }
                }
                result?
            }
            _ => return Err(TokenError::NoKey),
        };
        if data.claims.sub.is_empty() {
            return Err(TokenError::NoSubject);
        }
        let roles = match data.claims.rest.get(&inner.roles_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str()?.parse().ok())
                .collect(),
            Some(serde_json::Value::String(s)) => s
                .split_whitespace()
                .filter_map(|r| r.parse().ok())
                .collect(),
            _ => BTreeSet::new(),
        };
        Ok(Principal {
            subject: data.claims.sub,
            roles,
        })
    }

    /// Verifies the value of an `authorization` header (`Bearer <jwt>`).
    pub fn verify_header(&self, value: &http::HeaderValue) -> Result<Principal, TokenError> {
        let value = value.to_str().map_err(|_| TokenError::Header)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(TokenError::Header)?;
        self.verify(token.trim())
    }
}

/// Mints HS256 tokens: development tokens for the standalone suite and tokens for tests.
#[derive(Clone)]
pub struct TokenMinter {
    key: EncodingKey,
    issuer: String,
    audience: String,
    roles_claim: String,
}

impl fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenMinter")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    /// `None` when the configuration has no HS256 secret.
    pub fn from_config(config: &AuthConfig) -> Option<Self> {
        let secret: &SecretString = config.hs256_secret.as_ref()?;
        Some(Self {
            key: EncodingKey::from_secret(secret.expose_secret().as_bytes()),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            roles_claim: config.roles_claim.clone(),
        })
    }

    /// A token for `subject` with `roles`, valid for `ttl`.
    pub fn mint(&self, subject: &str, roles: &[Role], ttl: Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        self.mint_claims(serde_json::json!({
            "sub": subject,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl.as_secs(),
            self.roles_claim.as_str(): roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        }))
    }

    /// A token with exactly these claims (tests use it for expired or foreign tokens).
    pub fn mint_claims(&self, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 encoding of a JSON object cannot fail")
    }
}

/// Paths that never need a token: health checks and reflection.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// Tower layer that authenticates every call. Calls on `anonymous_paths` may come
/// without a token (their handlers decide what an anonymous caller may do); all others
/// are refused with UNAUTHENTICATED before they reach a handler.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    verifier: Verifier,
    anonymous_paths: Arc<[&'static str]>,
    domain: &'static str,
}

impl AuthLayer {
    /// `domain` is the service's ErrorInfo domain (`intake.custos`).
    pub fn new(verifier: Verifier, anonymous_paths: &[&'static str], domain: &'static str) -> Self {
        Self {
            verifier,
            anonymous_paths: anonymous_paths.into(),
            domain,
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        futures_util::future::Ready<Result<S::Response, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        use futures_util::future::{Either, ready};
        let domain = self.layer.domain;
        request.extensions_mut().insert(RequestDomain(domain));
        let path = request.uri().path();
        if is_public(path) {
            return Either::Left(self.inner.call(request));
        }
        let anonymous_allowed = self.layer.anonymous_paths.contains(&path);
        match request.headers().get(http::header::AUTHORIZATION) {
            Some(value) => match self.layer.verifier.verify_header(value) {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                }
                Err(error) => {
                    tracing::debug!(%error, "bearer token refused");
                    let status = unauthenticated(domain, "TOKEN_INVALID", "invalid bearer token");
                    return Either::Right(ready(Ok(status.into_http())));
                }
            },
            None if anonymous_allowed => {}
            None => {
                let status =
                    unauthenticated(domain, "TOKEN_MISSING", "this call needs a bearer token");
                return Either::Right(ready(Ok(status.into_http())));
            }
        }
        Either::Left(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests;
