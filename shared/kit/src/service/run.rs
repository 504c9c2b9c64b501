//! The whole `main` of a service binary in distributed mode: flags → config → runtime →
//! telemetry → build → serve until SIGTERM → flush → exit code (2 for configuration or
//! start-up problems a person must fix, 1 for a failure while running).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

use super::{App, Service};
use crate::{
    config::{LogFormat, ServiceConfig},
    shutdown, telemetry,
};

/// The flags every service binary takes.
#[derive(Debug, Parser)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "CUSTOS_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (server.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Database URL (database.url).
    #[arg(long)]
    database_url: Option<String>,
    /// Log format (telemetry.log_format).
    #[arg(long)]
    log_format: Option<LogFormat>,
}

/// Runs service `S` as its own process; call it from `main`.
pub fn main<S: Service>() -> ExitCode {
    let binary = format!("custos-{}", S::NAME);
    let args = Args::parse();
    let mut flags = Vec::new();
    if let Some(listen) = &args.listen {
        flags.push(("server.listen", serde_json::json!(listen)));
    }
    if let Some(url) = &args.database_url {
        flags.push(("database.url", serde_json::json!(url)));
    }
    if let Some(format) = args.log_format {
        flags.push((
            "telemetry.log_format",
            serde_json::json!(format!("{format:?}").to_lowercase()),
        ));
    }
    let config = match ServiceConfig::<S::Settings>::load(S::NAME, args.config.as_deref(), &flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{binary}: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{binary}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let guard = match telemetry::init(&binary, &config.telemetry) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("{binary}: telemetry: {error}");
                return ExitCode::from(2);
            }
        };
        let code = match App::build::<S>(config).await {
            Err(error) => {
                tracing::error!(service = S::NAME, error = %crate::error::DisplayChain(&error), "cannot start");
                ExitCode::from(2)
            }
            Ok(app) => match app.run_until(shutdown::signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(service = S::NAME, error = %crate::error::DisplayChain(&error), "stopped with an error");
                    ExitCode::FAILURE
                }
            },
        };
        guard.shutdown().await;
        code
    })
}
