//! The service's Ed25519 key: it signs checkpoints of the custody log and custody
//! reports, and anyone with the public key verifies them offline.

use std::path::Path;

use ed25519_dalek::{
    Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey,
    pkcs8::{
        DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
        spki::der::pem::LineEnding,
    },
};
use sha2::{Digest, Sha256};

/// The algorithm's name in signed documents.
pub const ALGORITHM: &str = "Ed25519";

/// A key that signs.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The id of a public key: the first 16 hexadecimal digits of SHA-256 of its 32 bytes.
pub fn key_id(public: &VerifyingKey) -> String {
    crate::chain::hex(&Sha256::digest(public.as_bytes())[..8])
}

impl Signer {
    pub fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// A new random key.
    pub fn generate() -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Self::new(SigningKey::from_bytes(&seed)))
    }

    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::new)
            .map_err(|e| format!("is not an Ed25519 private key in PKCS#8 PEM: {e}"))
    }

    /// Reads the key file; with `create`, writes a new key there first if there is none
    /// (standalone mode), readable by its owner only.
    pub fn load(path: &Path, create: bool) -> Result<Self, String> {
        if create && !path.exists() {
            let signer = Self::generate()?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            write_private(path, &signer.private_pem()?)?;
            tracing::info!(file = %path.display(), key_id = %signer.key_id, "created the custody signing key");
            return Ok(signer);
        }
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_pem(&pem)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as SPKI PEM, for `custos custody verify`.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 public key encodes")
    }

    fn private_pem(&self) -> Result<String, String> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|p| p.to_string())
            .map_err(|e| format!("cannot encode the key: {e}"))
    }

    pub fn sign(&self, document: &[u8]) -> Vec<u8> {
        self.key.sign(document).to_bytes().to_vec()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, pem: &str) -> Result<(), String> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, pem: &str) -> Result<(), String> {
    std::fs::write(path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a public key: SPKI PEM, or the raw 32 bytes.
pub fn public_key(bytes: &[u8]) -> Result<VerifyingKey, String> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return VerifyingKey::from_bytes(&raw)
            .map_err(|e| format!("not an Ed25519 public key: {e}"));
    }
    let pem = std::str::from_utf8(bytes).map_err(|_| "not a PEM public key".to_owned())?;
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| format!("not an Ed25519 public key in PEM: {e}"))
}

/// A public key as SPKI PEM.
pub fn public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key encodes")
}

/// Checks a signature over `document`.
pub fn verify(public: &VerifyingKey, document: &[u8], signature: &[u8]) -> Result<(), String> {
    let signature =
        Signature::from_slice(signature).map_err(|_| "the signature is not 64 bytes".to_owned())?;
    public
        .verify(document, &signature)
        .map_err(|_| "the signature does not match the document and key".to_owned())
}

/// The note a checkpoint signs.
pub fn checkpoint_note(key_id: &str, tree_size: i64, root: &[u8; 32], signed_at: &str) -> String {
    format!(
        "custos custody log v1\nkey {key_id}\nsize {tree_size}\nroot {}\ntime {signed_at}\n",
        crate::chain::hex(root)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_and_signs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let created = Signer::load(&path, true).unwrap();
        let loaded = Signer::load(&path, false).unwrap();
        assert_eq!(created.key_id(), loaded.key_id());
        let sig = loaded.sign(b"document");
        let public = public_key(created.public_pem().as_bytes()).unwrap();
        verify(&public, b"document", &sig).unwrap();
        assert!(verify(&public, b"documenT", &sig).is_err());
        let other = Signer::generate().unwrap();
        assert!(verify(&other.public_key(), b"document", &sig).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Signer::load(&dir.path().join("missing.pem"), false).is_err());
    }
}
