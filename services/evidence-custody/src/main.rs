//! `custos-evidence-custody`: the evidence-custody service on its own (distributed mode).

fn main() -> std::process::ExitCode {
    custos_kit::service::main::<custos_evidence_custody::Custody>()
}
