//! The command-line client: the same protos as everyone else, over gRPC.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use custos_kit::client::ClientInterceptor;
use custos_proto::intake::v1::{self as pb, intake_service_client::IntakeServiceClient};
use serde_json::json;
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    output,
    request::{apply_set, submit_request},
};

#[derive(Debug, Args)]
pub struct Connection {
    /// Address of the intake service.
    #[arg(
        long,
        env = "CUSTOS_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    server: String,
    /// Bearer token (see `custos token`).
    #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

/// A channel to `server` whose calls carry `token` (if any).
pub(crate) fn connect(
    server: &str,
    token: Option<&str>,
) -> Result<InterceptedService<Channel, ClientInterceptor>, String> {
    let channel = Channel::from_shared(server.to_owned())
        .map_err(|_| format!("--server `{server}` is not a URL like http://127.0.0.1:50051"))?
        .connect_lazy();
    let interceptor = match token {
        Some(t) => ClientInterceptor::bearer(t.trim())?,
        None => ClientInterceptor::anonymous(),
    };
    Ok(InterceptedService::new(channel, interceptor))
}

type Client = IntakeServiceClient<InterceptedService<Channel, ClientInterceptor>>;

impl Connection {
    /// A channel to `--server` whose calls carry `--token` (if any).
    pub(crate) fn channel(&self) -> Result<InterceptedService<Channel, ClientInterceptor>, String> {
        connect(&self.server, self.token.as_deref())
    }

    fn client(&self) -> Result<Client, String> {
        Ok(IntakeServiceClient::new(self.channel()?))
    }

    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Event,
    Weakness,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Medium {
    Electronic,
    Paper,
}

impl Kind {
    pub fn to_wire(self) -> i32 {
        match self {
            Kind::Event => pb::ReportKind::Event as i32,
            Kind::Weakness => pb::ReportKind::Weakness as i32,
        }
    }
}

impl Medium {
    pub fn to_wire(self) -> i32 {
        match self {
            Medium::Electronic => pb::ReportMedium::Electronic as i32,
            Medium::Paper => pb::ReportMedium::Paper as i32,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Submit a report (named with --name and --phone, or --anonymous).
    Submit(Submit),
    /// Show one report by id or reference.
    Get {
        id_or_reference: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List reports you may see, newest first.
    List {
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long, value_enum)]
        medium: Option<Medium>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Amend fields: --set details.category=phishing --set contact.phone="01632 960000".
    Amend {
        report_id: String,
        #[arg(long = "set", required = true, value_name = "FIELD=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Args)]
pub struct Submit {
    #[arg(long, value_enum)]
    pub(crate) kind: Kind,
    /// Category code (the taxonomy: shared/taxonomy/taxonomy.toml, or intake's ListCategories).
    #[arg(long)]
    pub(crate) category: String,
    #[arg(long, value_enum, default_value = "electronic")]
    pub(crate) medium: Medium,
    /// The type of data, information or equipment involved.
    #[arg(long)]
    pub(crate) data_involved: String,
    /// Type and circumstances (or a description of the weakness).
    #[arg(long)]
    pub(crate) circumstances: String,
    #[arg(long, default_value = "")]
    pub(crate) location: String,
    /// When it happened (RFC 3339, e.g. 2026-11-28T09:30:00Z); events need it.
    #[arg(long)]
    pub(crate) occurred_at: Option<String>,
    /// Whether anyone or other data is put at risk: yes, no or unknown.
    #[arg(long, default_value = "unknown")]
    pub(crate) at_risk: String,
    #[arg(long, default_value = "")]
    pub(crate) symptoms: String,
    #[arg(long)]
    pub(crate) personal_information: bool,
    #[arg(long)]
    pub(crate) malware_suspected: bool,
    #[arg(long, conflicts_with_all = ["name", "phone", "email"])]
    pub(crate) anonymous: bool,
    #[arg(long, default_value = "")]
    pub(crate) name: String,
    #[arg(long, default_value = "")]
    pub(crate) phone: String,
    #[arg(long, default_value = "")]
    pub(crate) email: String,
    /// Retry-safe key (a UUID is generated when omitted).
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    #[command(flatten)]
    pub(crate) conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Where an anonymous report stands.
    Check {
        receipt: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Add information to an anonymous report.
    Add {
        receipt: String,
        #[arg(long)]
        text: String,
        #[command(flatten)]
        conn: Connection,
    },
}

pub(crate) fn fail(message: String) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}

pub async fn report(command: ReportCommand) -> ExitCode {
    match run_report(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

async fn run_report(command: ReportCommand) -> Result<(), String> {
    let status = |s: tonic::Status| output::status_error(&s);
    match command {
        ReportCommand::Submit(s) => {
            let request = submit_request(&s)?;
            let response = s
                .conn
                .client()?
                .submit_report(request)
                .await
                .map_err(status)?
                .into_inner();
            let report = response.report.unwrap_or_default();
            if s.conn.json {
                let guidance: Vec<_> = response
                    .guidance
                    .iter()
                    .map(|g| json!({"code": g.code, "title": g.title, "steps": g.steps}))
                    .collect();
                println!(
                    "{}",
                    json!({"report": output::report_json(&report), "receipt": response.receipt, "guidance": guidance})
                );
            } else {
                println!(
                    "Report {} is stored. Status: {}.",
                    report.reference,
                    output::status(report.status)
                );
                if !response.receipt.is_empty() {
                    println!(
                        "\nYour receipt (keep it; it cannot be shown again):\n  {}",
                        response.receipt
                    );
                }
                for g in &response.guidance {
                    println!("\n{}", g.title);
                    for step in &g.steps {
                        println!("  - {step}");
                    }
                }
            }
        }
        ReportCommand::Get {
            id_or_reference,
            conn,
        } => {
            let lookup = if uuid::Uuid::try_parse(&id_or_reference).is_ok() {
                pb::get_report_request::Lookup::ReportId(id_or_reference)
            } else {
                pb::get_report_request::Lookup::Reference(id_or_reference)
            };
            let response = conn
                .client()?
                .get_report(pb::GetReportRequest {
                    lookup: Some(lookup),
                })
                .await
                .map_err(status)?
                .into_inner();
            let report = response.report.unwrap_or_default();
            if conn.json {
                let history: Vec<_> = response.history.iter().map(|r| json!({
                    "number": r.number, "changed_at": output::time(&r.changed_at), "changed_by": r.changed_by, "reason": r.reason,
                    "changes": r.changes.iter().map(|c| json!({"field": c.field, "old": c.old_value, "new": c.new_value})).collect::<Vec<_>>(),
                })).collect();
                println!(
                    "{}",
                    json!({"report": output::report_json(&report), "history": history})
                );
            } else {
                println!("{}", output::report_detail(&report));
                println!("\nHistory:");
                for r in &response.history {
                    println!(
                        "  {} {} by {} ({}): {} field(s)",
                        r.number,
                        output::time(&r.changed_at),
                        if r.changed_by.is_empty() {
                            "(anonymous)"
                        } else {
                            &r.changed_by
                        },
                        r.reason,
                        r.changes.len()
                    );
                }
            }
        }
        ReportCommand::List {
            kind,
            category,
            medium,
            page_size,
            page_token,
            conn,
        } => {
            let filter = pb::ReportFilter {
                kind: kind.map_or(0, Kind::to_wire),
                category: category.unwrap_or_default(),
                medium: medium.map_or(0, Medium::to_wire),
                ..Default::default()
            };
            let response = conn
                .client()?
                .list_reports(pb::ListReportsRequest {
                    filter: Some(filter),
                    page_size,
                    page_token,
                    view: pb::ReportView::Full as i32,
                })
                .await
                .map_err(status)?
                .into_inner();
            if conn.json {
                let reports: Vec<_> = response.reports.iter().map(output::report_json).collect();
                println!(
                    "{}",
                    json!({"reports": reports, "next_page_token": response.next_page_token})
                );
            } else {
                println!("{}", output::reports_table(&response.reports));
                if !response.next_page_token.is_empty() {
                    println!("more: --page-token {}", response.next_page_token);
                }
            }
        }
        ReportCommand::Amend {
            report_id,
            set,
            reason,
            conn,
        } => {
            let (mut details, mut contact) =
                (pb::ReportDetails::default(), pb::ReporterContact::default());
            let paths = set
                .iter()
                .map(|s| apply_set(s, &mut details, &mut contact))
                .collect::<Result<Vec<_>, _>>()?;
            let has_contact = paths.iter().any(|p| p.starts_with("contact."));
            let request = pb::AmendReportRequest {
                report_id,
                details: Some(details),
                contact: has_contact.then_some(contact),
                update_mask: Some(prost_types::FieldMask { paths }),
                reason,
                expected_revision: 0,
            };
            let response = conn
                .client()?
                .amend_report(request)
                .await
                .map_err(status)?
                .into_inner();
            let report = response.report.unwrap_or_default();
            if conn.json {
                println!("{}", output::report_json(&report));
            } else {
                println!(
                    "Report {} is now at revision {}.",
                    report.reference, report.revision
                );
                for c in response.revision.map(|r| r.changes).unwrap_or_default() {
                    println!("  {}: {:?} → {:?}", c.field, c.old_value, c.new_value);
                }
            }
        }
    }
    Ok(())
}

pub async fn receipt(command: ReceiptCommand) -> ExitCode {
    let result = async {
        let status = |s: tonic::Status| output::status_error(&s);
        match command {
            ReceiptCommand::Check { receipt, conn } => {
                let r = conn.client()?.check_receipt(pb::CheckReceiptRequest { receipt }).await.map_err(status)?.into_inner();
                if conn.json {
                    println!("{}", json!({"reference": r.reference, "status": output::status(r.status), "submitted_at": output::time(&r.submitted_at), "follow_ups": r.follow_ups.len()}));
                } else {
                    println!("Report {}: {} (submitted {}, {} addition(s) from you)", r.reference, output::status(r.status), output::time(&r.submitted_at), r.follow_ups.len());
                }
            }
            ReceiptCommand::Add { receipt, text, conn } => {
                let idempotency_key = uuid::Uuid::new_v4().to_string();
                conn.client()?.add_receipt_information(pb::AddReceiptInformationRequest { receipt, text, idempotency_key }).await.map_err(status)?;
                if !conn.json {
                    println!("Added to your report.");
                } else {
                    println!("{}", json!({"added": true}));
                }
            }
        }
        Ok::<(), String>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}
