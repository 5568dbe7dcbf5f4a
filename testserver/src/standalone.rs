//! The test server as a process of its own, for C tests and benchmarks that must not share
//! a process (or CPU accounting) with the server.
//!
//! Arguments: `--port N` (default any), `--ip A` (a loopback address to listen on, default
//! 127.0.0.1), `--max-streams N` (default 1024), `--tls-cert-dir DIR`
//! (serve TLS with `DIR/server.pem` and `DIR/server.key`), `--tls-out DIR` (make a CA and a
//! server certificate for `localhost` and `127.0.0.1`, write the CA to `DIR/ca.pem`, serve
//! TLS), `--worker-threads N` (default 2). Prints `LISTENING <port>` once it accepts calls,
//! then serves until killed.

use std::error::Error;
use std::io::Write as _;
use std::path::PathBuf;

use crate::{ServerOptions, ServerTls, TestCa, TestServer};

/// Parses `args` (without the program name), starts the server and serves until killed.
pub fn serve(args: &[String]) -> Result<(), Box<dyn Error>> {
    let mut options = ServerOptions {
        max_concurrent_streams: Some(1024),
        ..ServerOptions::default()
    };
    let mut worker_threads = 2;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => options.port = value()?.parse()?,
            "--ip" => options.ip = Some(value()?.parse()?),
            "--max-streams" => options.max_concurrent_streams = Some(value()?.parse()?),
            "--worker-threads" => worker_threads = value()?.parse()?,
            "--tls-cert-dir" => {
                let directory = PathBuf::from(value()?);
                options.tls = Some(ServerTls {
                    cert_pem: std::fs::read_to_string(directory.join("server.pem"))?,
                    key_pem: std::fs::read_to_string(directory.join("server.key"))?,
                    client_ca_pem: None,
                });
            }
            "--tls-out" => {
                let directory = PathBuf::from(value()?);
                let ca = TestCa::new()?;
                let (cert_pem, key_pem) = ca.server_cert(&["localhost", "127.0.0.1"])?;
                std::fs::create_dir_all(&directory)?;
                std::fs::write(directory.join("ca.pem"), ca.ca_pem())?;
                options.tls = Some(ServerTls {
                    cert_pem,
                    key_pem,
                    client_ca_pem: None,
                });
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = TestServer::start(options).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "LISTENING {}", server.port())?;
        stdout.flush()?;
        std::future::pending::<()>().await;
        Ok(())
    })
}
