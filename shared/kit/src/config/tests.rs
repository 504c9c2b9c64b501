use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Own {
    answer: u32,
}

impl Validate for Own {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.answer > 42 {
            return Err(ConfigError::invalid("own.answer", "must be at most 42"));
        }
        Ok(())
    }
}

#[test]
// figment's Jail closure returns figment's own (large) error type.
#[allow(clippy::result_large_err)]
fn layers_apply_in_order_and_errors_name_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "custos.toml",
            "[server]\nrequest_timeout_secs = 7\n[database]\nurl = \"sqlite://file.db\"\n\
             [auth]\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\n[own]\nanswer = 7\n",
        )?;
        let file = Some(std::path::Path::new("custos.toml"));
        jail.set_env("CUSTOS_SERVER__REQUEST_TIMEOUT_SECS", "9");
        jail.set_env("CUSTOS_OWN__ANSWER", "41");
        jail.set_env("CUSTOS_TOKEN", "not configuration");
        let flags = [(
            "database.url",
            serde_json::json!("postgres://db/custos?sslmode=verify-full"),
        )];
        let config = ServiceConfig::<Own>::load("own", file, &flags).unwrap();
        assert_eq!(
            config.server.request_timeout_secs, 9,
            "environment beats the file"
        );
        assert_eq!(config.service.answer, 41, "the service's own section");
        assert_eq!(
            config.database.url.expose_secret(),
            "postgres://db/custos?sslmode=verify-full",
            "flags beat everything"
        );
        assert!(
            !format!("{config:?}").contains("postgres://db"),
            "secrets are not printed"
        );

        jail.set_env("CUSTOS_SERVER__REQUEST_TIMEOUT_SECS", "soon");
        let err = ServiceConfig::<Own>::load("own", file, &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.to_lowercase().contains("server.request_timeout_secs"),
            "{err}"
        );
        jail.set_env("CUSTOS_SERVER__REQUEST_TIMEOUT_SECS", "0");
        let err = ServiceConfig::<Own>::load("own", file, &flags)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "configuration key `server.request_timeout_secs`: must be positive"
        );
        jail.set_env("CUSTOS_SERVER__REQUEST_TIMEOUT_SECS", "9");
        jail.set_env("CUSTOS_OWN__ANSWER", "43");
        let err = ServiceConfig::<Own>::load("own", file, &flags)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "configuration key `own.answer`: must be at most 42");
        jail.set_env("CUSTOS_OWN__ANSWER", "1");
        jail.set_env("CUSTOS_OTHER__ANSWER", "1");
        let err = ServiceConfig::<Own>::load("own", file, &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`other`"),
            "unknown sections are refused: {err}"
        );
        Ok(())
    });
}

#[test]
fn a_remote_postgres_needs_an_sslmode() {
    for (url, ok) in [
        ("postgres://u:p@db.example.org:5432/custos", false),
        (
            "postgres://u@db.example.org/custos?sslmode=verify-full",
            true,
        ),
        ("postgres://postgres@127.0.0.1:5432/custos", true),
        ("postgresql://localhost/custos", true),
        ("postgres://u@[::1]:5432/custos", true),
        ("postgres://u@10.0.0.5/custos?application_name=x", false),
        ("sqlite://data/intake.db", true),
    ] {
        assert_eq!(postgres_without_tls(url).is_none(), ok, "{url}");
    }
}

#[test]
fn a_shared_secret_beside_a_jwks_file_is_refused() {
    let config = AuthConfig {
        hs256_secret: Some(SecretString::from("0123456789abcdef0123456789abcdef")),
        jwks_file: Some(PathBuf::from("Cargo.toml")),
        ..AuthConfig::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("auth.hs256_secret") && err.contains("auth.jwks_file"),
        "{err}"
    );
}

#[test]
fn read_connections_default_to_eight_and_must_be_positive() {
    let database = DatabaseConfig {
        url: SecretString::from("sqlite://file.db"),
        ..DatabaseConfig::default()
    };
    assert_eq!(database.max_read_connections, 8);
    database.validate().unwrap();
    let none = DatabaseConfig {
        max_read_connections: 0,
        ..database
    };
    assert_eq!(
        none.validate().unwrap_err().to_string(),
        "configuration key `database.max_read_connections`: must be positive"
    );
}
