//! Compiles `proto/` with protox (pure Rust, so no `protoc` is needed on the machine) and
//! writes the encoded descriptor set beside the generated code for server reflection.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "custos/common/v1/feed.proto",
        "custos/common/v1/feed_admin.proto",
        "custos/intake/v1/report.proto",
        "custos/intake/v1/events.proto",
        "custos/intake/v1/intake_service.proto",
        "custos/classification/v1/resources.proto",
        "custos/classification/v1/classification_service.proto",
        "custos/classification/v1/events.proto",
        "custos/classification/v1/incident.proto",
        "custos/classification/v1/incident_service.proto",
        "custos/continuity/v1/resources.proto",
        "custos/continuity/v1/continuity_service.proto",
        "custos/escalation/v1/resources.proto",
        "custos/escalation/v1/directory_service.proto",
        "custos/escalation/v1/escalation_service.proto",
        "custos/custody/v1/resources.proto",
        "custos/custody/v1/custody_service.proto",
        "custos/custody/v1/events.proto",
    ];
    println!("cargo:rerun-if-changed={}", root.display());

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // tonic-prost-build's `compile_fds` ignores `file_descriptor_set_path`, so write it here.
    fs::write(
        out_dir.join("custos_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // `prost::Name` on every message gives event payloads their type names and URLs.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    // Our codec: undecodable request bytes are the client's mistake (INVALID_ARGUMENT),
    // not an INTERNAL error as with the stock prost codec.
    tonic_prost_build::configure()
        .codec_path("crate::codec::ProstCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}
