//! [`TestServer`]: starting, observing and stopping the server.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::connection::ConnectionConfig;
use crate::health::HealthStates;
use crate::listener::{self, Listener};
use crate::registry::Registry;
use crate::tls;

/// How long [`TestServer::kill`] waits for the OS to free the port.
const PORT_FREE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two checks that the port is free.
const PORT_FREE_POLL: Duration = Duration::from_millis(10);

/// How to start a [`TestServer`]. The default is plaintext TCP on any free
/// port of 127.0.0.1 with no limits.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// TCP port on 127.0.0.1; 0 picks any free port. A fixed port lets a test
    /// restart a server where a killed one was.
    pub port: u16,
    /// Listen on this unix socket instead of TCP (`port` is then ignored).
    pub unix_path: Option<PathBuf>,
    /// Serve TLS with ALPN "h2".
    pub tls: Option<ServerTls>,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS to advertise; `None` advertises
    /// no limit.
    pub max_concurrent_streams: Option<u32>,
    /// Shut each connection down gracefully (GOAWAY, in-flight calls finish)
    /// once it is this old.
    pub max_connection_age: Option<Duration>,
    /// The loopback address to listen on instead of 127.0.0.1 (any of 127.0.0.0/8 works on
    /// Linux), so tests can have several servers behind one multi-address target.
    pub ip: Option<std::net::Ipv4Addr>,
    /// Every unary call waits this long before it is answered: a slow backend.
    pub unary_delay: Option<Duration>,
    /// Every unary call fails with this status code (1..=16): a broken backend.
    pub unary_failure: Option<i32>,
    /// Serve the standard health service (`grpc.health.v1.Health/Watch`); without it the
    /// health methods answer UNIMPLEMENTED.
    pub health: bool,
}

/// TLS settings of a [`TestServer`], all PEM.
#[derive(Clone, Default)]
pub struct ServerTls {
    /// Server certificate chain, leaf first.
    pub cert_pem: String,
    /// Private key of the leaf certificate.
    pub key_pem: String,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca_pem: Option<String>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("client_ca_pem", &self.client_ca_pem)
            .finish()
    }
}

/// An in-process gRPC server serving `/grpcpool.test.Echo/Unary` (see
/// the [crate docs](crate)). Dropping it aborts its listener and connections.
#[derive(Debug)]
pub struct TestServer {
    registry: Arc<Registry>,
    health: Option<Arc<HealthStates>>,
    local_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    tls: bool,
    accept_task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl TestServer {
    /// Binds as `options` say and spawns the accept loop on the current tokio
    /// runtime.
    pub async fn start(options: ServerOptions) -> io::Result<TestServer> {
        let tls = options.tls.as_ref().map(tls::acceptor).transpose()?;
        let listener = match &options.unix_path {
            Some(path) => Listener::bind_unix(path)?,
            None => Listener::bind_tcp(
                options.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST),
                options.port,
            )?,
        };
        let local_addr = listener.local_addr()?;
        let mut http = http2::Builder::new(TokioExecutor::new());
        http.timer(TokioTimer::new())
            .max_concurrent_streams(options.max_concurrent_streams);
        let health = options.health.then(|| Arc::new(HealthStates::new()));
        let config = Arc::new(ConnectionConfig {
            http,
            tls: tls.clone(),
            max_age: options.max_connection_age,
            unary_delay: options.unary_delay,
            unary_failure: options.unary_failure,
            health: health.clone(),
        });
        let registry = Arc::new(Registry::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept_task = tokio::spawn(listener::accept_loop(
            listener,
            config,
            Arc::clone(&registry),
            shutdown_rx,
        ));
        debug!(?local_addr, unix_path = ?options.unix_path, "test server started");
        Ok(TestServer {
            registry,
            health,
            local_addr,
            unix_path: options.unix_path,
            tls: tls.is_some(),
            accept_task,
            shutdown,
        })
    }

    /// The bound TCP address; `None` for a unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The bound TCP port; 0 for a unix socket.
    pub fn port(&self) -> u16 {
        self.local_addr.map_or(0, |addr| addr.port())
    }

    /// The target to dial: `http://127.0.0.1:PORT`, `https://localhost:PORT`
    /// with TLS, or `unix:/path` for a unix socket.
    pub fn target(&self) -> String {
        match (&self.unix_path, self.tls) {
            (Some(path), _) => format!("unix:{}", path.display()),
            (None, true) => format!("https://localhost:{}", self.port()),
            (None, false) => match self.local_addr {
                Some(addr) => format!("http://{addr}"),
                None => format!("http://127.0.0.1:{}", self.port()),
            },
        }
    }

    /// Connections accepted since start.
    pub fn connections_accepted(&self) -> u64 {
        self.registry.accepted()
    }

    /// Connections currently open.
    pub fn connections_open(&self) -> u64 {
        self.registry.open()
    }

    /// gRPC calls that reached the handler.
    pub fn calls_handled(&self) -> u64 {
        self.registry.calls()
    }

    /// Sets `service` ("" for the server as a whole) SERVING or NOT_SERVING in the health
    /// service; every watch hears it at once. Does nothing on a server started without
    /// [`ServerOptions::health`].
    pub fn set_serving(&self, service: &str, serving: bool) {
        if let Some(health) = &self.health {
            health.set(service, serving);
        }
    }

    /// Calls the client cancelled before the server answered them: a unary call before its
    /// response, a client-streaming or bidi call before its response headers.
    pub fn calls_cancelled(&self) -> u64 {
        self.registry.cancelled()
    }

    /// Calls handled on each connection, in accept order.
    pub fn calls_per_connection(&self) -> Vec<u64> {
        self.registry.calls_per_connection()
    }

    /// Stops like a crash: closes the listener, drops every open connection
    /// abruptly (no GOAWAY, in-flight calls fail) and returns once the port
    /// (or unix path) can be bound again.
    pub async fn kill(mut self) {
        self.stop_listening().await;
        self.registry.abort_all();
        self.registry.wait_all_closed().await;
        self.wait_address_free().await;
        debug!(local_addr = ?self.local_addr, "test server killed");
    }

    /// Stops gracefully: closes the listener, sends each connection a GOAWAY
    /// and returns once in-flight calls have finished and connections closed.
    pub async fn shutdown(mut self) {
        self.stop_listening().await;
        self.shutdown.send_replace(true);
        self.registry.wait_all_closed().await;
        debug!(local_addr = ?self.local_addr, "test server shut down");
    }

    async fn stop_listening(&mut self) {
        self.accept_task.abort();
        // The task ends cancelled; its listener is closed by then.
        let _ = (&mut self.accept_task).await;
    }

    async fn wait_address_free(&self) {
        if let Some(path) = &self.unix_path {
            if let Err(error) = listener::remove_socket_file(path) {
                debug!(%error, "could not remove the unix socket file");
            }
            return;
        }
        let Some(addr) = self.local_addr else { return };
        let deadline = tokio::time::Instant::now() + PORT_FREE_TIMEOUT;
        while !port_is_free(addr) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(PORT_FREE_POLL).await;
        }
    }
}

/// Whether a listener could bind `addr` now (with SO_REUSEADDR, as
/// [`TestServer::start`] does).
fn port_is_free(addr: SocketAddr) -> bool {
    let probe = || -> io::Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)
    };
    probe().is_ok()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.registry.abort_all();
        if let Some(path) = &self.unix_path {
            let _ = listener::remove_socket_file(path);
        }
    }
}
