//! Generates the checked-in files that come from the code: `include/grpcpool.h` from `ffi/`
//! with the pinned cbindgen (see Cargo.toml), and, from core's settings table, the README's
//! settings table, Python's `_settings.py` and Node's `settings.d.ts`.
//!
//! `cargo run -p grpcpool-gen-header` rewrites them; with `--check` it only compares and exits
//! 1 when a checked-in copy is stale.

mod settings_files;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|arg| arg == "--check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let header = match header(&root) {
        Ok(header) => header,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_default();
    let Some(readme) = settings_files::readme(&readme) else {
        eprintln!("README.md lacks the settings table's markers");
        return ExitCode::FAILURE;
    };
    let files = [
        ("include/grpcpool.h", header),
        ("README.md", readme.into_bytes()),
        (
            "bindings-python/python/grpcpool/_settings.py",
            settings_files::python().into_bytes(),
        ),
        (
            "bindings-node/settings.d.ts",
            settings_files::typescript().into_bytes(),
        ),
    ];
    let mut outcome = ExitCode::SUCCESS;
    for (path, generated) in files {
        if let Err(error) = settle(&root, path, &generated, check) {
            eprintln!("{error}");
            outcome = ExitCode::FAILURE;
        }
    }
    outcome
}

/// The header cbindgen makes from ffi/.
fn header(root: &Path) -> Result<Vec<u8>, String> {
    let crate_dir = root.join("ffi");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .map_err(|error| format!("reading ffi/cbindgen.toml: {error}"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .map_err(|error| format!("cbindgen: {error}"))?;
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    Ok(generated)
}

/// Writes `generated` to `path`, or with `check` compares it with the checked-in copy.
fn settle(root: &Path, path: &str, generated: &[u8], check: bool) -> Result<(), String> {
    let full = root.join(path);
    let current = std::fs::read(&full).unwrap_or_default();
    if check {
        if current == generated {
            println!("{path} is up to date");
            return Ok(());
        }
        return Err(format!(
            "{path} is stale: run scripts/gen-header.sh and commit the result"
        ));
    }
    if current != generated {
        std::fs::write(&full, generated).map_err(|error| format!("writing {path}: {error}"))?;
        println!("wrote {path}");
    }
    Ok(())
}
