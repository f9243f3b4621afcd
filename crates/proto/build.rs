//! Compiles `proto/iap/v1/*.proto` with protox (pure Rust), so no system `protoc` is needed.
//! Output goes to OUT_DIR only, together with the descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "iap/v1/common.proto",
        "iap/v1/order_service.proto",
        "iap/v1/verification_service.proto",
        "iap/v1/delivery_service.proto",
        "iap/v1/admin_service.proto",
        "iap/v1/game_server_service.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }

    let descriptors = protox::compile(files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("iap_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // Error detail messages: described to reflection only (tonic-types has their code).
    let details = "google/rpc/error_details.proto";
    println!("cargo:rerun-if-changed={}", root.join(details).display());
    let details = protox::compile([details], [&root])?;
    std::fs::write(
        out_dir.join("google_rpc_descriptor.bin"),
        prost::Message::encode_to_vec(&details),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
