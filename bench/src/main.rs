//! Load harness comparing grpcpool with the clients users would pick instead.
//!
//! `grpcpool-bench [--quick] [OPTIONS]` starts each server (the tonic echo server and the
//! grpc-go interop server, plaintext and TLS) in a child process, then runs every client row
//! (each a driver process speaking the protocol in `driver.rs`) at every cell of the matrix,
//! in turn within each round, and writes JSON, CSV, a Markdown report and SVG plots.
//! `grpcpool-bench drive CLIENT ARGS` is one of this binary's own driver rows;
//! `grpcpool-bench serve ARGS` is the tonic server's child process;
//! `grpcpool-bench delay-proxy ARGS` is the emulated link (delay_proxy.rs) on its own;
//! `grpcpool-bench soak [OPTIONS]` is the soak run (soak.rs), not part of the matrix.

mod affinity;
mod clients;
mod delay_proxy;
mod driver;
mod handoff;
mod ir_loop;
mod measure;
mod report;
mod round_trip;
mod scale;
mod server;
mod simple_request;
mod soak;
mod soak_report;
mod soak_summary;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clients::Transport;
use measure::Cell;
use server::{ChildServer, ServerKind};

const USAGE: &str = "usage: grpcpool-bench [--quick] [--rounds N] [--seconds S] [--warmup S]
       [--servers tonic,grpc-go] [--transports plain,tls] [--concurrency 1,16,128,512]
       [--payloads 0,1024,65536] [--connections 1,4] [--clients NAME,...]
       [--out DIR] [--docs FILE] [--no-pin] [--no-rtt | --rtt-only]
       [--no-scale | --scale-only]

Without --quick: the full matrix (every client at concurrency 1, 16, 128, 512; payloads 0 B,
1 KiB, 64 KiB and 4 connections on the tonic server in plaintext; 1 KiB over TLS and against
the grpc-go server), 3 rounds. --quick: fewer cells, one round. Any of --servers, --transports,
--concurrency, --payloads, --connections makes the matrix their full cross product instead.
Results go to --out (default target/bench): results.json, results.csv, benchmarks.md and
plots/*.svg (and scale.csv, round_trip.csv); --docs FILE also writes the Markdown there
(docs/benchmarks.md).

Then the emulated round trip (skip it with --no-rtt, or run only it with --rtt-only): the
tonic server behind a TCP delay proxy adding 1 ms, then 10 ms, each way, plaintext and TLS, the
grpcpool and dial-per-call rows (those of them --clients names) at concurrency 1 and 16, 3 s
each (--quick: 1 s), about a minute in all.

The client rows (--clients picks some): this binary's own (drive, below); on the C ABI,
programs built with cc or c++ (CC, CXX) against libgrpcpool.so into --out: c-pthreads
(bench/c/driver.c, blocking grpcpool_unary from N pthreads), c-async (bench/c/driver.c
--api async, grpcpool_unary_async with N calls in flight, each completion callback starting
the next) and cpp-threads (bench/cpp/driver.cpp, the C++ wrapper's blocking Pool::unary from
N std::threads); grpc-go (bench/go); py-grpcpool-sync, py-grpcio-sync, py-grpcpool-aio,
py-grpc-aio (bench/python); node-grpcpool, node-grpc-js (bench/node).

Then the scale run (skip it with --no-scale, or run only it with --scale-only): grpcpool's
core against 1,000 loopback listeners with 2 connections each (warm-up time, QPS spread over
them, RSS per idle connection), 10,000 leases held and 10,000 calls started at once on one
target; then, from a pool of their own, 100,000 calls held in flight at once on one target
(client RSS and heap per call with all in flight; hold and deadline scale with the calls; the
phase ends within 60 s); --quick: 200 listeners, 2,000 leases and 2,000 calls, 10,000 held.

--rtt-only and --scale-only run only the phases they name (both: those two), no matrix.

  grpcpool-bench drive CLIENT --target URL --concurrency N --seconds S --payload BYTES
       [--connections K] [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]
       runs one of this binary's client rows (grpcpool, core-blocking, c-abi-blocking,
       tonic-channel, dial-per-call, h2load) and prints its JSON report line.

  grpcpool-bench delay-proxy --upstream HOST:PORT --delay-ms N
       a TCP proxy on 127.0.0.1 holding every byte N ms each way in front of HOST:PORT, as the
       round trip uses it; prints LISTENING port and runs until killed.

  grpcpool-bench handoff [--threads 1,16,128] [--seconds S] [--rounds R]
       CPU per empty Pool::block_on from N threads beside CPU per empty task spawned and
       awaited from N tasks: the floor a blocking call pays (docs/blocking-calls.md).

  grpcpool-bench ir-loop --api async|blocking --target URL --calls N [--warmup-calls W]
       sequential calls for callgrind (bench/call_paths.sh), nothing timed.

  grpcpool-bench soak [--calls N] [--threads T] [--max-seconds S] [--docs FILE] ...
       1,000,000 calls through the C ABI from 16 threads, RSS sampled every second
       (soak --help for its options); not part of the matrix, nor of CI.";

/// The rows that are programs of their own on the C ABI, built against libgrpcpool.so: name,
/// source under bench/, the driver's leading arguments, and what the row measures.
const NATIVE_CLIENTS: [(&str, &str, &[&str], &str); 3] = [
    (
        "c-pthreads",
        "c/driver.c",
        &["--api", "blocking"],
        "blocking grpcpool_unary from N pthreads, a C program",
    ),
    (
        "c-async",
        "c/driver.c",
        &["--api", "async"],
        "grpcpool_unary_async from C, N calls in flight, each completion callback starting the next",
    ),
    (
        "cpp-threads",
        "cpp/driver.cpp",
        &[],
        "the C++ wrapper's blocking grpcpool::Pool::unary from N std::threads",
    ),
];

/// The heading of the section bench/policy_cost.sh writes into docs/benchmarks.md.
const POLICY_COST_HEADING: &str = "## Policy layer cost";
/// The heading of the section from bench/call_paths.sh, kept by a matrix run as the above.
const CALL_PATHS_HEADING: &str = "## Call paths";
/// The heading of the section bench/alloc_count.sh writes (allocations per call, counted by
/// grpcpool-alloc-count), kept the same way.
const ALLOCATIONS_HEADING: &str = "## Allocations per call";
/// The sections a matrix run carries over from the docs it rewrites, in the order it
/// appends them: each comes from a script of its own, not from the matrix.
const KEPT_HEADINGS: [&str; 3] = [POLICY_COST_HEADING, CALL_PATHS_HEADING, ALLOCATIONS_HEADING];

/// The section of `text` whose heading starts with `heading`: from it to the next `## ` heading
/// or the end, without trailing blank lines; `None` when there is none.
fn kept_section<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    let start = if text.starts_with(heading) {
        0
    } else {
        text.find(&format!("\n{heading}"))? + 1
    };
    let rest = &text[start..];
    let end = rest[heading.len()..]
        .find("\n## ")
        .map_or(rest.len(), |at| at + heading.len() + 1);
    Some(rest[..end].trim_end())
}

/// `report` (a matrix run's Markdown) with every [`KEPT_HEADINGS`] section `existing` (the
/// docs it replaces) has appended, in that order.
fn keep_sections(report: String, existing: &str) -> String {
    let mut text = report;
    for heading in KEPT_HEADINGS {
        if let Some(section) = kept_section(existing, heading) {
            text = format!("{}\n\n{section}\n", text.trim_end());
        }
    }
    text
}

/// One client row: a driver command and how it is compared.
struct Client {
    name: String,
    face: &'static str,
    ours: bool,
    /// Whether it can spread calls over K connections (else it runs at K = 1 only).
    connections: bool,
    command: Vec<String>,
    available: Result<(), String>,
}

/// One cell of the matrix, run for every client.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Group {
    server: ServerKind,
    transport: Transport,
    concurrency: usize,
    payload: usize,
    connections: usize,
}

struct Options {
    mode: &'static str,
    seconds: f64,
    warmup: f64,
    rounds: usize,
    servers: Option<Vec<ServerKind>>,
    transports: Option<Vec<Transport>>,
    concurrency: Option<Vec<usize>>,
    payloads: Option<Vec<usize>>,
    connections: Option<Vec<usize>>,
    clients: Option<Vec<String>>,
    out: PathBuf,
    docs: Option<PathBuf>,
    pin: bool,
    /// Whether to run the scale phases after the matrix, and only them.
    scale: bool,
    scale_only: bool,
    /// Whether to run the emulated round trip after the matrix, and only it.
    rtt: bool,
    rtt_only: bool,
}

impl Options {
    /// The matrix runs unless an `--*-only` option picked other phases.
    fn runs_matrix(&self) -> bool {
        !self.scale_only && !self.rtt_only
    }

    /// The round trip runs when picked by `--rtt-only`, else unless `--no-rtt` or another
    /// phase's `--*-only`.
    fn runs_round_trip(&self) -> bool {
        self.rtt_only || (self.rtt && !self.scale_only)
    }

    /// The scale run likewise.
    fn runs_scale(&self) -> bool {
        self.scale_only || (self.scale && !self.rtt_only)
    }
}

fn list<T>(text: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    text.split(',').map(|item| parse(item.trim())).collect()
}

fn number(text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| format!("bad number {text:?}"))
}

fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        mode: "full",
        // Three rounds of half a second per client and cell kept the full matrix, every row
        // present, to 18 minutes on 2 cores with 14 rows; the 16 of now make it about 21.
        seconds: 0.5,
        warmup: 0.2,
        rounds: 3,
        servers: None,
        transports: None,
        concurrency: None,
        payloads: None,
        connections: None,
        clients: None,
        out: repo_root().join("target/bench"),
        docs: None,
        pin: true,
        scale: true,
        scale_only: false,
        rtt: true,
        rtt_only: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        let seconds = |text: String| -> Result<f64, String> {
            text.parse().map_err(|_| format!("bad seconds {text:?}"))
        };
        match arg.as_str() {
            "--quick" => {
                options.mode = "quick";
                options.seconds = 0.5;
                options.warmup = 0.2;
                options.rounds = 1;
            }
            "--rounds" => options.rounds = number(&value()?)?.max(1),
            "--seconds" => options.seconds = seconds(value()?)?,
            "--warmup" => options.warmup = seconds(value()?)?,
            "--servers" => {
                options.servers = Some(list(&value()?, |name| match name {
                    "tonic" => Ok(ServerKind::Tonic),
                    "grpc-go" | "go" => Ok(ServerKind::Go),
                    other => Err(format!("unknown server {other:?}")),
                })?)
            }
            "--transports" => {
                options.transports = Some(list(&value()?, |name| match name {
                    "plain" | "plaintext" => Ok(Transport::Plaintext),
                    "tls" => Ok(Transport::Tls),
                    other => Err(format!("unknown transport {other:?}")),
                })?)
            }
            "--concurrency" => options.concurrency = Some(list(&value()?, number)?),
            "--payloads" => options.payloads = Some(list(&value()?, number)?),
            "--connections" => options.connections = Some(list(&value()?, number)?),
            "--clients" => options.clients = Some(list(&value()?, |name| Ok(name.to_owned()))?),
            "--out" => options.out = PathBuf::from(value()?),
            "--docs" => options.docs = Some(PathBuf::from(value()?)),
            "--no-pin" => options.pin = false,
            "--no-scale" => options.scale = false,
            "--scale-only" => options.scale_only = true,
            "--no-rtt" => options.rtt = false,
            "--rtt-only" => options.rtt_only = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The cells to run, in order.
fn plan(options: &Options) -> Vec<Group> {
    use ServerKind::{Go, Tonic};
    use Transport::{Plaintext, Tls};
    let group = |server, transport, concurrency, payload, connections| Group {
        server,
        transport,
        concurrency,
        payload,
        connections,
    };
    let custom = options.servers.is_some()
        || options.transports.is_some()
        || options.concurrency.is_some()
        || options.payloads.is_some()
        || options.connections.is_some();
    let mut out = Vec::new();
    if !options.runs_matrix() {
        return out;
    }
    if custom {
        for &server in options.servers.as_deref().unwrap_or(&[Tonic, Go]) {
            for &transport in options.transports.as_deref().unwrap_or(&[Plaintext, Tls]) {
                for &payload in options.payloads.as_deref().unwrap_or(&[1024]) {
                    for &connections in options.connections.as_deref().unwrap_or(&[1]) {
                        for &concurrency in options.concurrency.as_deref().unwrap_or(&[1, 16, 128])
                        {
                            out.push(group(server, transport, concurrency, payload, connections));
                        }
                    }
                }
            }
        }
    } else if options.mode == "quick" {
        for concurrency in [1, 16, 128] {
            out.push(group(Tonic, Plaintext, concurrency, 1024, 1));
        }
        // Six cells keep the run to about two minutes on two cores with every row present.
        out.push(group(Tonic, Plaintext, 128, 1024, 4));
        out.push(group(Go, Plaintext, 128, 1024, 1));
        out.push(group(Go, Tls, 16, 1024, 1));
    } else {
        let all = [1, 16, 128, 512];
        for payload in [0, 1024, 65536] {
            for concurrency in all {
                out.push(group(Tonic, Plaintext, concurrency, payload, 1));
            }
        }
        for concurrency in [16, 128, 512] {
            out.push(group(Tonic, Plaintext, concurrency, 1024, 4));
        }
        for (server, transport) in [(Tonic, Tls), (Go, Plaintext), (Go, Tls)] {
            for concurrency in all {
                out.push(group(server, transport, concurrency, 1024, 1));
            }
        }
    }
    out
}

/// Every client row, available here or not.
fn clients(options: &Options) -> Vec<Client> {
    let root = repo_root();
    let exe = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (name, _) in clients::RUST_CLIENTS {
        let command = vec![exe.clone(), "drive".into(), name.into()];
        out.push(Client {
            name: name.into(),
            face: if name == "c-abi-blocking" {
                "c"
            } else {
                "rust"
            },
            ours: matches!(name, "grpcpool" | "core-blocking" | "c-abi-blocking"),
            connections: name != "dial-per-call",
            available: driver::check(&command),
            command,
        });
    }
    for (name, source, leading, _what) in NATIVE_CLIENTS {
        // One directory per program: the C rows share one binary, the C++ one has its own.
        let directory = if source.ends_with(".cpp") {
            "cpp-driver"
        } else {
            "c-driver"
        };
        let directory = std::path::absolute(&options.out)
            .unwrap_or_else(|_| options.out.clone())
            .join(directory);
        let built = build_c_program(&root, &directory, source);
        let mut command = vec![built
            .as_ref()
            .map_or_else(|_| directory.join("driver"), PathBuf::clone)
            .display()
            .to_string()];
        command.extend(leading.iter().map(|arg| arg.to_string()));
        out.push(Client {
            name: name.into(),
            face: "c",
            ours: true,
            connections: true,
            available: built.and_then(|_| driver::check(&command)),
            command,
        });
    }
    let go_driver = std::path::absolute(&options.out)
        .unwrap_or_else(|_| options.out.clone())
        .join("go-driver");
    out.push(Client {
        name: "grpc-go".into(),
        face: "go",
        ours: false,
        connections: true,
        available: build_go_driver(&root.join("bench/go"), &go_driver),
        command: vec![go_driver.display().to_string()],
    });
    // The venv bindings-python/test.sh makes; GRPCPOOL_BENCH_PYTHON names another interpreter.
    let python = std::env::var_os("GRPCPOOL_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/python-venv/bin/python"));
    let script = root.join("bench/python/driver.py");
    for (name, face, ours, client) in [
        ("py-grpcpool-sync", "python-sync", true, "grpcpool-sync"),
        ("py-grpcio-sync", "python-sync", false, "grpcio-sync"),
        ("py-grpcpool-aio", "python-asyncio", true, "grpcpool-aio"),
        ("py-grpc-aio", "python-asyncio", false, "grpc-aio"),
    ] {
        let command = vec![
            python.display().to_string(),
            script.display().to_string(),
            "--client".into(),
            client.into(),
        ];
        out.push(Client {
            name: name.into(),
            face,
            ours,
            connections: true,
            available: if python.is_file() {
                driver::check(&command)
            } else {
                Err(format!(
                    "no Python at {} (run bash bindings-python/test.sh, or set GRPCPOOL_BENCH_PYTHON)",
                    python.display()
                ))
            },
            command,
        });
    }
    // bench/node/driver.js, run by `node` on PATH or the program GRPCPOOL_BENCH_NODE names; the
    // grpcpool row loads target/release/libgrpcpool_node.so (rebuilt below when the package's
    // tools are installed), the grpc-js row bindings-node's node_modules (the driver's --check
    // says which is missing).
    let node = std::env::var_os("GRPCPOOL_BENCH_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let node_found = Command::new(&node)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success());
    let node_script = root.join("bench/node/driver.js");
    // The addon row measures the current sources: rebuild the release addon (a no-op when
    // current) wherever the Node package's tools are installed.
    let node_build = if node_found && root.join("bindings-node/node_modules").is_dir() {
        cargo_build_release(&root, "grpcpool-node")
    } else {
        Ok(())
    };
    for (name, ours, client) in [
        ("node-grpcpool", true, "grpcpool"),
        ("node-grpc-js", false, "grpc-js"),
    ] {
        let command = vec![
            node.display().to_string(),
            node_script.display().to_string(),
            "--client".into(),
            client.into(),
        ];
        out.push(Client {
            name: name.into(),
            face: "node",
            ours,
            connections: true,
            available: if !node_found {
                Err(format!(
                    "no {} to run (install Node 18+, or set GRPCPOOL_BENCH_NODE)",
                    node.display()
                ))
            } else if !node_script.is_file() {
                Err(format!("no {}", node_script.display()))
            } else if let Err(error) = &node_build {
                Err(error.clone())
            } else {
                driver::check(&command)
            },
            command,
        });
    }
    if let Some(wanted) = &options.clients {
        out.retain(|client| wanted.contains(&client.name));
    }
    out
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// `cargo build --release --locked -p PACKAGE --lib` in `root`: quick when nothing changed.
fn cargo_build_release(root: &Path, package: &str) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("cargo build --release -p {package} (for its benchmark row)");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "-p",
            package,
            "--lib",
        ])
        .current_dir(root)
        .status()
        .map_err(|error| format!("cargo: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build --release -p {package} failed"))
    }
}

/// The newest libgrpcpool.so of this build: cargo links the ffi crate's cdylib into deps/ beside
/// this binary whenever it builds the harness (current with the sources, the same features), but
/// copies it up beside it only for a direct `-p grpcpool-ffi` build, which may be older; and a
/// CARGO_TARGET_DIR elsewhere leaves the repository's own target/release stale.
fn c_library(root: &Path) -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let mut candidates: Vec<PathBuf> = beside
        .map(|dir| vec![dir.join("deps/libgrpcpool.so"), dir.join("libgrpcpool.so")])
        .unwrap_or_default();
    candidates.push(root.join("target/release/libgrpcpool.so"));
    candidates
        .iter()
        .filter_map(|path| Some((modified(path)?, path)))
        .max_by_key(|(built, _)| *built)
        .map(|(_, path)| path.clone())
        .unwrap_or_else(|| root.join("target/release/libgrpcpool.so"))
}

/// Builds bench/`source` (c/driver.c, c/soak.c with `cc`; cpp/driver.cpp with `c++`, C++17)
/// against libgrpcpool.so (built with the harness, or with cargo when missing) into
/// `directory`, named after the file; returns the program's path. CC and CXX name other
/// compilers.
fn build_c_program(root: &Path, directory: &Path, source: &str) -> Result<PathBuf, String> {
    let cpp = source.ends_with(".cpp");
    let (compiler, standard, headers): (String, _, &[&str]) = if cpp {
        let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        (compiler, "-std=c++17", &["grpcpool.h", "grpcpool.hpp"])
    } else {
        let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        (compiler, "-std=c11", &["grpcpool.h"])
    };
    let language = if cpp { "C++" } else { "C" };
    Command::new(&compiler)
        .arg("--version")
        .output()
        .map_err(|error| format!("no {language} compiler ({compiler}: {error})"))?;
    // The harness depends on grpcpool-ffi, so building it (`cargo run -p grpcpool-bench`) has
    // just built the library too, current with the sources. Building `-p grpcpool-ffi` here
    // instead would unify features differently and make each run relink both.
    let mut library = c_library(root);
    if !library.is_file() {
        cargo_build_release(root, "grpcpool-ffi")?;
        library = c_library(root);
    }
    if !library.is_file() {
        return Err(format!("cargo built no {}", library.display()));
    }
    // The library's soname carries the major version; the build tree has only the plain name.
    let lib_dir = directory.join("lib");
    std::fs::create_dir_all(&lib_dir).map_err(|error| error.to_string())?;
    for name in ["libgrpcpool.so", "libgrpcpool.so.0"] {
        let link = lib_dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&library, &link).map_err(|error| error.to_string())?;
    }
    let source = root.join("bench").join(source);
    let name = source
        .file_stem()
        .ok_or_else(|| format!("no program name in {}", source.display()))?;
    let binary = directory.join(name);
    let newest = headers
        .iter()
        .map(|header| modified(&root.join("include").join(header)))
        .fold(modified(&source).max(modified(&library)), Ord::max);
    if modified(&binary).is_some_and(|built| Some(built) >= newest) {
        return Ok(binary);
    }
    let output = Command::new(&compiler)
        .args([standard, "-O2", "-Wall", "-Wextra"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lgrpcpool")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lpthread", "-ldl", "-lm"])
        .output()
        .map_err(|error| format!("{compiler}: {error}"))?;
    if output.status.success() {
        Ok(binary)
    } else {
        let text = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "{compiler} failed: {}",
            text.lines().take(2).collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// Builds the grpc-go client driver with its pinned go.mod, once per output directory.
fn build_go_driver(source: &Path, binary: &Path) -> Result<(), String> {
    let newest_source = ["main.go", "go.mod", "go.sum"]
        .iter()
        .filter_map(|name| std::fs::metadata(source.join(name)).ok()?.modified().ok())
        .max();
    let built = std::fs::metadata(binary)
        .ok()
        .and_then(|meta| meta.modified().ok());
    if let (Some(source), Some(built)) = (newest_source, built) {
        if built >= source {
            return Ok(());
        }
    }
    let output = Command::new("go")
        .args(["build", "-mod=readonly", "-o"])
        .arg(binary)
        .arg(".")
        .current_dir(source)
        .output()
        .map_err(|error| format!("go is not installed ({error})"))?;
    if output.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "go build failed: {}",
            text.lines().take(2).collect::<Vec<_>>().join(" | ")
        ))
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// `[#####-----] 12/40 cells, eta 35 s` on stderr.
fn progress(done: usize, total: usize, started: Instant, what: &str) {
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let eta = if done == 0 {
        "?".to_owned()
    } else {
        let per = started.elapsed().as_secs_f64() / done as f64;
        format!("{:.0}", per * (total - done) as f64)
    };
    eprint!(
        "\r\x1b[K[{}{}] {done}/{total} cells, eta {eta} s  {what}",
        "#".repeat(filled),
        "-".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => return server::serve_child(),
        Some("serve-many") => {
            return scale::serve_many(&args[2..]).map_err(|error| error.to_string().into());
        }
        Some("scale-client") => {
            return scale::scale_client(&args[2..]).map_err(|error| error.to_string().into());
        }
        Some("drive") => {
            return clients::drive(&args[2..]).map_err(|error| error.to_string().into());
        }
        Some("delay-proxy") => return delay_proxy::main(&args[2..]).map_err(Into::into),
        Some("soak") => return soak::main(&args[2..]),
        Some("handoff") => {
            return handoff::main(&args[2..]).map_err(|error| error.to_string().into());
        }
        Some("ir-loop") => {
            return ir_loop::main(&args[2..]).map_err(|error| error.to_string().into());
        }
        _ => {}
    }
    let options = parse_options(std::env::args().skip(1))?;
    if options
        .clients
        .as_ref()
        .is_none_or(|names| names.iter().any(|name| name == "h2load"))
    {
        clients::install_h2load_if_missing();
    }
    std::fs::create_dir_all(options.out.join("plots"))?;
    // Plots of an earlier run would sit beside this run's under the same names' pattern.
    for entry in std::fs::read_dir(options.out.join("plots"))?.flatten() {
        if entry.path().extension().is_some_and(|ext| ext == "svg") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let cpus = affinity::allowed_cpus();
    let (server_cpu, client_cpu, pinned) = if options.pin && cpus.len() >= 2 {
        (
            Some(cpus[1]),
            Some(cpus[0]),
            format!(
                "yes, server on CPU {}, client drivers on CPU {}",
                cpus[1], cpus[0]
            ),
        )
    } else {
        (None, None, "no (one CPU, or --no-pin)".to_owned())
    };
    let mut meta = report::Meta {
        mode: options.mode.into(),
        cpus: cpus.len(),
        pinned,
        load_before: load_average(),
        rounds: options.rounds,
        seconds: options.seconds,
        warmup: options.warmup,
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0),
        ..report::Meta::default()
    };
    // A run without the matrix needs no client rows, nor their builds and checks: the round
    // trip's rows are this binary's own drivers.
    let clients = if options.runs_matrix() {
        clients(&options)
    } else {
        Vec::new()
    };
    for client in &clients {
        if let Err(reason) = &client.available {
            meta.not_available
                .push(format!("{}: {reason}", client.name));
        }
    }
    let groups = plan(&options);
    let runnable = |group: &Group| {
        clients
            .iter()
            .filter(|client| {
                client.available.is_ok() && (group.connections == 1 || client.connections)
            })
            .count()
    };
    let total: usize = groups.iter().map(runnable).sum::<usize>() * options.rounds;
    println!(
        "grpcpool-bench {}: {} cells x {} clients, {} round(s) of {} s; load average {}; pinning: {}",
        options.mode,
        groups.len(),
        clients.iter().filter(|client| client.available.is_ok()).count(),
        options.rounds,
        options.seconds,
        meta.load_before,
        meta.pinned
    );
    for note in &meta.not_available {
        println!("  not available: {note}");
    }
    let started = Instant::now();
    let mut done = 0;
    let mut cells = Vec::new();
    let mut servers: Vec<(ServerKind, Transport)> = Vec::new();
    for group in &groups {
        if !servers.contains(&(group.server, group.transport)) {
            servers.push((group.server, group.transport));
        }
    }
    let slack = Duration::from_secs(60);
    for (kind, transport) in servers {
        let server = match ChildServer::start(kind, transport, server_cpu) {
            Ok(server) => server,
            Err(error) => {
                let note = format!(
                    "{} server, {}: not available: {error}",
                    kind.name(),
                    transport.name()
                );
                println!("\n{note}");
                meta.not_available.push(note);
                for group in groups
                    .iter()
                    .filter(|g| g.server == kind && g.transport == transport)
                {
                    done += runnable(group) * options.rounds;
                }
                continue;
            }
        };
        for group in groups
            .iter()
            .filter(|g| g.server == kind && g.transport == transport)
        {
            let args = driver::DriveArgs {
                target: server.target.clone(),
                concurrency: group.concurrency,
                seconds: options.seconds,
                warmup: options.warmup,
                payload: group.payload,
                connections: group.connections,
                method: server.method.clone(),
                tls_ca: server.ca_file.clone(),
                server_name: server.server_name.clone(),
            };
            let eligible: Vec<&Client> = clients
                .iter()
                .filter(|client| group.connections == 1 || client.connections)
                .collect();
            let mut reports: Vec<Vec<driver::DriverReport>> = vec![Vec::new(); eligible.len()];
            let mut failures: Vec<Option<String>> = vec![None; eligible.len()];
            // Clients take turns within each round, so drift on a shared machine hits all alike.
            for _ in 0..options.rounds {
                for (index, client) in eligible.iter().enumerate() {
                    if client.available.is_err() || failures[index].is_some() {
                        continue;
                    }
                    progress(
                        done,
                        total,
                        started,
                        &format!(
                            "{} {} c={} {}",
                            kind.name(),
                            transport.name(),
                            group.concurrency,
                            client.name
                        ),
                    );
                    match driver::run(&client.command, &args, client_cpu, slack) {
                        Ok(report) => reports[index].push(report),
                        Err(error) => failures[index] = Some(format!("failed: {error}")),
                    }
                    done += 1;
                }
            }
            eprint!("\r\x1b[K");
            println!(
                "\n{} server, {} {}, c={}, payload {} B, {} connection(s)",
                kind.name(),
                transport.name(),
                server.key_kind,
                group.concurrency,
                group.payload,
                group.connections
            );
            for (index, client) in eligible.iter().enumerate() {
                let mut cell = Cell {
                    server: kind.name().into(),
                    transport: transport.name().into(),
                    client: client.name.clone(),
                    face: client.face.into(),
                    ours: client.ours,
                    concurrency: group.concurrency,
                    payload: group.payload,
                    connections: group.connections,
                    ..Cell::default()
                };
                match (&client.available, &failures[index]) {
                    (Err(_), _) => continue,
                    (_, Some(failure)) => cell.note = Some(failure.clone()),
                    _ => cell.fill(&reports[index]),
                }
                println!("  {}", cell.row());
                cells.push(cell);
            }
        }
    }
    eprintln!(
        "\r\x1b[K[{}] {total}/{total} cells in {:.0} s",
        "#".repeat(30),
        started.elapsed().as_secs_f64()
    );
    let round_trip = if options.runs_round_trip() {
        Some(run_round_trip(&options, server_cpu, client_cpu))
    } else {
        None
    };
    let scale = if options.runs_scale() {
        Some(run_scale(&options, server_cpu, client_cpu))
    } else {
        None
    };
    meta.load_after = load_average();
    write_results(&options, &meta, &cells, &scale, &round_trip)?;
    Ok(())
}

/// The emulated round trip: the tonic server behind the delay proxy, a driver per row.
fn run_round_trip(
    options: &Options,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
) -> report::RoundTrip {
    let plan = round_trip::Plan::new(options.mode == "quick", options.clients.as_deref());
    println!(
        "\nemulated round trip: {} runs of {} s (+{} s warm-up): {} at {:?} each way, c = {:?}",
        plan.runs(),
        plan.seconds,
        plan.warmup,
        plan.clients.join(", "),
        plan.delays,
        plan.concurrency
    );
    let load_before = load_average();
    let mut round_trip = if plan.clients.is_empty() {
        report::RoundTrip {
            notes: vec!["not run: --clients names neither grpcpool nor dial-per-call".into()],
            ..report::RoundTrip::default()
        }
    } else {
        round_trip::run(&plan, server_cpu, client_cpu)
    };
    round_trip.load = format!("before {load_before}, after {}", load_average());
    for note in &round_trip.notes {
        println!("  note: {note}");
    }
    round_trip
}

/// The scale run: a many-listener server child and one scale client process.
fn run_scale(
    options: &Options,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
) -> report::Scale {
    // Held at scale: the 100,000 calls in flight target in the full run; quick (the README's
    // demo) shows the phase at a tenth of that, a few seconds.
    let (targets, in_flight, leases, seconds, at_scale) = if options.mode == "quick" {
        (200, 2_000, 2_000, 1.0, 10_000)
    } else {
        (1_000, 10_000, 10_000, 2.0, 100_000)
    };
    println!(
        "\nscale: {targets} targets x 2 connections, {leases} leases, {in_flight} calls at once on one target, then {at_scale} held at once on one target"
    );
    let load_before = load_average();
    let started = Instant::now();
    let result = scale::ManyServer::start(targets, server_cpu).and_then(|server| {
        let mut note = None;
        if server.ports.len() < targets {
            note = Some(format!(
                "the server's RLIMIT_NOFILE fits {} of {targets} listeners",
                server.ports.len()
            ));
        }
        let args = scale::ScaleArgs {
            ports: server.ports.clone(),
            in_flight,
            leases,
            seconds,
            at_scale,
        };
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command.arg("scale-client").args(args.to_args());
        if let Some(cpu) = client_cpu {
            affinity::pin_command(&mut command, cpu);
        }
        // The earlier phases' 90 s, and the held-at-scale phase's own bound on top: that phase
        // ends by itself within it, so a client past both is stuck.
        let limit = Duration::from_secs(90) + scale::AT_SCALE_LIMIT;
        let mut scale = driver::run_json::<report::Scale>(command, limit)?;
        // The server's high-water mark, mostly the held-at-scale calls on its side: not the
        // measured figure, but what the machine had to hold.
        scale.server_peak_rss_kib = server.peak_rss_kib();
        if let Some(note) = note {
            scale.note = Some(match scale.note.take() {
                Some(other) => format!("{note}; {other}"),
                None => note,
            });
        }
        Ok(scale)
    });
    let mut scale = result.unwrap_or_else(|error| report::Scale {
        targets,
        in_flight,
        leases,
        note: Some(format!("scale run failed: {error}")),
        ..report::Scale::default()
    });
    scale.load = format!("before {load_before}, after {}", load_average());
    for (figure, value) in report::scale_rows(&scale) {
        println!("  {figure:<58} {value}");
    }
    if let Some(note) = &scale.note {
        println!("  note: {note}");
    }
    println!("  ({:.0} s)", started.elapsed().as_secs_f64());
    scale
}

fn write_results(
    options: &Options,
    meta: &report::Meta,
    cells: &[Cell],
    scale: &Option<report::Scale>,
    round_trip: &Option<report::RoundTrip>,
) -> Result<(), Box<dyn std::error::Error>> {
    let out = &options.out;
    std::fs::write(
        out.join("results.json"),
        report::json(meta, cells, scale, round_trip),
    )?;
    std::fs::write(out.join("results.csv"), report::csv(cells))?;
    match scale {
        Some(scale) => std::fs::write(out.join("scale.csv"), report::scale_csv(scale))?,
        None => {
            let _ = std::fs::remove_file(out.join("scale.csv"));
        }
    }
    match round_trip {
        Some(round_trip) => std::fs::write(
            out.join("round_trip.csv"),
            report::round_trip_csv(round_trip),
        )?,
        None => {
            let _ = std::fs::remove_file(out.join("round_trip.csv"));
        }
    }
    for (name, svg) in report::plots(cells) {
        std::fs::write(out.join("plots").join(name), svg)?;
    }
    std::fs::write(
        out.join("benchmarks.md"),
        report::markdown(meta, cells, scale, round_trip, "plots"),
    )?;
    let dir = out.display();
    println!(
        "\nload average before {}, after {}\nresults: {dir}/results.json, {dir}/results.csv, report {dir}/benchmarks.md, plots {dir}/plots/*.svg",
        meta.load_before, meta.load_after,
    );
    if let Some(docs) = &options.docs {
        // The report in docs/ points at plots copied beside it.
        let directory = docs.parent().unwrap_or(Path::new("."));
        let plots = directory.join("benchmarks");
        std::fs::create_dir_all(&plots)?;
        for (name, svg) in report::plots(cells) {
            std::fs::write(plots.join(name), svg)?;
        }
        let mut text = report::markdown(meta, cells, scale, round_trip, "benchmarks");
        // The soak section comes from its own run (`soak --docs`); a matrix run keeps it.
        let existing = std::fs::read_to_string(docs).unwrap_or_default();
        if let Some(soak) = soak_report::section_of(&existing) {
            text = soak_report::splice(&text, soak);
        }
        // So do the instruction-count sections, from bench/policy_cost.sh and call_paths.sh,
        // and the allocation counts from bench/alloc_count.sh.
        let text = keep_sections(text, &existing);
        std::fs::write(docs, text)?;
        println!(
            "report also written to {} (plots in {})",
            docs.display(),
            plots.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_client_row() {
        let native = NATIVE_CLIENTS.iter().map(|(name, ..)| *name);
        for name in clients::RUST_CLIENTS
            .iter()
            .map(|(name, _)| *name)
            .chain(native)
        {
            assert!(USAGE.contains(name), "--help does not name {name}");
        }
    }

    #[test]
    fn the_policy_cost_section_is_found_to_the_next_heading() {
        let text = "# B\n\n## Scale\n\nx\n\n## Policy layer cost (Ir)\n\ny\n\n## Later\n\nz\n";
        assert_eq!(
            kept_section(text, POLICY_COST_HEADING),
            Some("## Policy layer cost (Ir)\n\ny")
        );
        let last = "# B\n\n## Policy layer cost\n\ny\n\n";
        assert_eq!(
            kept_section(last, POLICY_COST_HEADING),
            Some("## Policy layer cost\n\ny")
        );
        assert_eq!(kept_section("# B\n\n## Scale\n", POLICY_COST_HEADING), None);
    }

    fn phases(args: &[&str]) -> (bool, bool, bool) {
        let options = parse_options(args.iter().map(|arg| arg.to_string()));
        let options = options.unwrap_or_else(|error| panic!("{args:?}: {error}"));
        (
            options.runs_matrix(),
            options.runs_round_trip(),
            options.runs_scale(),
        )
    }

    #[test]
    fn the_only_and_no_options_pick_the_phases() {
        assert_eq!(phases(&[]), (true, true, true));
        assert_eq!(phases(&["--quick"]), (true, true, true));
        assert_eq!(phases(&["--no-rtt"]), (true, false, true));
        assert_eq!(phases(&["--no-scale"]), (true, true, false));
        assert_eq!(phases(&["--no-rtt", "--no-scale"]), (true, false, false));
        assert_eq!(phases(&["--scale-only"]), (false, false, true));
        assert_eq!(phases(&["--rtt-only"]), (false, true, false));
        assert_eq!(phases(&["--rtt-only", "--scale-only"]), (false, true, true));
        assert!(plan(&parse_options(["--rtt-only".to_owned()]).unwrap()).is_empty());
        assert!(parse_options(["--no-such".to_owned()]).is_err());
    }

    #[test]
    fn a_matrix_run_keeps_every_scripts_section_in_order() {
        let existing = "# Benchmarks\n\n## Scale\n\nold\n\n## Policy layer cost (Ir)\n\np\n\n\
            ## Call paths (instruction counts)\n\nc\n\n## Allocations per call\n\n| a |\n\n";
        let report = "# Benchmarks\n\n## Scale\n\nnew\n".to_owned();
        assert_eq!(
            keep_sections(report, existing),
            "# Benchmarks\n\n## Scale\n\nnew\n\n## Policy layer cost (Ir)\n\np\n\n\
             ## Call paths (instruction counts)\n\nc\n\n## Allocations per call\n\n| a |\n"
        );
        // Docs with only the allocations section keep it alone.
        let existing = "# Benchmarks\n\n## Allocations per call\n\nx\n";
        assert_eq!(
            keep_sections("# Benchmarks\n".to_owned(), existing),
            "# Benchmarks\n\n## Allocations per call\n\nx\n"
        );
        assert_eq!(
            keep_sections("# B\n".to_owned(), "# B\n\n## Scale\n"),
            "# B\n"
        );
    }
}
