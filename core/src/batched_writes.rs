//! One write for the frames of many calls on a busy connection.
//!
//! h2 writes every DATA frame of more than 256 bytes with a write of its own: it chains the
//! payload instead of copying it, and flushes before it takes the next frame. So with many
//! calls in flight on one connection each request cost a sendmsg(2) of its own, and reached
//! the server in a segment of its own, where h2load and grpc-go's writer put many in one.
//!
//! Here, while a connection carries more than one call, what h2 writes during a poll of the
//! connection (a round) is held, and the driver writes it out after the round. The first time
//! it finds bytes held it wakes itself instead and writes them after the next round: tokio runs
//! a task that woke itself after the tasks already queued on its worker, so the callers whose
//! responses the round just read queue their next requests first, and go out in the same
//! write. With one call or none, nothing is held, so a lone call never waits for a round.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Held bytes are written out before they pass this; a single larger write goes through on
/// its own. 16 KiB is also what h2 buffers.
const HOLD_LIMIT: usize = 16 * 1024;

/// The stream under one HTTP/2 connection and the bytes held for it: h2 reads and writes it
/// through a [`BatchedIo`], and the connection's driver begins and ends each round on it.
///
/// Both live on the driver's task, so the lock is never contended; it is there because h2
/// owns its stream and the driver needs a way in beside it.
pub(crate) struct BatchedWrites<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    stream: T,
    /// Bytes h2 has written and the stream has not; `sent` of them are out.
    held: Vec<u8>,
    sent: usize,
    /// This round's writes are held (the connection carries more than one call).
    holding: bool,
    /// The driver has already put off writing `held` for one round.
    put_off: bool,
    /// A write of held bytes failed after h2 was told they were written: h2 gets it next.
    failed: Option<io::Error>,
}

impl<T> BatchedWrites<T> {
    /// Wraps `stream`; until a round begins with holding on, every write goes through.
    pub(crate) fn new(stream: T) -> Arc<BatchedWrites<T>> {
        Arc::new(BatchedWrites {
            state: Mutex::new(State {
                stream,
                held: Vec::new(),
                sent: 0,
                holding: false,
                put_off: false,
                failed: None,
            }),
        })
    }
}

impl<T: AsyncWrite + Unpin> BatchedWrites<T> {
    /// Begins a round: the driver calls it before each poll of the HTTP/2 connection.
    /// `holding`: the connection carries more than one call, so writes may wait for the end.
    pub(crate) fn begin_round(&self, holding: bool) {
        self.state.lock().holding = holding;
    }

    /// Ends a round: writes out what it held, or, the first time, wakes the driver to write it
    /// after the next round. A failed write is kept for h2, and the driver woken to meet it.
    pub(crate) fn end_round(&self, cx: &mut Context<'_>) {
        let mut state = self.state.lock();
        if state.held.is_empty() {
            state.put_off = false;
            return;
        }
        if state.holding && !state.put_off {
            state.put_off = true;
            cx.waker().wake_by_ref();
            return;
        }
        match state.poll_write_held(cx) {
            Poll::Ready(Ok(())) => state.put_off = false,
            Poll::Ready(Err(error)) => {
                state.failed = Some(error);
                cx.waker().wake_by_ref();
            }
            // The socket wakes the driver when it can take more; the next round ends here again.
            Poll::Pending => {}
        }
    }
}

impl<T: AsyncWrite + Unpin> State<T> {
    /// Writes out everything held, in order, before anything else is written.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.failed.take() {
            return Poll::Ready(Err(error));
        }
        while self.sent < self.held.len() {
            let written =
                ready!(Pin::new(&mut self.stream).poll_write(cx, &self.held[self.sent..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
        self.sent = 0;
        if self.holding {
            self.held.clear();
        } else {
            // Down to one call or none: give the memory back.
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `len` more bytes are to be held rather than written now; what is held goes out
    /// first when they are not, or would not fit.
    fn poll_hold(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        let hold = self.holding && len < HOLD_LIMIT;
        if !hold || self.held.len() + len > HOLD_LIMIT || self.failed.is_some() {
            ready!(self.poll_write_held(cx))?;
        }
        Poll::Ready(Ok(hold))
    }
}

/// The side of a [`BatchedWrites`] that h2 reads and writes.
pub(crate) struct BatchedIo<T>(pub(crate) Arc<BatchedWrites<T>>);

impl<T: AsyncRead + Unpin> AsyncRead for BatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.0.state.lock();
        if let Some(error) = state.failed.take() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut state.stream).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for BatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.0.state.lock();
        if ready!(state.poll_hold(cx, buf.len()))? {
            state.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut state.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.0.state.lock();
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if ready!(state.poll_hold(cx, len))? {
            for buf in bufs {
                state.held.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(len));
        }
        Pin::new(&mut state.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.state.lock().stream.is_write_vectored()
    }

    /// While holding, a flush leaves the held bytes to the end of the round, where the driver
    /// writes them (h2 flushes after every chained DATA frame, which is what is being batched).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.0.state.lock();
        if state.holding && state.failed.is_none() {
            return Poll::Ready(Ok(()));
        }
        ready!(state.poll_write_held(cx))?;
        Pin::new(&mut state.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.0.state.lock();
        ready!(state.poll_write_held(cx))?;
        Pin::new(&mut state.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests may panic on a broken premise.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    /// A stream that records each write it is given, and can be told to fail them.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        fail: bool,
        shut: bool,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if this.fail {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            this.writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Harness {
        writes: Arc<BatchedWrites<Recorder>>,
        io: BatchedIo<Recorder>,
        wakes: Arc<CountingWaker>,
        waker: Waker,
    }

    impl Harness {
        fn new() -> Harness {
            let writes = BatchedWrites::new(Recorder::default());
            let wakes = Arc::new(CountingWaker::default());
            Harness {
                io: BatchedIo(Arc::clone(&writes)),
                writes,
                waker: Waker::from(Arc::clone(&wakes)),
                wakes,
            }
        }

        /// What h2 does with one frame: write it, then flush.
        fn frame(&mut self, bytes: &[u8]) {
            let mut cx = Context::from_waker(&self.waker);
            let written = Pin::new(&mut self.io).poll_write(&mut cx, bytes);
            assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));
            assert!(matches!(
                Pin::new(&mut self.io).poll_flush(&mut cx),
                Poll::Ready(Ok(()))
            ));
        }

        fn end_round(&self) {
            self.writes.end_round(&mut Context::from_waker(&self.waker));
        }

        fn recorded(&self) -> Vec<Vec<u8>> {
            self.writes.state.lock().stream.writes.clone()
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn without_rounds_every_write_goes_through_at_once() {
        let mut harness = Harness::new();
        harness.frame(b"one");
        harness.frame(b"two");
        assert_eq!(harness.recorded(), vec![b"one".to_vec(), b"two".to_vec()]);
        harness.writes.begin_round(false);
        harness.frame(b"three");
        harness.end_round();
        assert_eq!(harness.recorded().len(), 3);
        assert_eq!(harness.wakes(), 0);
    }

    #[test]
    fn a_busy_round_is_put_off_once_then_written_in_one_write() {
        let mut harness = Harness::new();
        harness.writes.begin_round(true);
        harness.frame(b"a1");
        harness.frame(b"b1");
        harness.end_round();
        assert!(harness.recorded().is_empty(), "put off for one round");
        assert_eq!(harness.wakes(), 1, "the driver is woken for the next round");
        harness.writes.begin_round(true);
        harness.frame(b"c1");
        harness.end_round();
        assert_eq!(harness.recorded(), vec![b"a1b1c1".to_vec()]);
        assert_eq!(harness.wakes(), 1);
        // The next busy round is put off again: once per write.
        harness.writes.begin_round(true);
        harness.frame(b"d1");
        harness.end_round();
        assert_eq!(harness.recorded().len(), 1);
        assert_eq!(harness.wakes(), 2);
        harness.writes.begin_round(true);
        harness.end_round();
        assert_eq!(harness.recorded()[1], b"d1".to_vec());
    }

    #[test]
    fn a_write_over_the_limit_goes_alone_after_what_is_held() {
        let mut harness = Harness::new();
        harness.writes.begin_round(true);
        harness.frame(b"small");
        let big = vec![9u8; HOLD_LIMIT];
        harness.frame(&big);
        assert_eq!(harness.recorded(), vec![b"small".to_vec(), big.clone()]);
        // Held bytes that would pass the limit go out before the new ones are held.
        harness.frame(&vec![1u8; HOLD_LIMIT - 10]);
        harness.frame(&[2u8; 20]);
        let recorded = harness.recorded();
        assert_eq!(recorded.len(), 3);
        assert_eq!(recorded[2], vec![1u8; HOLD_LIMIT - 10]);
        harness.writes.begin_round(false);
        harness.end_round();
        assert_eq!(harness.recorded()[3], vec![2u8; 20]);
    }

    #[test]
    fn one_call_left_writes_what_is_held_and_gives_the_memory_back() {
        let mut harness = Harness::new();
        harness.writes.begin_round(true);
        harness.frame(b"held");
        harness.writes.begin_round(false);
        harness.frame(b"next");
        assert_eq!(harness.recorded(), vec![b"held".to_vec(), b"next".to_vec()]);
        assert_eq!(harness.writes.state.lock().held.capacity(), 0);
    }

    #[test]
    fn shutdown_writes_what_is_held_first() {
        let mut harness = Harness::new();
        harness.writes.begin_round(true);
        harness.frame(b"goaway");
        let mut cx = Context::from_waker(&harness.waker);
        assert!(matches!(
            Pin::new(&mut harness.io).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(harness.recorded(), vec![b"goaway".to_vec()]);
        assert!(harness.writes.state.lock().stream.shut);
    }

    #[test]
    fn a_failed_write_after_the_round_reaches_h2_on_its_next_read() {
        let mut harness = Harness::new();
        harness.writes.begin_round(true);
        harness.frame(b"lost");
        harness.end_round();
        harness.writes.state.lock().stream.fail = true;
        harness.writes.begin_round(true);
        harness.end_round();
        assert_eq!(harness.wakes(), 2, "woken to meet the error");
        let mut cx = Context::from_waker(&harness.waker);
        let mut bytes = [0u8; 8];
        let mut buf = ReadBuf::new(&mut bytes);
        let read = Pin::new(&mut harness.io).poll_read(&mut cx, &mut buf);
        assert!(
            matches!(read, Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::BrokenPipe)
        );
    }
}
