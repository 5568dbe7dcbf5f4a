//! The servers, each in a child process so the client's CPU figures are its own: the tonic
//! echo server (grpcpool's test server) and the grpc-go interop server, plaintext or TLS.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grpcpool_testserver::TestCa;

use crate::clients::Transport;

/// Which server a cell runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// grpcpool's in-process tonic echo server (`grpcpool-bench serve`), raw-bytes echo.
    Tonic,
    /// The grpc-go interop server's `UnaryCall`.
    Go,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Tonic => "tonic",
            ServerKind::Go => "grpc-go",
        }
    }
}

/// The grpc-go interop server binary: `$GRPCPOOL_GO_SERVER`, else `go install`'s `server` in
/// GOPATH/bin (tests/interop/run.sh installs it).
pub fn go_server_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("GRPCPOOL_GO_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let gopath = Command::new("go")
        .args(["env", "GOPATH"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .or_else(|| std::env::var("HOME").ok().map(|home| format!("{home}/go")))
        .unwrap_or_default();
    let path = PathBuf::from(gopath).join("bin/server");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no grpc-go interop server at {} (go install google.golang.org/grpc/interop/server@v1.85.0)",
            path.display()
        ))
    }
}

/// A running child server and what a client needs to reach it.
pub struct ChildServer {
    child: Child,
    pub target: String,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// The unary method the drivers call.
    pub method: String,
    /// The CA that signed the server's certificate, as a file (TLS only).
    pub ca_file: Option<PathBuf>,
    /// The name the certificate is for (TLS only).
    pub server_name: Option<String>,
    /// The server key's algorithm (TLS only).
    pub key_kind: &'static str,
    directory: PathBuf,
}

impl ChildServer {
    pub fn start(
        kind: ServerKind,
        transport: Transport,
        cpu: Option<usize>,
    ) -> Result<ChildServer, Box<dyn std::error::Error>> {
        let directory = std::env::temp_dir().join(format!(
            "grpcpool-bench-{}-{}-{}",
            std::process::id(),
            kind.name(),
            transport.name()
        ));
        std::fs::create_dir_all(&directory)?;
        let mut command = match kind {
            ServerKind::Tonic => {
                let mut command = Command::new(std::env::current_exe()?);
                command.arg("serve");
                command
            }
            ServerKind::Go => Command::new(go_server_binary()?),
        };
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        if let Some(cpu) = cpu {
            crate::affinity::pin_command(&mut command, cpu);
        }
        let mut ca_pem = None;
        let mut key_kind = "";
        if transport == Transport::Tls {
            let ca = TestCa::new()?;
            let names = ["localhost", "127.0.0.1"];
            // RSA-2048, what most servers present, when openssl is there to make the key;
            // else rcgen's ECDSA P-256, whose handshake is cheaper.
            let (cert, key) = match rsa_key() {
                Some(key) => {
                    key_kind = "RSA-2048";
                    (ca.server_cert_for_key(&names, &key)?, key)
                }
                None => {
                    key_kind = "ECDSA P-256";
                    ca.server_cert(&names)?
                }
            };
            std::fs::write(directory.join("server.pem"), cert)?;
            std::fs::write(directory.join("server.key"), key)?;
            std::fs::write(directory.join("ca.pem"), ca.ca_pem())?;
            match kind {
                ServerKind::Tonic => {
                    command.arg("--tls-cert-dir").arg(&directory);
                }
                ServerKind::Go => {
                    command
                        .arg("--use_tls")
                        .arg(format!(
                            "--tls_cert_file={}",
                            directory.join("server.pem").display()
                        ))
                        .arg(format!(
                            "--tls_key_file={}",
                            directory.join("server.key").display()
                        ));
                }
            }
            ca_pem = Some(directory.join("ca.pem"));
        }
        let (child, port) = match kind {
            ServerKind::Tonic => {
                let mut child = command.spawn()?;
                let stdout = child.stdout.take().ok_or("no stdout from the server")?;
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line)?;
                let port: u16 = line
                    .trim()
                    .strip_prefix("LISTENING ")
                    .and_then(|port| port.parse().ok())
                    .ok_or_else(|| format!("unexpected server output {line:?}"))?;
                (child, port)
            }
            ServerKind::Go => {
                // A free port now; the server binds it a moment later.
                let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
                command.arg(format!("--port={port}"));
                let child = command.spawn()?;
                let deadline = Instant::now() + Duration::from_secs(10);
                while TcpStream::connect(("127.0.0.1", port)).is_err() {
                    if Instant::now() > deadline {
                        return Err(format!("the grpc-go server did not listen on {port}").into());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                (child, port)
            }
        };
        let scheme = if transport == Transport::Tls {
            "https"
        } else {
            "http"
        };
        Ok(ChildServer {
            child,
            target: format!("{scheme}://127.0.0.1:{port}"),
            port,
            method: match kind {
                ServerKind::Tonic => grpcpool_testserver::UNARY_PATH.to_owned(),
                ServerKind::Go => crate::driver::INTEROP_UNARY.to_owned(),
            },
            server_name: ca_pem.is_some().then(|| "localhost".to_owned()),
            ca_file: ca_pem,
            key_kind,
            directory,
        })
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// An RSA-2048 private key in PKCS#8 PEM from the openssl command, if it is installed.
fn rsa_key() -> Option<String> {
    let output = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let pem = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && pem.contains("BEGIN PRIVATE KEY")).then_some(pem)
}

/// `grpcpool-bench serve ARGS`: the test server's standalone mode in this process's child.
pub fn serve_child() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    grpcpool_testserver::standalone::serve(&args)
}
