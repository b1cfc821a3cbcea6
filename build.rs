//! Generates the gRPC code of `proto/` with the protoc binary that the protoc-bin-vendored
//! crate ships, so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(
        &["proto/raft.proto", "proto/kv.proto", "proto/scheduler.proto"],
        &["proto"],
    )?;
    Ok(())
}
