//! Generates the prost messages and tonic clients/servers for the demo services.
//!
//! The machines this builds on have no `protoc`, so the protos are parsed with `protox`
//! (pure Rust) and the resulting `FileDescriptorSet` is handed to `tonic-prost-build`.

use std::path::PathBuf;

/// Protos compiled into Rust code, relative to the include root `../proto`.
const PROTOS: &[&str] = &[
    "demo/users/v1/users.proto",
    "demo/orders/v1/orders.proto",
    "demo/inventory/v1/inventory.proto",
    // The services attach google.rpc details (ErrorInfo, BadRequest, ...) to their errors.
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    // Every demo server also answers the standard health service.
    "grpc/health/v1/health.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("..").join("proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed={}", proto_root.display());
    for proto in PROTOS {
        println!(
            "cargo:rerun-if-changed={}",
            proto_root.join(proto).display()
        );
    }

    let mut compiler = protox::Compiler::new([&proto_root])?;
    // Source info carries the proto comments over as rustdoc; imports must be in the set because
    // prost-build inspects imported messages (e.g. Timestamp) to decide which traits to derive.
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;
    let fds = compiler.file_descriptor_set();

    // The same set, but encoded with custom options such as `google.api.http` kept (prost-types
    // drops them), for reflection-style consumers.
    std::fs::write(
        out_dir.join("demo_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let mut config = tonic_prost_build::Config::new();
    // `prost::Name` impls let the services pack details with `prost_types::Any::from_msg`,
    // using the canonical `type.googleapis.com/` type URLs that other gRPC stacks expect.
    config
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com");

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
