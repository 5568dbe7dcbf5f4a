//! A userspace TCP delay proxy: an emulated long link between a client and a server on
//! loopback, for kernels without netem.
//!
//! [`DelayProxy::start`] listens on 127.0.0.1 in front of an upstream address and holds every
//! byte for a fixed one-way delay D in each direction. Throughput is not serialised: each chunk
//! read is queued with the deadline `read_at + D` and written once that has passed, so any
//! number of chunks can be in flight within one D, as on a link with a large window. EOF
//! (half-close) crosses the link after D like the bytes before it; a reset, or a failed write to
//! either side, closes both sides (with RST).
//!
//! The kernel completes a client's TCP handshake with the proxy's listener at once, so the proxy
//! charges it instead: a new connection is held for one round trip (2·D, the SYN and SYN-ACK
//! crossing) before the proxy dials upstream and reads the client's first bytes. A client that
//! dials per call therefore pays the handshake it would pay on a real link.
//!
//! The proxy runs on a tokio runtime and thread of its own, so inside the harness its CPU is not
//! billed to a client driver (a child process). Waits use a timerfd where there is one: tokio's
//! timer rounds every sleep up to a whole millisecond, which at D = 1 ms would add up to 1 ms a
//! hop. `grpcpool-bench delay-proxy --upstream HOST:PORT --delay-ms N` runs one standalone.

use std::io::{self, Write as _};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// The most one read takes off a socket.
const CHUNK: usize = 64 * 1024;
/// Bytes queued at most per direction of a connection: past that the proxy stops reading, so a
/// receiver that does not read holds the sender back (TCP's window, at the proxy).
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// A running delay proxy; it stops, closing every connection it carries, when dropped.
pub struct DelayProxy {
    port: u16,
    accepted: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl DelayProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`, each
    /// byte delayed by `delay` in each direction.
    pub fn start(upstream: SocketAddr, delay: Duration) -> io::Result<DelayProxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("delay-proxy")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let listener = {
            // Registering the socket needs the runtime's reactor.
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&accepted);
        runtime.spawn(accept_loop(listener, upstream, delay, counter));
        Ok(DelayProxy {
            port,
            accepted,
            runtime: Some(runtime),
        })
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far: how many a client opened through it.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        // Dropping the tasks closes their sockets; shutting down in the background cannot
        // block, nor panic when the proxy is dropped inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    delay: Duration,
    accepted: Arc<AtomicU64>,
) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(carry(client, upstream, delay));
            }
            // Out of descriptors, or a connection reset before it was accepted: the listener
            // itself is fine, so wait a moment rather than spin or stop.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Carries one connection until both directions have ended, or either failed.
async fn carry(mut client: TcpStream, upstream: SocketAddr, delay: Duration) {
    let accepted_at = Instant::now();
    let Ok(mut to_server) = Clock::new() else {
        return;
    };
    let Ok(mut to_client) = Clock::new() else {
        return;
    };
    // The handshake's round trip, which loopback did not charge the client (module docs).
    if to_server
        .sleep_until(accepted_at + 2 * delay)
        .await
        .is_err()
    {
        return;
    }
    // Failing to reach the server drops the client's socket: it sees the connection close.
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    // Nagle would hold small writes back for an ACK that is now a round trip away.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let result = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let (up_send, up_queue) = mpsc::unbounded_channel();
        let (down_send, down_queue) = mpsc::unbounded_channel();
        let readers = async {
            tokio::join!(
                read_side(client_read, up_send, delay),
                read_side(server_read, down_send, delay)
            );
            Ok(())
        };
        tokio::try_join!(
            readers,
            write_side(server_write, up_queue, &mut to_server),
            write_side(client_write, down_queue, &mut to_client)
        )
    };
    if result.is_err() {
        // A reset, or a side gone: make the other side see it as abruptly, not as a clean EOF.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}

/// What crosses the link: bytes (holding their share of the queue's budget), an EOF or a reset.
enum Item {
    Data(Bytes, OwnedSemaphorePermit),
    Eof,
    Reset,
}

/// An item and when it reaches the far side.
struct Queued {
    deadline: Instant,
    item: Item,
}

/// Reads `from` until EOF or an error, queueing each chunk with its deadline.
async fn read_side(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    queue: mpsc::UnboundedSender<Queued>,
    delay: Duration,
) {
    let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = from.read(&mut buffer).await;
        // Stamped on arrival: a wait for budget below must not move the deadline.
        let deadline = Instant::now() + delay;
        let (item, last) = match read {
            Ok(0) => (Item::Eof, true),
            Ok(n) => {
                // n <= CHUNK, far below u32::MAX and below the semaphore's size.
                let Ok(permit) = Arc::clone(&budget).acquire_many_owned(n as u32).await else {
                    return;
                };
                (
                    Item::Data(Bytes::copy_from_slice(&buffer[..n]), permit),
                    false,
                )
            }
            Err(_) => (Item::Reset, true),
        };
        if queue.send(Queued { deadline, item }).is_err() || last {
            return;
        }
    }
}

/// Writes each queued item to `to` once its deadline has passed; `Err` on a reset or a failed
/// write, which ends the connection.
async fn write_side(
    mut to: tokio::net::tcp::WriteHalf<'_>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    clock: &mut Clock,
) -> io::Result<()> {
    while let Some(Queued { deadline, item }) = queue.recv().await {
        clock.sleep_until(deadline).await?;
        match item {
            Item::Data(bytes, _permit) => to.write_all(&bytes).await?,
            Item::Eof => {
                to.shutdown().await?;
                return Ok(());
            }
            Item::Reset => return Err(io::ErrorKind::ConnectionReset.into()),
        }
    }
    // The reader ended without an EOF or a reset only when the connection is being torn down.
    Ok(())
}

/// Sleeps to a deadline to the microsecond: a timerfd on Linux, tokio's millisecond timer
/// elsewhere or when the timerfd cannot be made.
enum Clock {
    #[cfg(target_os = "linux")]
    TimerFd(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>),
    Coarse,
}

impl Clock {
    fn new() -> io::Result<Clock> {
        #[cfg(target_os = "linux")]
        if let Some(fd) = timerfd::create() {
            return Ok(Clock::TimerFd(timerfd::register(fd)?));
        }
        Ok(Clock::Coarse)
    }

    async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        match self {
            #[cfg(target_os = "linux")]
            Clock::TimerFd(fd) => {
                timerfd::arm(fd.get_ref(), wait)?;
                loop {
                    let mut ready = fd.readable().await?;
                    // try_io clears the readiness when the read would block (a stale wake).
                    if let Ok(result) = ready.try_io(|fd| timerfd::read(fd.get_ref())) {
                        return result;
                    }
                }
            }
            Clock::Coarse => {
                tokio::time::sleep_until(deadline.into()).await;
                Ok(())
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod timerfd {
    #![allow(unsafe_code)]

    use std::io;
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    use std::time::Duration;

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// A non-blocking CLOCK_MONOTONIC timerfd, disarmed.
    pub fn create() -> Option<OwnedFd> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns.
        unsafe {
            let fd = libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            );
            (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
        }
    }

    /// `fd` in the current runtime's reactor, woken when the timer fires.
    pub fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for
        // the AsyncFd's whole life; called from the proxy's tasks, inside its runtime.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(Into::into)
    }

    /// Arms `fd` to fire once, `wait` (non-zero: zero would disarm it) from now.
    pub fn arm(fd: &OwnedFd, wait: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: wait.subsec_nanos().max(1) as libc::c_long,
            },
        };
        // SAFETY: a live descriptor, a valid itimerspec, and no old value asked for.
        let result =
            unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Reads the expiry count: `WouldBlock` until the timer has fired.
    pub fn read(fd: &OwnedFd) -> io::Result<()> {
        let mut expirations = 0u64;
        // SAFETY: a live descriptor and an 8-byte buffer, which is what a timerfd read takes.
        let read = unsafe {
            libc::read(
                fd.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if read == std::mem::size_of::<u64>() as isize {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// `grpcpool-bench delay-proxy --upstream HOST:PORT --delay-ms N`: prints `LISTENING port`
/// and forwards until killed.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut upstream = None;
    let mut delay = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--upstream" => {
                let address = value
                    .to_socket_addrs()
                    .map_err(|error| format!("bad --upstream {value:?}: {error}"))?
                    .next()
                    .ok_or_else(|| format!("--upstream {value:?} resolves to no address"))?;
                upstream = Some(address);
            }
            "--delay-ms" => {
                let millis: f64 = value
                    .parse()
                    .map_err(|_| format!("bad --delay-ms {value:?}"))?;
                let delay_value = Duration::try_from_secs_f64(millis / 1000.0)
                    .map_err(|_| format!("bad --delay-ms {value:?}"))?;
                delay = Some(delay_value);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let upstream = upstream.ok_or("--upstream HOST:PORT is required")?;
    let delay = delay.ok_or("--delay-ms N is required")?;
    let proxy = DelayProxy::start(upstream, delay).map_err(|error| error.to_string())?;
    println!("LISTENING {}", proxy.port());
    std::io::stdout()
        .flush()
        .map_err(|error| error.to_string())?;
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};

    use super::*;

    const D: Duration = Duration::from_millis(20);
    /// No read in these tests waits longer; they are bounded if the proxy misbehaves.
    const LIMIT: Duration = Duration::from_secs(10);

    /// A loopback server that echoes each connection until EOF, then half-closes it; it serves
    /// `connections` connections and ends.
    fn echo_server(connections: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..connections {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(LIMIT)).unwrap();
                    let mut buffer = [0u8; 4096];
                    loop {
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buffer[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = stream.shutdown(Shutdown::Write);
                });
            }
        });
        address
    }

    fn connect(proxy: &DelayProxy) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    #[test]
    fn bytes_cross_intact_both_ways() {
        let proxy = DelayProxy::start(echo_server(1), Duration::from_millis(2)).unwrap();
        let mut stream = connect(&proxy);
        // More than one read's chunk and the echo's buffer, every byte different from its
        // neighbours, written from another thread so neither side's buffers deadlock.
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut writer = stream.try_clone().unwrap();
        let to_send = sent.clone();
        let sender = std::thread::spawn(move || {
            writer.write_all(&to_send).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        sender.join().unwrap();
        assert_eq!(received.len(), sent.len());
        assert!(received == sent, "the bytes came back changed");
        assert_eq!(proxy.accepted(), 1);
    }

    #[test]
    fn a_round_trip_takes_two_delays() {
        let proxy = DelayProxy::start(echo_server(1), D).unwrap();
        let mut stream = connect(&proxy);
        let mut byte = [0u8; 1];
        // The first exchange also pays the emulated handshake: at least 4·D from connect.
        let started = Instant::now();
        stream.write_all(b"a").unwrap();
        stream.read_exact(&mut byte).unwrap();
        assert!(started.elapsed() >= 4 * D, "{:?}", started.elapsed());
        for expected in [b'b', b'c', b'd'] {
            let started = Instant::now();
            stream.write_all(&[expected]).unwrap();
            stream.read_exact(&mut byte).unwrap();
            assert_eq!(byte[0], expected);
            assert!(started.elapsed() >= 2 * D, "{:?}", started.elapsed());
        }
    }

    #[test]
    fn eof_crosses_after_the_delay_both_ways() {
        let proxy = DelayProxy::start(echo_server(1), D).unwrap();
        let mut stream = connect(&proxy);
        stream.write_all(b"last words").unwrap();
        let started = Instant::now();
        stream.shutdown(Shutdown::Write).unwrap();
        // The server sees EOF (after D), echoes what it had and half-closes; its EOF comes
        // back after D more, after the bytes.
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        assert_eq!(received, b"last words");
        assert!(started.elapsed() >= 2 * D, "{:?}", started.elapsed());
    }

    #[test]
    fn many_small_writes_arrive_whole_and_in_order() {
        let proxy = DelayProxy::start(echo_server(1), D).unwrap();
        let mut stream = connect(&proxy);
        // Written 1 ms apart, so most are read (and stamped) as chunks of their own.
        let started = Instant::now();
        for index in 0..50u8 {
            stream.write_all(&[index]).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut received = [0u8; 50];
        stream.read_exact(&mut received).unwrap();
        assert_eq!(received.to_vec(), (0..50u8).collect::<Vec<_>>());
        assert!(started.elapsed() >= 2 * D, "{:?}", started.elapsed());
    }

    /// Closes `stream` with a reset (SO_LINGER 0) rather than a FIN.
    fn reset(stream: TcpStream) {
        use std::os::fd::AsRawFd as _;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a live socket and a linger struct of the size given.
        #[allow(unsafe_code)]
        let result = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(result, 0);
        drop(stream);
    }

    #[test]
    fn a_reset_crosses_as_a_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(LIMIT)).unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).unwrap();
            reset(stream);
        });
        let proxy = DelayProxy::start(address, D).unwrap();
        let mut stream = connect(&proxy);
        stream.write_all(b"x").unwrap();
        let mut buffer = [0u8; 16];
        let read = stream.read(&mut buffer);
        server.join().unwrap();
        match read {
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}"),
            Ok(read) => panic!("read {read} bytes instead of a reset"),
        }
    }

    #[test]
    fn a_closed_upstream_closes_the_client() {
        // Nothing listens at this address once the listener is dropped.
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = DelayProxy::start(address, Duration::from_millis(1)).unwrap();
        let mut stream = connect(&proxy);
        let mut buffer = [0u8; 16];
        // EOF or a reset, not the read timeout: the client is not left waiting.
        match stream.read(&mut buffer) {
            Ok(read) => assert_eq!(read, 0),
            Err(error) => assert!(
                !matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ),
                "{error}"
            ),
        }
    }

    #[test]
    fn the_standalone_options_are_checked() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(main(&args(&["--delay-ms", "1"])).is_err());
        assert!(main(&args(&["--upstream", "127.0.0.1:1", "--delay-ms", "-1"])).is_err());
        assert!(main(&args(&["--upstream", "127.0.0.1:1", "--delay-ms", "x"])).is_err());
        assert!(main(&args(&["--upstream", "nonsense", "--delay-ms", "1"])).is_err());
        assert!(main(&args(&["--upstream"])).is_err());
    }
}
