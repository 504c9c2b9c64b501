//! `custos-intake`: the intake service on its own (distributed mode).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use custos_intake::{App, Config};
use custos_kit::{config, shutdown, telemetry};

/// custos intake service: receives reports of security events and weaknesses.
#[derive(Debug, Parser)]
#[command(version)]
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
    log_format: Option<config::LogFormat>,
}

fn main() -> ExitCode {
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
    let config: Config = match config::load(args.config.as_deref(), &flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("custos-intake: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let guard = match telemetry::init("custos-intake", &config.telemetry) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("custos-intake: telemetry: {error}");
                return ExitCode::from(2);
            }
        };
        let result = async {
            let app = App::build(config).await?;
            app.run_until(shutdown::signal()).await
        }
        .await;
        guard.shutdown().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %custos_kit::error::DisplayChain(&error), "intake stopped with an error");
                ExitCode::FAILURE
            }
        }
    })
}
