//! Binding a TCP or unix listener and the accept loop.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::watch;
use tracing::debug;

use crate::connection::{self, ConnectionConfig, Stream};
use crate::registry::Registry;
use crate::service::EchoService;

/// Pause after a failed accept (for instance out of file descriptors).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// A bound listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Listens on `ip:port` (any free port for 0), with SO_REUSEADDR so a restarted server
    /// can take the port of a killed one.
    pub(crate) fn bind_tcp(ip: Ipv4Addr, port: u16) -> io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((ip, port)))?;
        Ok(Self::Tcp(socket.listen(1024)?))
    }

    /// Listens on a unix socket at `path`, replacing a stale socket file.
    pub(crate) fn bind_unix(path: &Path) -> io::Result<Self> {
        remove_socket_file(path)?;
        Ok(Self::Unix(UnixListener::bind(path)?))
    }

    /// The bound TCP address; `None` for a unix socket.
    pub(crate) fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        match self {
            Self::Tcp(listener) => listener.local_addr().map(Some),
            Self::Unix(_) => Ok(None),
        }
    }

    /// Accepts one connection; the peer address is `None` for unix sockets.
    async fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>)> {
        match self {
            Self::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                if let Err(error) = stream.set_nodelay(true) {
                    debug!(%error, "could not set TCP_NODELAY");
                }
                Ok((Stream::Tcp(stream), Some(peer)))
            }
            Self::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                Ok((Stream::Unix(stream), None))
            }
        }
    }
}

/// Removes the unix socket at `path` if there is one; leaves other files alone.
pub(crate) fn remove_socket_file(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Accepts connections forever, each served on its own task.
pub(crate) async fn accept_loop(
    listener: Listener,
    config: Arc<ConnectionConfig>,
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
) {
    // The address every answer with `x-report-calls` names as the server's (unix: none).
    let served_by = listener
        .local_addr()
        .ok()
        .flatten()
        .and_then(|address| http::HeaderValue::from_str(&address.to_string()).ok());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%error, "test server accept failed");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        let (guard, counters) = registry.connection_opened();
        debug!(
            connection = guard.id(),
            ?peer,
            "test server accepted a connection"
        );
        let task = tokio::spawn(connection::run(
            stream,
            Arc::clone(&config),
            EchoService::new(
                counters,
                config.unary_delay,
                config.unary_failure,
                config.health.clone(),
                served_by.clone(),
            ),
            shutdown.clone(),
            guard,
        ));
        registry.track(task.abort_handle());
    }
}
