//! Standalone mode: every service in one process, each on its own loopback port, with
//! SQLite files in a data directory (zero set-up; data survives restarts). A development
//! signing secret is created in the data directory on first start; `custos token` mints
//! tokens with it.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::Args;
use custos_kit::{
    auth::{Role, TokenMinter},
    config::{AuthConfig, DatabaseConfig, LogFormat, ServerConfig, TelemetryConfig},
    shutdown, telemetry,
};
use secrecy::SecretString;

const ISSUER: &str = "custos-standalone";
const SECRET_FILE: &str = "dev-signing-secret";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the SQLite files and the development secret live.
    #[arg(long, env = "CUSTOS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CUSTOS_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the intake service (the next services take the following ports).
    #[arg(long, env = "CUSTOS_PORT", default_value_t = 50051)]
    port: u16,
    /// Refuse anonymous reports that come without a token.
    #[arg(long)]
    no_anonymous_reporting: bool,
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

/// Reads the development secret, creating it (readable by the owner only) on first use.
fn secret(data_dir: &Path, create: bool) -> Result<String, String> {
    let path = data_dir.join(SECRET_FILE);
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

async fn run(args: &ServeArgs) -> Result<(), String> {
    let secret = secret(&args.data_dir, true)?;
    let data_dir = std::fs::canonicalize(&args.data_dir).map_err(|e| e.to_string())?;
    let mut intake = custos_intake::Config {
        server: ServerConfig {
            listen: SocketAddr::new(args.host, args.port),
            cors_allowed_origins: vec!["*".into()],
            drain_timeout_secs: 10,
            ..ServerConfig::default()
        },
        database: DatabaseConfig {
            url: SecretString::from(format!("sqlite://{}", data_dir.join("intake.db").display())),
            ..DatabaseConfig::default()
        },
        auth: auth_config(secret),
        telemetry: TelemetryConfig::default(),
        intake: Default::default(),
    };
    intake.intake.anonymous_reporting = !args.no_anonymous_reporting;
    let app = custos_intake::App::build(intake)
        .await
        .map_err(|e| e.to_string())?;
    let exe = std::env::args().next().unwrap_or_else(|| "custos".into());
    println!(
        "custos is running (standalone, SQLite in {dir})\n\
         \n  intake   http://{intake}\n\
         \nTokens for development (any role: {roles}):\n  {exe} token --data-dir {dir} --role helpdesk --subject alice\n\
         \nThen, for example:\n  export CUSTOS_TOKEN=$({exe} token --data-dir {dir} --role helpdesk)\n  {exe} report list --server http://{intake}\n\
         \nStop with Ctrl-C.",
        dir = data_dir.display(),
        intake = app.local_addr(),
        roles = Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    app.run_until(shutdown::signal())
        .await
        .map_err(|e| e.to_string())
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
}
