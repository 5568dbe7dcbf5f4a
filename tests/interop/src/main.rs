//! The gRPC interop client cases (shared/interop-facts.md) run through grpcpool against the
//! grpc-go interop server, plaintext and TLS (a CA made here, checked with a server-name
//! override). Prints each case, then `N passed, N failed` per face and transport and in all;
//! exits 1 on any failure.
//!
//! `grpcpool-interop [--server PATH]`: PATH defaults to `$GRPCPOOL_INTEROP_SERVER`, else
//! `$(go env GOPATH)/bin/server` (from `go install google.golang.org/grpc/interop/server@v1.85.0`).

mod cases;
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

fn server_binary() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--server" {
            return args
                .next()
                .map(PathBuf::from)
                .ok_or_else(|| "--server needs a path".to_owned());
        }
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
    println!("core {label}: {passed} passed, {failed} failed");
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
    let binary = server_binary()?;
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
    std::fs::write(&cert_path, cert).map_err(|error| error.to_string())?;
    std::fs::write(&key_path, key).map_err(|error| error.to_string())?;

    let mut config = Config::default();
    config.acquire_timeout = Duration::from_secs(10);
    let plain = start_server(&binary, None)?;
    let (mut passed, mut failed) = run_transport(
        &runtime,
        "plaintext",
        &format!("http://127.0.0.1:{}", plain.port),
        &config,
    );
    drop(plain);

    let tls = start_server(&binary, Some((&cert_path, &key_path)))?;
    config.tls.ca_pem = Some(ca.ca_pem().into_bytes());
    config.tls.server_name_override = Some(SERVER_NAME.to_owned());
    let (tls_passed, tls_failed) = run_transport(
        &runtime,
        "tls",
        &format!("https://127.0.0.1:{}", tls.port),
        &config,
    );
    drop(tls);
    let _ = std::fs::remove_dir_all(&directory);
    passed += tls_passed;
    failed += tls_failed;
    Ok((passed, failed))
}
