//! `custos custody …`: its commands and arguments, and how items and entries print.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::custody::v1 as pb;
use serde_json::json;

use crate::{custody_cli::CustodyConnection, output};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    File,
    LogExport,
    Device,
    PaperDocument,
}

/// What a verb needs: the item and the revision read.
#[derive(Debug, Args)]
pub struct Target {
    /// The item's id or reference (EVD-…).
    pub(crate) item: String,
    /// The item's revision as you read it (`custos custody show`).
    #[arg(long)]
    pub(crate) revision: i32,
}

#[derive(Debug, Subcommand)]
pub enum CustodyCommand {
    /// Register an item of evidence of an incident.
    Register {
        /// The incident's id or reference (INC-…).
        #[arg(long)]
        incident: String,
        #[arg(long, value_enum)]
        kind: KindArg,
        #[arg(long)]
        description: String,
        /// Where it was found.
        #[arg(long)]
        found_at: String,
        /// Who collected it.
        #[arg(long)]
        collected_by: String,
        /// When, RFC 3339 (2026-12-06T14:00:00Z).
        #[arg(long)]
        collected_at: String,
        /// The collector's time zone (Europe/London, +01:00).
        #[arg(long)]
        time_zone: String,
        /// How it was collected.
        #[arg(long)]
        method: String,
        /// How volatile it is, and what was done about it.
        #[arg(long, default_value = "")]
        volatility: String,
        /// Who holds it now.
        #[arg(long)]
        custodian: String,
        /// Where it is kept now.
        #[arg(long)]
        location: String,
        /// The item this one is a copy of (id or reference).
        #[arg(long)]
        derived_from: Option<String>,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// One item (the read is recorded in its chain).
    Show {
        item: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Items you may see, oldest first.
    List {
        /// Only this incident's (id or reference).
        #[arg(long)]
        incident: Option<String>,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Upload a file as an item's content.
    Upload {
        item: String,
        file: PathBuf,
        /// Why (recorded in the chain).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Download an item's content, verifying it.
    Download {
        item: String,
        /// Where to write it (it must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Why (recorded in the chain).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Pass an item to another custodian.
    Transfer {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        to: String,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        location: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Record an examination.
    Examine {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        method: String,
        #[arg(long)]
        findings: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Seal an item.
    Seal {
        #[command(flatten)]
        target: Target,
        /// The seal's number, e.g. `bag 00417`.
        #[arg(long)]
        seal: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Unseal an item.
    Unseal {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Put an item on legal hold.
    Hold {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Lift an item's legal hold.
    LiftHold {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Release an item from custody.
    Release {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        to: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Record an item's disposal.
    Dispose {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        method: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// An item's chain of custody.
    Entries {
        item: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Verify an item's chain, the custody log's checkpoint and the content.
    VerifyChain {
        item: String,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Fetch a signed custody report (`report.json` and `report.json.sig`).
    Report {
        /// An item's id or reference.
        #[arg(
            long,
            conflicts_with = "incident",
            required_unless_present = "incident"
        )]
        item: Option<String>,
        /// An incident's id or reference: all its items you may see.
        #[arg(long)]
        incident: Option<String>,
        /// Where to write the report; the signature goes beside it, with `.sig` added.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Write the service's public key (PEM), for verifying reports offline.
    PublicKey {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        conn: CustodyConnection,
    },
    /// Make an Ed25519 signing key for the service (PKCS#8 PEM, readable by you only),
    /// and its public key beside it (`.pub`) for those who verify reports.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a custody report offline: its signature and every chain in it.
    Verify {
        /// The report (its signature is `<report>.sig` unless given).
        report: PathBuf,
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The service's public key (PEM, `custos custody public-key`).
        #[arg(long)]
        public_key: PathBuf,
    },
}

pub(crate) fn name(v: &str, prefix: &str) -> String {
    v.trim_start_matches(prefix).to_lowercase()
}

pub(crate) fn state(v: i32) -> String {
    pb::evidence_item::State::try_from(v)
        .map_or("unknown".into(), |s| name(s.as_str_name(), "STATE_"))
}

pub(crate) fn kind(v: i32) -> String {
    pb::EvidenceKind::try_from(v).map_or("unknown".into(), |k| {
        name(k.as_str_name(), "EVIDENCE_KIND_")
    })
}

pub(crate) fn action(v: i32) -> String {
    pb::CustodyAction::try_from(v).map_or("unknown".into(), |a| {
        name(a.as_str_name(), "CUSTODY_ACTION_")
    })
}

pub(crate) fn item_json(i: &pb::EvidenceItem) -> serde_json::Value {
    json!({
        "id": i.id,
        "reference": i.reference,
        "incident": i.incident_reference,
        "kind": kind(i.kind),
        "description": i.description,
        "state": state(i.state),
        "custodian": i.custodian,
        "storage_location": i.storage_location,
        "legal_hold": i.legal_hold.as_ref().map(|h| h.reason.clone()),
        "sha256": i.content.as_ref().map(|c| c.sha256.clone()),
        "size_bytes": i.content.as_ref().map(|c| c.size_bytes),
        "revision": i.revision,
        "custody_entries": i.custody_entry_count,
    })
}

pub(crate) fn print_item(json_out: bool, i: &pb::EvidenceItem) {
    if json_out {
        println!("{}", item_json(i));
        return;
    }
    println!(
        "{} ({}) of {}: {}\n{}, {}; held by {} at {}{}\nrevision {}, {} custody entries",
        i.reference,
        i.id,
        i.incident_reference,
        i.description,
        kind(i.kind),
        state(i.state),
        i.custodian,
        i.storage_location,
        i.legal_hold
            .as_ref()
            .map(|h| format!("\non legal hold: {}", h.reason))
            .unwrap_or_default(),
        i.revision,
        i.custody_entry_count,
    );
    if let Some(c) = &i.content {
        println!("content: {} bytes, sha256 {}", c.size_bytes, c.sha256);
    }
}

pub(crate) fn entries_table(entries: &[pb::CustodyEntry]) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["#", "at", "action", "actor", "reason", "details"]);
    for e in entries {
        table.add_row([
            e.sequence.to_string(),
            output::time(&e.at),
            action(e.action),
            e.actor.clone(),
            e.reason.clone(),
            // In key order (a protobuf map arrives in any order).
            e.details
                .iter()
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ]);
    }
    table.to_string()
}
