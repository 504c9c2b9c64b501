//! `custos-escalation`: the escalation service on its own (distributed mode).

fn main() -> std::process::ExitCode {
    custos_kit::service::main::<custos_escalation::Escalation>()
}
