//! `custos-classification`: the classification service on its own (distributed mode).

fn main() -> std::process::ExitCode {
    custos_kit::service::main::<custos_classification::Classification>()
}
