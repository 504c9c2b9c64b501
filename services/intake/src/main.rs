//! `custos-intake`: the intake service on its own (distributed mode).

fn main() -> std::process::ExitCode {
    custos_kit::service::main::<custos_intake::Intake>()
}
