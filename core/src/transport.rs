//! Dialing: a socket to one address, TLS where the target asks for it, then the HTTP/2 handshake.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::Config;
use crate::socket::Socket;
use crate::target::{Address, Security, Target};

/// The byte stream under one HTTP/2 connection.
pub(crate) enum Io {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
}

/// An HTTP/2 connection fresh from its handshake, not yet driven.
pub(crate) type Handshaken = (
    h2::client::SendRequest<Bytes>,
    h2::client::Connection<Io, Bytes>,
);

/// What a dial needs besides the address: settings and, for TLS, the shared client config.
pub(crate) struct Dialer {
    pub(crate) config: Arc<Config>,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Dialer {
    pub(crate) fn new(config: Arc<Config>) -> Dialer {
        Dialer {
            config,
            tls: OnceLock::new(),
        }
    }

    /// The TLS client config, built on first use (loading system roots costs time).
    pub(crate) fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_init(|| {
                crate::tls::client_config(&self.config.tls).map_err(|error| error.to_string())
            })
            .clone()
    }

    /// Connects to `address` and completes TLS and the HTTP/2 handshake within the connect timeout.
    pub(crate) async fn dial(
        &self,
        target: &Target,
        address: &Address,
    ) -> Result<Handshaken, String> {
        let attempt = self.dial_inner(target, address);
        match tokio::time::timeout(self.config.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "connecting to {address} timed out after {:?}",
                self.config.connect_timeout
            )),
        }
    }

    async fn dial_inner(&self, target: &Target, address: &Address) -> Result<Handshaken, String> {
        let io = match address {
            Address::Unix(path) => Io::Plain(Socket::Unix(
                UnixStream::connect(path)
                    .await
                    .map_err(|error| format!("connecting to {address}: {error}"))?,
            )),
            Address::Tcp(socket_address) => {
                let stream = TcpStream::connect(socket_address)
                    .await
                    .map_err(|error| format!("connecting to {address}: {error}"))?;
                self.tune(&stream)
                    .map_err(|error| format!("socket options on {address}: {error}"))?;
                match target.security {
                    Security::Tls => {
                        let tls = self.tls()?;
                        let name = crate::tls::server_name(&self.config.tls, target.tls_host())
                            .map_err(|error| error.to_string())?;
                        let stream = TlsConnector::from(tls)
                            .connect(name, Socket::Tcp(stream))
                            .await
                            .map_err(|error| format!("TLS handshake with {address}: {error}"))?;
                        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                            return Err(format!("{address} did not agree to HTTP/2 (ALPN h2)"));
                        }
                        Io::Tls(Box::new(stream))
                    }
                    Security::Plaintext => Io::Plain(Socket::Tcp(stream)),
                }
            }
        };
        h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(self.config.initial_stream_window_size)
            .initial_connection_window_size(self.config.initial_connection_window_size)
            .max_header_list_size(64 * 1024)
            .handshake(io)
            .await
            .map_err(|error| format!("HTTP/2 handshake with {address}: {error}"))
    }

    fn tune(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(self.config.tcp_nodelay)?;
        if let Some(idle) = self.config.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(idle);
            socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)?;
        }
        Ok(())
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(socket) => Pin::new(socket).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(socket) => Pin::new(socket).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(socket) => Pin::new(socket).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(socket) => socket.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(socket) => Pin::new(socket).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(socket) => Pin::new(socket).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
