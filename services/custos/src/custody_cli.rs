//! `custos custody …`: evidence from the command line. Register items, upload their
//! content (hashed first, so that a transfer that damages it keeps nothing) and download
//! it (verified again here), move items through custody, read and verify their chain,
//! and fetch a signed custody report and verify it offline.

use std::path::PathBuf;

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use custos_proto::custody::v1::{self as pb, custody_service_client::CustodyServiceClient};
use serde_json::json;

use crate::{
    cli::connect,
    custody_args::{
        CustodyCommand, KindArg, action, entries_table, item_json, kind, print_item, state,
    },
    custody_files::{bar, download_file, hash_file, upload_file},
    incident_cli::{key, timestamp},
    output,
};

#[derive(Debug, Args)]
pub struct CustodyConnection {
    /// Address of the evidence-custody service.
    #[arg(
        long,
        env = "CUSTOS_CUSTODY_SERVER",
        default_value = "http://127.0.0.1:50054",
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

pub(crate) type Client = CustodyServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        custos_kit::client::ClientInterceptor,
    >,
>;

impl CustodyConnection {
    fn client(&self) -> Result<Client, String> {
        Ok(
            CustodyServiceClient::new(connect(&self.server, self.token.as_deref())?)
                .max_decoding_message_size(8 * 1024 * 1024),
        )
    }
}

/// Calls a verb and prints the item it returns.
macro_rules! verb {
    ($conn:expr, $method:ident, $request:expr) => {{
        let item = $conn
            .client()?
            .$method($request)
            .await
            .map_err(|s| output::status_error(&s))?
            .into_inner()
            .item
            .unwrap_or_default();
        print_item($conn.json, &item);
    }};
}

pub async fn custody(command: CustodyCommand) -> Result<(), String> {
    let fail = |s: tonic::Status| output::status_error(&s);
    match command {
        CustodyCommand::Register {
            incident,
            kind: k,
            description,
            found_at,
            collected_by,
            collected_at,
            time_zone,
            method,
            volatility,
            custodian,
            location,
            derived_from,
            conn,
        } => {
            let item = conn
                .client()?
                .register_evidence(pb::RegisterEvidenceRequest {
                    incident_id: incident,
                    kind: match k {
                        KindArg::File => pb::EvidenceKind::File,
                        KindArg::LogExport => pb::EvidenceKind::LogExport,
                        KindArg::Device => pb::EvidenceKind::Device,
                        KindArg::PaperDocument => pb::EvidenceKind::PaperDocument,
                    } as i32,
                    description,
                    collection: Some(pb::Collection {
                        found_at,
                        collected_by,
                        collected_at: Some(timestamp("--collected-at", &collected_at)?),
                        time_zone,
                        method,
                        volatility,
                    }),
                    custodian,
                    storage_location: location,
                    derived_from_item_id: derived_from.unwrap_or_default(),
                    idempotency_key: key(),
                })
                .await
                .map_err(fail)?
                .into_inner()
                .item
                .unwrap_or_default();
            print_item(conn.json, &item);
        }
        CustodyCommand::Show { item, conn } => {
            let item = conn
                .client()?
                .get_evidence(pb::GetEvidenceRequest {
                    item_id: item,
                    reason: String::new(),
                })
                .await
                .map_err(fail)?
                .into_inner()
                .item
                .unwrap_or_default();
            print_item(conn.json, &item);
        }
        CustodyCommand::List { incident, conn } => {
            let client = conn.client()?;
            let items = output::every_page(|page_token| {
                let mut client = client.clone();
                let incident_id = incident.clone().unwrap_or_default();
                async move {
                    let page = client
                        .list_evidence(pb::ListEvidenceRequest {
                            filter: Some(pb::EvidenceFilter {
                                incident_id,
                                ..Default::default()
                            }),
                            page_size: 500,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.items, page.next_page_token))
                }
            })
            .await?;
            if conn.json {
                println!("{}", json!(items.iter().map(item_json).collect::<Vec<_>>()));
            } else {
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED).set_header([
                    "reference",
                    "incident",
                    "kind",
                    "state",
                    "custodian",
                    "hold",
                    "sha256",
                ]);
                for i in &items {
                    table.add_row([
                        i.reference.clone(),
                        i.incident_reference.clone(),
                        kind(i.kind),
                        state(i.state),
                        i.custodian.clone(),
                        if i.legal_hold.is_some() {
                            "yes".into()
                        } else {
                            String::new()
                        },
                        i.content
                            .as_ref()
                            .map(|c| c.sha256.clone())
                            .unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
        }
        CustodyCommand::Upload {
            item,
            file,
            reason,
            conn,
        } => {
            let len = std::fs::metadata(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                .len();
            let hashing = bar(len, "hash");
            let path = file.clone();
            let digest = tokio::task::spawn_blocking({
                let hashing = hashing.clone();
                move || hash_file(&path, &hashing)
            })
            .await
            .map_err(|e| e.to_string())??;
            hashing.finish_and_clear();
            let uploading = bar(len, "upload");
            let added = upload_file(
                &mut conn.client()?,
                &item,
                &file,
                &digest,
                &reason,
                Some(uploading.clone()),
            )
            .await;
            uploading.finish_and_clear();
            print_item(conn.json, &added?);
        }
        CustodyCommand::Download {
            item,
            out,
            reason,
            conn,
        } => {
            let info = download_file(&mut conn.client()?, &item, &out, &reason, true).await?;
            println!(
                "{}: {} bytes, sha256 {} (verified)",
                out.display(),
                info.size_bytes,
                info.sha256
            );
        }
        CustodyCommand::Transfer {
            target,
            to,
            purpose,
            location,
            conn,
        } => {
            let r = pb::TransferCustodyRequest {
                item_id: target.item,
                revision: target.revision,
                to_custodian: to,
                purpose,
                storage_location: location,
                idempotency_key: key(),
            };
            verb!(conn, transfer_custody, r);
        }
        CustodyCommand::Examine {
            target,
            method,
            findings,
            conn,
        } => {
            let r = pb::RecordExaminationRequest {
                item_id: target.item,
                revision: target.revision,
                method,
                findings,
                idempotency_key: key(),
            };
            verb!(conn, record_examination, r);
        }
        CustodyCommand::Seal {
            target,
            seal,
            reason,
            conn,
        } => {
            let r = pb::SealEvidenceRequest {
                item_id: target.item,
                revision: target.revision,
                seal,
                reason,
                idempotency_key: key(),
            };
            verb!(conn, seal_evidence, r);
        }
        CustodyCommand::Unseal {
            target,
            reason,
            conn,
        } => {
            let r = pb::UnsealEvidenceRequest {
                item_id: target.item,
                revision: target.revision,
                reason,
                idempotency_key: key(),
            };
            verb!(conn, unseal_evidence, r);
        }
        CustodyCommand::Hold {
            target,
            reason,
            conn,
        } => {
            let r = pb::PlaceLegalHoldRequest {
                item_id: target.item,
                revision: target.revision,
                reason,
                idempotency_key: key(),
            };
            verb!(conn, place_legal_hold, r);
        }
        CustodyCommand::LiftHold {
            target,
            reason,
            conn,
        } => {
            let r = pb::LiftLegalHoldRequest {
                item_id: target.item,
                revision: target.revision,
                reason,
                idempotency_key: key(),
            };
            verb!(conn, lift_legal_hold, r);
        }
        CustodyCommand::Release {
            target,
            to,
            reason,
            conn,
        } => {
            let r = pb::ReleaseEvidenceRequest {
                item_id: target.item,
                revision: target.revision,
                released_to: to,
                reason,
                idempotency_key: key(),
            };
            verb!(conn, release_evidence, r);
        }
        CustodyCommand::Dispose {
            target,
            method,
            reason,
            conn,
        } => {
            let r = pb::DisposeEvidenceRequest {
                item_id: target.item,
                revision: target.revision,
                method,
                reason,
                idempotency_key: key(),
            };
            verb!(conn, dispose_evidence, r);
        }
        CustodyCommand::Entries { item, conn } => {
            let client = conn.client()?;
            let entries = output::every_page(|page_token| {
                let mut client = client.clone();
                let item_id = item.clone();
                async move {
                    let page = client
                        .list_custody_entries(pb::ListCustodyEntriesRequest {
                            item_id,
                            page_size: 500,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((page.entries, page.next_page_token))
                }
            })
            .await?;
            if conn.json {
                let out: Vec<_> = entries
                    .iter()
                    .map(|e| {
                        json!({
                            "sequence": e.sequence,
                            "log_index": e.log_index,
                            "action": action(e.action),
                            "actor": e.actor,
                            "at": output::time(&e.at),
                            "reason": e.reason,
                            "details": e.details,
                            "entry_hash": e.entry_hash,
                        })
                    })
                    .collect();
                println!("{}", json!(out));
            } else {
                println!("{}", entries_table(&entries));
            }
        }
        CustodyCommand::VerifyChain { item, conn } => {
            let v = conn
                .client()?
                .verify_chain(pb::VerifyChainRequest { item_id: item })
                .await
                .map_err(fail)?
                .into_inner();
            let checkpoint = v
                .checkpoint
                .as_ref()
                .map(|c| {
                    format!(
                        "checkpoint over {} log entries, signed {}",
                        c.tree_size,
                        output::time(&c.signed_at)
                    )
                })
                .unwrap_or_else(|| "no checkpoint signed yet".into());
            if v.verified {
                println!(
                    "verified: {} entries; {checkpoint} ({} entries since); content {}",
                    v.entries_checked,
                    v.entries_after_checkpoint,
                    if v.content_verified {
                        "re-hashed and matches"
                    } else {
                        "none"
                    }
                );
            } else {
                let p = v.first_problem.unwrap_or_default();
                return Err(format!(
                    "NOT VERIFIED: {}{}",
                    p.description,
                    if p.sequence > 0 {
                        format!(" (entry {})", p.sequence)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        CustodyCommand::Report {
            item,
            incident,
            out,
            conn,
        } => {
            let scope = match (item, incident) {
                (Some(i), _) => pb::get_custody_report_request::Scope::ItemId(i),
                (None, Some(i)) => pb::get_custody_report_request::Scope::IncidentId(i),
                (None, None) => return Err("give --item or --incident".into()),
            };
            let report = conn
                .client()?
                .get_custody_report(pb::GetCustodyReportRequest { scope: Some(scope) })
                .await
                .map_err(fail)?
                .into_inner()
                .report
                .unwrap_or_default();
            let sig = signature_path(&out);
            std::fs::write(&out, &report.document)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            std::fs::write(&sig, data_encoding::HEXLOWER.encode(&report.signature))
                .map_err(|e| format!("cannot write {}: {e}", sig.display()))?;
            println!(
                "{} and {} ({} signature, key {})",
                out.display(),
                sig.display(),
                report.algorithm,
                report.key_id
            );
        }
        CustodyCommand::PublicKey { out, conn } => {
            let cp = conn
                .client()?
                .get_checkpoint(pb::GetCheckpointRequest {})
                .await
                .map_err(fail)?
                .into_inner();
            let key = custos_evidence_custody::signing::public_key(&cp.public_key)?;
            let pem = custos_evidence_custody::signing::public_pem(&key);
            std::fs::write(&out, pem)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("{} (key {})", out.display(), cp.key_id);
        }
        CustodyCommand::Keygen { out } => {
            if out.exists() {
                return Err(format!(
                    "{} exists: keys are not overwritten",
                    out.display()
                ));
            }
            let signer = custos_evidence_custody::signing::Signer::load(&out, true)?;
            let public = {
                let mut s = out.as_os_str().to_owned();
                s.push(".pub");
                PathBuf::from(s)
            };
            std::fs::write(&public, signer.public_pem())
                .map_err(|e| format!("cannot write {}: {e}", public.display()))?;
            println!(
                "{} (private) and {} (public), key {}",
                out.display(),
                public.display(),
                signer.key_id()
            );
        }
        CustodyCommand::Verify {
            report,
            signature,
            public_key,
        } => {
            let sig_path = signature.unwrap_or_else(|| signature_path(&report));
            let document = std::fs::read(&report)
                .map_err(|e| format!("cannot read {}: {e}", report.display()))?;
            let sig_hex = std::fs::read_to_string(&sig_path)
                .map_err(|e| format!("cannot read {}: {e}", sig_path.display()))?;
            let sig = data_encoding::HEXLOWER
                .decode(sig_hex.trim().as_bytes())
                .map_err(|_| format!("{} is not a hexadecimal signature", sig_path.display()))?;
            let key = std::fs::read(&public_key)
                .map_err(|e| format!("cannot read {}: {e}", public_key.display()))?;
            let v = custos_evidence_custody::report::verify(&document, &sig, &key)
                .map_err(|e| format!("NOT VERIFIED: {e}"))?;
            println!(
                "verified: custody report of {} generated {}: {} items, {} entries, every chain intact{}",
                v.scope,
                v.generated_at,
                v.items,
                v.entries,
                v.checkpoint_size
                    .map(|n| format!("; checkpoint over {n} log entries signed"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn signature_path(report: &std::path::Path) -> PathBuf {
    let mut s = report.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}
