//! The xDS control plane of the xDS tests: tests/xds, a Go program around go-control-plane's
//! snapshot cache and ADS server, built once per test run with `go build` and fed snapshots
//! over stdin. It reports on stdout every ACK and NACK it receives.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The built program, once per test binary.
fn binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/xds");
        let output = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xds-control-plane");
        // -mod=readonly: go.mod and go.sum pin every module; the module proxy serves them.
        let status = Command::new("go")
            .args(["build", "-mod=readonly", "-o"])
            .arg(&output)
            .arg(".")
            .current_dir(&source)
            .status()
            .expect("the xDS tests need Go (`go` on PATH) to build tests/xds");
        assert!(status.success(), "go build of tests/xds failed");
        output
    })
}

/// What the program printed so far, one line each.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    added: Condvar,
}

/// A running control plane.
pub struct ControlPlane {
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Lines>,
    port: u16,
}

impl ControlPlane {
    /// Starts the program on any free loopback port.
    pub fn start() -> ControlPlane {
        ControlPlane::on_port(0)
    }

    /// Starts the program on `port` (0: any).
    pub fn on_port(port: u16) -> ControlPlane {
        ControlPlane::with_args(&["-port", &port.to_string()])
    }

    /// Starts the program on any free port serving ADS over TLS with the PEM files given.
    pub fn over_tls(cert: &Path, key: &Path) -> ControlPlane {
        let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
        ControlPlane::with_args(&["-port", "0", "-tls-cert", &cert, "-tls-key", &key])
    }

    fn with_args(args: &[&str]) -> ControlPlane {
        let mut child = Command::new(binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the control plane");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Lines::default());
        let writer = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                writer.lines.lock().unwrap().push(line);
                writer.added.notify_all();
            }
        });
        let mut plane = ControlPlane {
            child,
            stdin,
            lines,
            port: 0,
        };
        let listening = plane.wait_for(Duration::from_secs(20), |line| {
            line.starts_with("listening ")
        });
        plane.port = listening
            .trim_start_matches("listening ")
            .parse()
            .expect("a port");
        plane
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A bootstrap naming this control plane.
    pub fn bootstrap(&self) -> String {
        self.bootstrap_via(self.port)
    }

    /// A bootstrap naming this control plane at `port` (a proxy in front of it).
    pub fn bootstrap_via(&self, port: u16) -> String {
        self.bootstrap_with(port, "insecure")
    }

    /// A bootstrap naming this control plane with `channel_creds` of type `creds`.
    pub fn bootstrap_with(&self, port: u16, creds: &str) -> String {
        json!({
            "xds_servers": [{
                "server_uri": format!("127.0.0.1:{port}"),
                "channel_creds": [{"type": creds}],
                "server_features": ["xds_v3"]
            }],
            "node": {"id": "grpcpool-test", "cluster": "tests", "metadata": {"suite": "xds"}}
        })
        .to_string()
    }

    /// Sets a snapshot and waits until the cache holds it.
    pub fn set(&mut self, snapshot: &Value) {
        let version = snapshot["version"].as_str().expect("a version").to_owned();
        writeln!(self.stdin, "{snapshot}").expect("write the snapshot");
        self.stdin.flush().expect("flush");
        let applied = format!("applied {version}");
        self.wait_for(Duration::from_secs(10), |line| {
            line == applied || line.starts_with("error ")
        });
        assert!(
            self.has(|line| line == applied),
            "the control plane refused snapshot {version}: {:?}",
            self.lines()
        );
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lines.lock().unwrap().clone()
    }

    /// Whether some line so far matches.
    pub fn has(&self, matches: impl Fn(&str) -> bool) -> bool {
        self.lines
            .lines
            .lock()
            .unwrap()
            .iter()
            .any(|line| matches(line))
    }

    /// The first line that matches, waiting up to `limit` for it (panics without one).
    pub fn wait_for(&self, limit: Duration, matches: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + limit;
        let mut lines = self.lines.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|line| matches(line)) {
                return line.clone();
            }
            let now = Instant::now();
            assert!(
                now < until,
                "no such line from the control plane: {lines:?}"
            );
            lines = self.lines.added.wait_timeout(lines, until - now).unwrap().0;
        }
    }

    /// Kills the program at once (no goodbye to its clients).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One endpoint: `127.0.0.x:port` with a weight and health.
pub fn endpoint(address: std::net::SocketAddr, weight: u32) -> Value {
    json!({"address": address.ip().to_string(), "port": address.port(), "weight": weight})
}

/// A snapshot of listener `svc` routing every path to `clusters` (name, weight), each
/// cluster with its endpoints.
pub fn snapshot(version: &str, routes: Value, clusters: Value) -> Value {
    json!({
        "version": version,
        "listener": "svc",
        "routes": routes,
        "clusters": clusters,
    })
}

/// One route sending paths with `prefix` to `clusters` by weight.
pub fn route(prefix: &str, clusters: &[(&str, u32)]) -> Value {
    json!({
        "prefix": prefix,
        "clusters": clusters
            .iter()
            .map(|(name, weight)| json!({"name": name, "weight": weight}))
            .collect::<Vec<_>>(),
    })
}

/// A ROUND_ROBIN EDS cluster with `endpoints`.
pub fn cluster(name: &str, endpoints: Vec<Value>) -> Value {
    json!({"name": name, "lb": "ROUND_ROBIN", "endpoints": endpoints})
}

/// A loopback TCP proxy in front of the control plane whose connections so far can be
/// frozen: bytes stop flowing both ways but the sockets stay open, as behind a dead network.
/// Connections made after a freeze flow.
pub struct FreezingProxy {
    port: u16,
    frozen_below: Arc<std::sync::atomic::AtomicU64>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezingProxy {
    /// Proxies 127.0.0.1:(a free port) to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> FreezingProxy {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen_below = Arc::new(AtomicU64::new(0));
        let next_id = Arc::new(AtomicU64::new(0));
        let (frozen, ids) = (Arc::clone(&frozen_below), Arc::clone(&next_id));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = ids.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let is_frozen = {
                    let frozen = Arc::clone(&frozen);
                    move || id < frozen.load(Ordering::SeqCst)
                };
                tokio::spawn(pump(client_read, server_write, is_frozen.clone()));
                tokio::spawn(pump(server_read, client_write, is_frozen));
            }
        });
        FreezingProxy {
            port,
            frozen_below,
            next_id,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Freezes every connection made so far.
    pub fn freeze(&self) {
        use std::sync::atomic::Ordering;
        let made = self.next_id.load(Ordering::SeqCst);
        self.frozen_below.store(made, Ordering::SeqCst);
    }

    /// How many connections the proxy took.
    pub fn connections(&self) -> u64 {
        self.next_id.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes until either side closes; while frozen, holds them.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: impl Fn() -> bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if frozen() {
            // Bounded: the test ends the runtime, and this task with it.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let read =
            match tokio::time::timeout(Duration::from_millis(50), from.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(read)) => read,
                Err(_) => continue,
            };
        while frozen() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
