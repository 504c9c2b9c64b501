//! What a reporter is told at once (policy 14.1.1 and 14.1.2).

use custos_proto::intake::v1 as pb;

use crate::report::{Kind, NewReport};

fn guidance(code: &str, title: &str, steps: &[&str]) -> pb::Guidance {
    pb::Guidance {
        code: code.into(),
        title: title.into(),
        steps: steps.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The guidance for a report that was just accepted.
pub fn for_report(report: &NewReport, suggests_malware: bool) -> Vec<pb::Guidance> {
    let mut out = Vec::new();
    if report.details.malware_suspected || suggests_malware {
        out.push(guidance(
            "MALWARE_SUSPECTED",
            "An infection is suspected: act now",
            &[
                "Note the symptoms and any error messages on screen.",
                "Disconnect the workstation from the network, with help from IT support.",
                "Do not use any removable media (for example USB memory sticks) that may also be infected.",
            ],
        ));
    }
    if report.kind == Kind::Weakness {
        out.push(guidance(
            "WEAKNESS_DO_NOT_PROVE",
            "Do not try to prove the weakness",
            &[
                "Do not attempt to prove or test a security weakness: doing so may be considered misuse.",
                "If you have also reported it to an application or service provider, say so: Information Services will follow up the provider's response.",
            ],
        ));
    }
    if report.senior_notice() {
        out.push(guidance(
            "SENIOR_MANAGEMENT_NOTIFIED",
            "Paper or personal information: senior management will be told",
            &[
                "Senior management and the Data Protection Officer or Caldicott Guardian will be told so that the impact can be assessed.",
                "Keep any remaining papers secure and do not move them unless asked to.",
            ],
        ));
    }
    if report.contact.is_none() {
        out.push(guidance(
            "KEEP_YOUR_RECEIPT",
            "Keep your receipt",
            &[
                "Your receipt is the only way to check on this report or add to it later; it cannot be shown again.",
            ],
        ));
    }
    out
}
