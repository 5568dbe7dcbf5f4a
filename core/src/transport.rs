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

use crate::batched_writes::{BatchedIo, BatchedWrites};
use crate::config::Config;
use crate::socket::Socket;
use crate::target::{Address, Security, Target};

/// The byte stream under one HTTP/2 connection.
pub(crate) enum Stream {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
}

/// What h2 reads and writes: the stream, its writes batched while the driver says so.
pub(crate) type Io = BatchedIo<Stream>;

/// An HTTP/2 connection fresh from its handshake, not yet driven.
pub(crate) struct Handshaken {
    pub(crate) send: h2::client::SendRequest<Bytes>,
    pub(crate) connection: h2::client::Connection<Io, Bytes>,
    /// The connection's stream, for its driver to begin and end rounds on.
    pub(crate) writes: Arc<BatchedWrites<Stream>>,
}

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
        let stream = match address {
            Address::Unix(path) => Stream::Plain(Socket::Unix(
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
                        Stream::Tls(Box::new(stream))
                    }
                    Security::Plaintext => Stream::Plain(Socket::Tcp(stream)),
                }
            }
        };
        let writes = BatchedWrites::new(stream);
        let (send, connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(self.config.initial_stream_window_size)
            .initial_connection_window_size(self.config.initial_connection_window_size)
            .max_header_list_size(64 * 1024)
            .handshake(BatchedIo(Arc::clone(&writes)))
            .await
            .map_err(|error| format!("HTTP/2 handshake with {address}: {error}"))?;
        Ok(Handshaken {
            send,
            connection,
            writes,
        })
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

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(socket) => socket.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
