//! Evidence-custody's own settings, the `[custody]` section (the kit's sections come with
//! every service).

use std::path::PathBuf;

use custos_kit::config::{ConfigError, Validate, check_service_url};
use secrecy::SecretString;
use serde::Deserialize;

/// `[custody.storage]`: where content is kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// A local directory (standalone mode: `<data dir>/evidence`). Exactly one of `dir`
    /// and `s3` is set.
    pub dir: Option<PathBuf>,
    /// An S3-compatible bucket (MinIO, Ceph, a cloud bucket).
    pub s3: Option<S3Settings>,
}

/// `[custody.storage.s3]`: an S3-compatible bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// The bucket. Give it Object Lock with a default retention in compliance mode
    /// where the store supports it: content is then write-once in the store as well.
    pub bucket: String,
    /// The region (any value for stores that ignore it).
    pub region: String,
    /// The endpoint for a store other than AWS, e.g. `https://minio.example.org:9000`.
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO and Ceph expect.
    pub path_style: bool,
    /// Whether an `http://` endpoint is accepted (a store on the same host only).
    pub allow_http: bool,
    /// Credentials (from a Secret: `CUSTOS_CUSTODY__STORAGE__S3__ACCESS_KEY_ID` and
    /// `…__SECRET_ACCESS_KEY`); unset: the environment's (an IAM role, say).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// A prefix for every key, e.g. `custos/`.
    pub prefix: String,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: None,
            path_style: true,
            allow_http: false,
            access_key_id: None,
            secret_access_key: None,
            prefix: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustodySettings {
    /// Address of the classification service, whose feed gives each incident's access
    /// list, officer and flags, e.g. `http://custos-classification:50051`. Required.
    pub classification_url: Option<String>,
    /// Where content is kept.
    pub storage: StorageSettings,
    /// The Ed25519 private key (PKCS#8 PEM) that signs checkpoints and custody reports,
    /// from a Secret in distributed mode. Required; standalone mode creates one in the
    /// data directory.
    pub signing_key_file: Option<PathBuf>,
    /// Seconds between checkpoints of the custody log (one is signed only when the log
    /// grew).
    pub checkpoint_interval_secs: u64,
    /// Hours an unfinished unary upload is kept before it is removed.
    pub upload_expiry_hours: u32,
    /// Seconds a streamed upload may go without a message before it is abandoned
    /// (uploads are not limited by `server.request_timeout_secs`: a silent client must
    /// not hold a call slot for ever).
    pub upload_idle_secs: u64,
}

impl Default for CustodySettings {
    fn default() -> Self {
        Self {
            classification_url: None,
            storage: StorageSettings::default(),
            signing_key_file: None,
            checkpoint_interval_secs: 60,
            upload_expiry_hours: 72,
            upload_idle_secs: 60,
        }
    }
}

impl Validate for CustodySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match &self.classification_url {
            None => {
                return Err(ConfigError::invalid(
                    "custody.classification_url",
                    "is required, e.g. http://custos-classification:50051",
                ));
            }
            Some(url) => check_service_url("custody.classification_url", url)?,
        }
        match (&self.storage.dir, &self.storage.s3) {
            (None, None) => {
                return Err(ConfigError::invalid(
                    "custody.storage",
                    "needs `dir` (a local directory) or `s3` (a bucket)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "custody.storage",
                    "has both `dir` and `s3`: choose one",
                ));
            }
            (None, Some(s3)) => {
                if s3.bucket.is_empty() {
                    return Err(ConfigError::invalid(
                        "custody.storage.s3.bucket",
                        "is required",
                    ));
                }
                if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
                    return Err(ConfigError::invalid(
                        "custody.storage.s3.secret_access_key",
                        "access_key_id and secret_access_key go together",
                    ));
                }
                if let Some(endpoint) = &s3.endpoint {
                    let http = endpoint.starts_with("http://");
                    if !(http || endpoint.starts_with("https://")) {
                        return Err(ConfigError::invalid(
                            "custody.storage.s3.endpoint",
                            "must be an http:// or https:// address",
                        ));
                    }
                    if http && !s3.allow_http {
                        return Err(ConfigError::invalid(
                            "custody.storage.s3.endpoint",
                            "is plain http: use https, or set allow_http for a store on the same host",
                        ));
                    }
                }
            }
            (Some(_), None) => {}
        }
        if self.signing_key_file.is_none() {
            return Err(ConfigError::invalid(
                "custody.signing_key_file",
                "is required (an Ed25519 private key, PKCS#8 PEM; `custos custody keygen` makes one)",
            ));
        }
        if !(1..=86_400).contains(&self.checkpoint_interval_secs) {
            return Err(ConfigError::invalid(
                "custody.checkpoint_interval_secs",
                "must be 1 to 86400",
            ));
        }
        if !(1..=3_600).contains(&self.upload_idle_secs) {
            return Err(ConfigError::invalid(
                "custody.upload_idle_secs",
                "must be 1 to 3600",
            ));
        }
        if !(1..=8_760).contains(&self.upload_expiry_hours) {
            return Err(ConfigError::invalid(
                "custody.upload_expiry_hours",
                "must be 1 to 8760",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[custody]` section of the shipped Kubernetes ConfigMap, as the service reads
    /// it (the bucket's credentials come from a Secret, through the environment).
    #[test]
    fn the_shipped_kubernetes_config_is_valid() {
        let manifest = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/kubernetes/evidence-custody.yaml"
        ))
        .unwrap();
        let table = custos_testing::config_map_toml(&manifest, "custody.toml");
        let mut settings: CustodySettings = table["custody"]
            .clone()
            .try_into()
            .expect("the [custody] section");
        settings.validate().unwrap();
        let s3 = settings.storage.s3.as_mut().unwrap();
        assert_eq!(s3.bucket, "custos-evidence");
        s3.access_key_id = Some("from-the-secret".into());
        assert!(
            settings.validate().is_err(),
            "an access key without its secret"
        );
        settings.storage.dir = Some("/data".into());
        assert!(settings.validate().is_err(), "a directory and a bucket");
    }
}
