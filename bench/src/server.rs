//! The echo server in a child process, so the client's CPU figures are its own.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use grpcpool_testserver::TestCa;

use crate::clients::Transport;

/// A running child server and what a client needs to reach it.
pub struct ChildServer {
    child: Child,
    pub target: String,
    pub transport: Transport,
    /// The CA that signed the server's certificate (TLS only).
    pub ca_pem: Option<String>,
    /// The server key's algorithm (TLS only).
    pub key_kind: &'static str,
    directory: PathBuf,
}

impl ChildServer {
    pub fn start(transport: Transport) -> Result<ChildServer, Box<dyn std::error::Error>> {
        let directory = std::env::temp_dir().join(format!("grpcpool-bench-{}", std::process::id()));
        std::fs::create_dir_all(&directory)?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
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
            command.arg("--tls-cert-dir").arg(&directory);
            ca_pem = Some(ca.ca_pem());
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout from the server")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| format!("unexpected server output {line:?}"))?;
        let scheme = if transport == Transport::Tls {
            "https"
        } else {
            "http"
        };
        Ok(ChildServer {
            child,
            target: format!("{scheme}://127.0.0.1:{port}"),
            transport,
            ca_pem,
            key_kind,
            directory,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
