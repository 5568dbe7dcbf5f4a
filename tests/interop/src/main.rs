//! The gRPC interop client cases (shared/interop-facts.md) run through grpcpool against the
//! grpc-go interop server, plaintext and TLS (a CA made here, checked with a server-name
//! override). Prints each case, then `N passed, N failed` per face and transport and in all;
//! exits 1 on any failure.
//!
//! `grpcpool-interop [--server PATH] [--face NAME=COMMAND]...`: PATH defaults to
//! `$GRPCPOOL_INTEROP_SERVER`, else `$(go env GOPATH)/bin/server` (from
//! `go install google.golang.org/grpc/interop/server@v1.85.0`).
//!
//! Each `--face` is another face's interop client (C, Python, Node), run with `sh -c COMMAND`
//! against the same servers after the core's cases. It gets `GRPCPOOL_INTEROP_TARGET`, and for
//! TLS `GRPCPOOL_INTEROP_CA_FILE` and `GRPCPOOL_INTEROP_SERVER_NAME`; it prints a line per case
//! and last `N passed, M failed`, and exits non-zero on any failure.

mod cases;
mod compression;
mod messages;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grpcpool_core::{Config, Pool};
use grpcpool_testserver::TestCa;

/// The name the test certificate is issued for, reached by address with an override.
const SERVER_NAME: &str = "interop.grpcpool.test";

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_server(binary: &Path, tls: Option<(&Path, &Path)>) -> Result<Server, String> {
    let port = free_port().map_err(|error| error.to_string())?;
    let mut command = Command::new(binary);
    command
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((cert, key)) = tls {
        command
            .arg("--use_tls=true")
            .arg(format!("--tls_cert_file={}", cert.display()))
            .arg(format!("--tls_key_file={}", key.display()));
    }
    let child = command
        .spawn()
        .map_err(|error| format!("starting {}: {error}", binary.display()))?;
    let server = Server { child, port };
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("the interop server did not listen on {port}"))
}

/// Another face's interop client: a name and the shell command that runs it.
struct Face {
    name: String,
    command: String,
}

/// The command line: the server binary, if given, and the faces.
struct Args {
    server: Option<PathBuf>,
    faces: Vec<Face>,
}

fn parse_args() -> Result<Args, String> {
    let mut parsed = Args {
        server: None,
        faces: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => {
                let path = args.next().ok_or("--server needs a path")?;
                parsed.server = Some(PathBuf::from(path));
            }
            "--face" => {
                let spec = args.next().ok_or("--face needs NAME=COMMAND")?;
                let (name, command) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("--face {spec:?}: expected NAME=COMMAND"))?;
                parsed.faces.push(Face {
                    name: name.to_owned(),
                    command: command.to_owned(),
                });
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

/// Runs one face's client against one server; returns (passed, failed).
fn run_face(face: &Face, label: &str, target: &str, tls: Option<(&Path, &str)>) -> (usize, usize) {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&face.command)
        .env("GRPCPOOL_INTEROP_TARGET", target)
        .env_remove("GRPCPOOL_INTEROP_CA_FILE")
        .env_remove("GRPCPOOL_INTEROP_SERVER_NAME")
        .stderr(Stdio::inherit());
    if let Some((ca_file, server_name)) = tls {
        command
            .env("GRPCPOOL_INTEROP_CA_FILE", ca_file)
            .env("GRPCPOOL_INTEROP_SERVER_NAME", server_name);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => {
            println!("  FAIL {} {label}: could not start: {error}", face.name);
            println!("{} {label}: 0 passed, 1 failed", face.name);
            return (0, 1);
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        // Case lines, labelled with the face and transport like the core's.
        let case = line
            .strip_prefix("  ")
            .and_then(|line| line.split_once(' '));
        if let Some((mark, rest)) = case {
            println!("  {mark:<4} {} {label} {}", face.name, rest.trim_start());
        }
    }
    let counts = stdout.lines().rev().find_map(parse_counts);
    let (passed, mut failed) = counts.unwrap_or((0, 0));
    if counts.is_none() || (!output.status.success() && failed == 0) {
        // A client that crashed or printed no tally counts as one more failure.
        println!(
            "  FAIL {} {label}: the client ended with {} without a passing tally",
            face.name, output.status
        );
        failed += 1;
    }
    println!("{} {label}: {passed} passed, {failed} failed", face.name);
    (passed, failed)
}

/// Reads `N passed, M failed`.
fn parse_counts(line: &str) -> Option<(usize, usize)> {
    let (passed, failed) = line.trim().split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

fn server_binary(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path);
    }
    if let Some(path) = std::env::var_os("GRPCPOOL_INTEROP_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let output = Command::new("go")
        .args(["env", "GOPATH"])
        .output()
        .map_err(|error| format!("go env GOPATH: {error}"))?;
    let gopath = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(PathBuf::from(gopath).join("bin/server"))
}

/// Runs every case against one server; returns (passed, failed).
fn run_transport(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    target: &str,
    config: &Config,
) -> (usize, usize) {
    let make_pool = || Pool::new(config.clone());
    let (mut passed, mut failed) = (0, 0);
    let pool = match make_pool() {
        Ok(pool) => pool,
        Err(error) => {
            println!("  FAIL every case: {error}");
            return (0, cases::CASES.len());
        }
    };
    let fresh = || make_pool().unwrap_or_else(|_| pool.clone());
    let context = cases::Context {
        pool: &pool,
        target,
        new_pool: &fresh,
    };
    for name in cases::CASES {
        let started = Instant::now();
        let outcome = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), cases::run(name, &context))
                .await
                .unwrap_or_else(|_| Err("no result within 60 s".to_owned()))
        });
        match outcome {
            Ok(()) => {
                passed += 1;
                println!(
                    "  ok   {label} {name} ({} ms)",
                    started.elapsed().as_millis()
                );
            }
            Err(reason) => {
                failed += 1;
                println!("  FAIL {label} {name}: {reason}");
            }
        }
    }
    let not_applicable = runtime.block_on(compression::unsupported_because(&pool, target));
    match &not_applicable {
        Some(reason) => {
            for name in compression::CASES {
                println!("  n/a  {label} {name}: {reason}");
            }
        }
        None => {
            for name in compression::CASES {
                let started = Instant::now();
                let outcome = runtime.block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(60),
                        compression::run(name, &pool, target),
                    )
                    .await
                    .unwrap_or_else(|_| Err("no result within 60 s".to_owned()))
                });
                match outcome {
                    Ok(()) => {
                        passed += 1;
                        println!(
                            "  ok   {label} {name} ({} ms)",
                            started.elapsed().as_millis()
                        );
                    }
                    Err(reason) => {
                        failed += 1;
                        println!("  FAIL {label} {name}: {reason}");
                    }
                }
            }
        }
    }
    let skipped = if not_applicable.is_some() {
        format!(
            ", {} not applicable (the server cannot run the compression cases)",
            compression::CASES.len()
        )
    } else {
        String::new()
    };
    println!("core {label}: {passed} passed, {failed} failed{skipped}");
    (passed, failed)
}

fn main() {
    let outcome = run();
    match outcome {
        Ok((passed, failed)) => {
            println!("interop: {passed} passed, {failed} failed");
            if failed > 0 {
                std::process::exit(1);
            }
        }
        Err(error) => {
            eprintln!("grpcpool-interop: {error}");
            println!("interop: 0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(usize, usize), String> {
    let args = parse_args()?;
    let binary = server_binary(args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;

    let directory = std::env::temp_dir().join(format!("grpcpool-interop-{}", std::process::id()));
    std::fs::create_dir_all(&directory).map_err(|error| error.to_string())?;
    let ca = TestCa::new().map_err(|error| error.to_string())?;
    let (cert, key) = ca
        .server_cert(&[SERVER_NAME])
        .map_err(|error| error.to_string())?;
    let (cert_path, key_path) = (directory.join("server.pem"), directory.join("server.key"));
    let ca_path = directory.join("ca.pem");
    std::fs::write(&cert_path, cert).map_err(|error| error.to_string())?;
    std::fs::write(&key_path, key).map_err(|error| error.to_string())?;
    std::fs::write(&ca_path, ca.ca_pem()).map_err(|error| error.to_string())?;

    let mut config = Config::default();
    config.acquire_timeout = Duration::from_secs(10);
    let plain = start_server(&binary, None)?;
    let target = format!("http://127.0.0.1:{}", plain.port);
    let (mut passed, mut failed) = run_transport(&runtime, "plaintext", &target, &config);
    for face in &args.faces {
        let (face_passed, face_failed) = run_face(face, "plaintext", &target, None);
        passed += face_passed;
        failed += face_failed;
    }
    drop(plain);

    let tls = start_server(&binary, Some((&cert_path, &key_path)))?;
    config.tls.ca_pem = Some(ca.ca_pem().into_bytes());
    config.tls.server_name_override = Some(SERVER_NAME.to_owned());
    let target = format!("https://127.0.0.1:{}", tls.port);
    let (tls_passed, tls_failed) = run_transport(&runtime, "tls", &target, &config);
    passed += tls_passed;
    failed += tls_failed;
    for face in &args.faces {
        let (face_passed, face_failed) =
            run_face(face, "tls", &target, Some((&ca_path, SERVER_NAME)));
        passed += face_passed;
        failed += face_failed;
    }
    drop(tls);
    let _ = std::fs::remove_dir_all(&directory);
    Ok((passed, failed))
}
