//! Standalone mode: every service in one process, each on its own loopback port, with
//! SQLite files in a data directory (zero set-up; data survives restarts). The data
//! directory is locked while the suite runs, so a second `custos serve` on it refuses to
//! start. A development signing secret and intake's receipt secret are created in it on
//! first start; `custos token` mints tokens with the signing secret.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::Args;
use custos_kit::{
    auth::{Role, TokenMinter},
    config::{AuthConfig, DatabaseConfig, LogFormat, ServerConfig, ServiceConfig, TelemetryConfig},
    service::{App, Service},
    shutdown, telemetry,
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const ISSUER: &str = "custos-standalone";
const SECRET_FILE: &str = "dev-signing-secret";
const RECEIPT_SECRET_FILE: &str = "receipt-secret";
const LOCK_FILE: &str = "custos.lock";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the SQLite files and the development secret live.
    #[arg(long, env = "CUSTOS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CUSTOS_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the first service, intake (the others take the following ports).
    #[arg(long, env = "CUSTOS_PORT", default_value_t = 50051)]
    port: u16,
    /// Your corporate risk impact matrix, instead of the policy's (the format is the
    /// classification service's `config/risk_matrix.toml`).
    #[arg(long, env = "CUSTOS_RISK_MATRIX_FILE")]
    risk_matrix_file: Option<PathBuf>,
    /// Your report taxonomy, instead of the one shipped (the format is
    /// `shared/taxonomy/taxonomy.toml`); intake and classification both use it.
    #[arg(long, env = "CUSTOS_TAXONOMY_FILE")]
    taxonomy_file: Option<PathBuf>,
    /// Refuse anonymous reports that come without a token.
    #[arg(long)]
    no_anonymous_reporting: bool,
    /// Contacts, lists and escalation policies to start an empty directory with (the
    /// format is the escalation service's `config/directory.example.toml`).
    #[arg(long, env = "CUSTOS_DIRECTORY_FILE")]
    directory_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "plain")]
    log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Role(s) to grant (repeat for several).
    #[arg(long = "role", required = true, value_parser = parse_role)]
    roles: Vec<Role>,
    /// Subject (user id) of the token.
    #[arg(long, default_value = "dev-user")]
    subject: String,
    /// Hours the token is valid.
    #[arg(long, default_value_t = 12)]
    hours: u64,
    #[arg(long, env = "CUSTOS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e| {
        let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("{e}; roles are: {}", all.join(", "))
    })
}

fn auth_config(secret: String) -> AuthConfig {
    AuthConfig {
        issuer: ISSUER.into(),
        audience: "custos".into(),
        hs256_secret: Some(SecretString::from(secret)),
        ..AuthConfig::default()
    }
}

/// Reads the development signing secret, creating it on first use.
fn secret(data_dir: &Path, create: bool) -> Result<String, String> {
    data_dir_secret(data_dir, SECRET_FILE, create)
}

/// Reads a secret kept in the data directory, creating it (readable by the owner only)
/// on first use.
fn data_dir_secret(data_dir: &Path, name: &str, create: bool) -> Result<String, String> {
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(_) if create => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
            let secret = data_encoding::BASE64URL_NOPAD.encode(&bytes);
            write_private(&path, &secret)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(secret)
        }
        Err(_) => Err(format!(
            "no development secret in {}: start the suite first with `custos serve --data-dir {}`",
            data_dir.display(),
            data_dir.display()
        )),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

pub fn token(args: TokenArgs) -> ExitCode {
    match secret(&args.data_dir, false) {
        Ok(secret) => {
            let minter = TokenMinter::from_config(&auth_config(secret)).expect("secret is set");
            println!(
                "{}",
                minter.mint(
                    &args.subject,
                    &args.roles,
                    Duration::from_secs(args.hours * 3600)
                )
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("custos token: {e}");
            ExitCode::from(2)
        }
    }
}

pub async fn serve(args: ServeArgs) -> ExitCode {
    let guard = match telemetry::init(
        "custos",
        &TelemetryConfig {
            log_format: args.log_format,
            ..TelemetryConfig::default()
        },
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("custos serve: {e}");
            return ExitCode::from(2);
        }
    };
    let result = run(&args).await;
    guard.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custos serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Holds the data directory's lock for as long as the suite runs: two processes on the
/// same SQLite files would fight over their single writer.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another custos is already running on the data directory {}: stop it first, \
             or give this one its own with --data-dir",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// The configuration of one service of the suite: its own port and SQLite file.
fn service_config<S: Service>(
    args: &ServeArgs,
    data_dir: &Path,
    port: u16,
    auth: &AuthConfig,
    settings: S::Settings,
) -> ServiceConfig<S::Settings> {
    ServiceConfig {
        server: ServerConfig {
            listen: SocketAddr::new(args.host, port),
            cors_allowed_origins: vec!["*".into()],
            // No load balancer to wait for.
            shutdown_grace_secs: 0,
            drain_timeout_secs: 10,
            ..ServerConfig::default()
        },
        database: DatabaseConfig {
            url: SecretString::from(format!(
                "sqlite://{}",
                data_dir.join(format!("{}.db", S::NAME)).display()
            )),
            ..DatabaseConfig::default()
        },
        auth: auth.clone(),
        telemetry: TelemetryConfig::default(),
        feed: Default::default(),
        service: settings,
    }
}

/// The port `n` after the first, or a message when there is none. Port 0 (any free
/// port) stays 0 for every service.
fn next_port(first: u16, n: u16) -> Result<u16, String> {
    if first == 0 {
        return Ok(0);
    }
    first
        .checked_add(n)
        .ok_or_else(|| format!("--port {first} leaves no port for the next service"))
}

async fn run(args: &ServeArgs) -> Result<(), String> {
    let secret = secret(&args.data_dir, true)?;
    let data_dir = std::fs::canonicalize(&args.data_dir).map_err(|e| e.to_string())?;
    let _lock = lock_data_dir(&data_dir)?;
    let auth = auth_config(secret);
    // Every service of the suite, each on the next port. All ports are bound first, so
    // that each service can be given the others' addresses (with --port 0 they are known
    // only once bound): classification follows intake's feed and intake classification's,
    // in this process, over gRPC as in distributed mode.
    let bind = |n: u16| -> Result<(std::net::TcpListener, String), String> {
        let addr = SocketAddr::new(args.host, next_port(args.port, n)?);
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let mut local = listener.local_addr().map_err(|e| e.to_string())?;
        // A wildcard listen address is no address to connect to: loopback reaches it.
        if local.ip().is_unspecified() {
            local.set_ip(match local.ip() {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        Ok((listener, format!("http://{local}")))
    };
    let (intake_listener, intake_url) = bind(0)?;
    let (classification_listener, classification_url) = bind(1)?;
    let (escalation_listener, _) = bind(2)?;
    let (custody_listener, custody_url) = bind(3)?;
    let intake = custos_intake::IntakeSettings {
        anonymous_reporting: !args.no_anonymous_reporting,
        receipt_secret: Some(SecretString::from(data_dir_secret(
            &data_dir,
            RECEIPT_SECRET_FILE,
            true,
        )?)),
        taxonomy_file: args.taxonomy_file.clone(),
        classification_url: Some(classification_url.clone()),
        ..Default::default()
    };
    // No SMTP server in standalone mode: messages are files in the data directory.
    let mail_dir = data_dir.join("mail");
    let escalation = custos_escalation::EscalationSettings {
        intake_url: Some(intake_url.clone()),
        classification_url: Some(classification_url.clone()),
        custody_url: Some(custody_url),
        directory_file: args.directory_file.clone(),
        mail_dir: Some(mail_dir.clone()),
        mail_from: Some("custos <custos@localhost>".into()),
        ..Default::default()
    };
    // Evidence in the data directory, signed with a key made there on first start.
    let evidence_dir = data_dir.join("evidence");
    let signing_key = data_dir.join("custody-signing-key.pem");
    custos_evidence_custody::signing::Signer::load(&signing_key, true)
        .map_err(|e| format!("the custody signing key {}: {e}", signing_key.display()))?;
    let custody = custos_evidence_custody::CustodySettings {
        classification_url: Some(classification_url.clone()),
        storage: custos_evidence_custody::config::StorageSettings {
            dir: Some(evidence_dir.clone()),
            s3: None,
        },
        signing_key_file: Some(signing_key),
        ..Default::default()
    };
    let classification = custos_classification::ClassificationSettings {
        intake_url: Some(intake_url),
        risk_matrix_file: args.risk_matrix_file.clone(),
        taxonomy_file: args.taxonomy_file.clone(),
        ..Default::default()
    };
    let built = |name: &str, e: custos_kit::service::AppError| {
        format!("{name}: {}", custos_kit::error::DisplayChain(&e))
    };
    let intake = App::build_on::<custos_intake::Intake>(
        service_config::<custos_intake::Intake>(args, &data_dir, args.port, &auth, intake),
        intake_listener,
    )
    .await
    .map_err(|e| built("intake", e))?;
    let classification = App::build_on::<custos_classification::Classification>(
        service_config::<custos_classification::Classification>(
            args,
            &data_dir,
            next_port(args.port, 1)?,
            &auth,
            classification,
        ),
        classification_listener,
    )
    .await
    .map_err(|e| built("classification", e))?;
    let escalation = App::build_on::<custos_escalation::Escalation>(
        service_config::<custos_escalation::Escalation>(
            args,
            &data_dir,
            next_port(args.port, 2)?,
            &auth,
            escalation,
        ),
        escalation_listener,
    )
    .await
    .map_err(|e| built("escalation", e))?;
    let custody = App::build_on::<custos_evidence_custody::Custody>(
        service_config::<custos_evidence_custody::Custody>(
            args,
            &data_dir,
            next_port(args.port, 3)?,
            &auth,
            custody,
        ),
        custody_listener,
    )
    .await
    .map_err(|e| built("custody", e))?;
    let apps: Vec<App> = vec![intake, classification, escalation, custody];
    let exe = std::env::args().next().unwrap_or_else(|| "custos".into());
    let width = apps.iter().map(|a| a.name().len()).max().unwrap_or(0) + 2;
    let addresses: Vec<String> = apps
        .iter()
        .map(|a| format!("  {:<width$}http://{}", a.name(), a.local_addr()))
        .collect();
    println!(
        "custos is running (standalone, SQLite in {dir})\n\
         \n{addresses}\n\
         \nMessages (no SMTP server in standalone mode): one .eml file each in {mail}\n\
         \nEvidence content: {evidence}\n\
         \nTokens for development (any role: {roles}):\n  {exe} token --data-dir {dir} --role helpdesk --subject alice\n\
         \nThen, for example:\n  export CUSTOS_TOKEN=$({exe} token --data-dir {dir} --role helpdesk)\n  {exe} report list --server http://{intake}\n  {exe} matrix show --server http://{classification}\n\
         \nStop with Ctrl-C.",
        dir = data_dir.display(),
        addresses = addresses.join("\n"),
        intake = apps[0].local_addr(),
        classification = apps[1].local_addr(),
        mail = mail_dir.display(),
        evidence = evidence_dir.display(),
        roles = Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    // One signal stops them all.
    let stop = CancellationToken::new();
    let mut running = tokio::task::JoinSet::new();
    for app in apps {
        let stop = stop.clone();
        running.spawn(async move {
            let name = app.name();
            app.run_until(stop.cancelled_owned())
                .await
                .map_err(|e| format!("{name}: {}", custos_kit::error::DisplayChain(&e)))
        });
    }
    tokio::select! {
        _ = shutdown::signal() => {}
        // A service that stops on its own stops the suite.
        Some(_) = async { running.join_next().await } => {}
    }
    stop.cancel();
    let mut result = Ok(());
    while let Some(done) = running.join_next().await {
        if let Ok(Err(e)) = done {
            result = Err(e);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            secret(dir.path(), false).is_err(),
            "token before serve explains what to do"
        );
        let first = secret(dir.path(), true).unwrap();
        assert_eq!(secret(dir.path(), true).unwrap(), first);
        assert!(first.len() >= 32);
    }

    #[test]
    fn each_service_takes_the_next_port_or_any_port() {
        assert_eq!(next_port(50051, 1), Ok(50052));
        assert_eq!(
            next_port(0, 1),
            Ok(0),
            "port 0 means any free port for every service"
        );
        assert!(next_port(u16::MAX, 1).unwrap_err().contains("no port"));
    }

    #[test]
    fn a_second_suite_cannot_take_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(err.contains("already running"), "{err}");
        drop(held);
        lock_data_dir(dir.path()).expect("free again once the first has stopped");
    }
}
