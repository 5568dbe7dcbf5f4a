//! Generates `include/grpcpool.h` from `ffi/` with the pinned cbindgen (see Cargo.toml).
//!
//! `cargo run -p grpcpool-gen-header` rewrites the header; with `--check` it only compares
//! and exits 1 when the checked-in header is stale.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|arg| arg == "--check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let crate_dir = root.join("ffi");
    let header = root.join("include/grpcpool.h");
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("reading ffi/cbindgen.toml: {error}");
            return ExitCode::FAILURE;
        }
    };
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => bindings,
        Err(error) => {
            eprintln!("cbindgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let current = std::fs::read(&header).unwrap_or_default();
    if check {
        if current == generated {
            println!("include/grpcpool.h is up to date");
            return ExitCode::SUCCESS;
        }
        eprintln!("include/grpcpool.h is stale: run scripts/gen-header.sh and commit the result");
        return ExitCode::FAILURE;
    }
    if let Err(error) = std::fs::write(&header, &generated) {
        eprintln!("writing {}: {error}", header.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", header.display());
    ExitCode::SUCCESS
}
