//! Serving one accepted connection: optional TLS handshake, then HTTP/2.

use std::future::pending;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::registry::ConnectionGuard;
use crate::service::EchoService;

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How every connection of a server is served.
pub(crate) struct ConnectionConfig {
    pub(crate) http: http2::Builder<TokioExecutor>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) max_age: Option<Duration>,
    /// Every unary call waits this long first.
    pub(crate) unary_delay: Option<Duration>,
    /// Every unary call fails with this status code.
    pub(crate) unary_failure: Option<i32>,
    /// The health service's states, when the server has one.
    pub(crate) health: Option<std::sync::Arc<crate::health::HealthStates>>,
}

/// An accepted socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Serves one connection until it closes, the server shuts down or its
/// task is aborted. `guard` marks it closed on the way out.
pub(crate) async fn run(
    stream: Stream,
    config: Arc<ConnectionConfig>,
    service: EchoService,
    shutdown: watch::Receiver<bool>,
    guard: ConnectionGuard,
) {
    let result = match stream {
        Stream::Tcp(io) => secure_then_serve(io, &config, service, shutdown).await,
        Stream::Unix(io) => secure_then_serve(io, &config, service, shutdown).await,
    };
    if let Err(error) = result {
        debug!(connection = guard.id(), %error, "test server connection failed");
    }
}

async fn secure_then_serve<I>(
    io: I,
    config: &ConnectionConfig,
    service: EchoService,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(acceptor) = &config.tls else {
        return serve_http(io, config, service, shutdown).await;
    };
    let tls = tokio::select! {
        tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)) => tls??,
        () = shutdown_signalled(&mut shutdown) => return Ok(()),
    };
    serve_http(tls, config, service, shutdown).await
}

async fn serve_http<I>(
    io: I,
    config: &ConnectionConfig,
    service: EchoService,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut connection = pin!(config.http.serve_connection(TokioIo::new(io), service));
    let max_age = config.max_age;
    let mut aged = pin!(async move {
        match max_age {
            Some(age) => tokio::time::sleep(age).await,
            None => pending().await,
        }
    });
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => return result.map_err(Into::into),
            () = &mut aged, if !draining => {
                debug!("test server connection reached its max age");
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            () = shutdown_signalled(&mut shutdown), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Resolves once the server asks its connections to shut down (or is gone).
async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a shutdown too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
