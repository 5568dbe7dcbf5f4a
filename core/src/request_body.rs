//! The request messages of one streaming call, shared by every attempt at it (gRPC A6).
//!
//! Messages the caller sends are read from one channel; while the call is not committed, each
//! is kept, so an attempt that starts later (a retry, or a hedge running beside the others)
//! sends them again from the first. The call commits when an attempt gets its response
//! headers, or when keeping another message would pass the per-call or the pool-wide retry
//! buffer: then nothing more is kept, only the committed attempt reads on, and each kept
//! message is freed once it has replayed it. A hedged call that overflows commits to the
//! attempt that read the overflowing message, the one that has sent the most, as A6 says.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};

/// Which attempts may read: [`ANY_HEDGE`] while hedged attempts all may, else one attempt's id.
const ANY_HEDGE: u32 = 0;

/// The request messages of one streaming call, for every attempt at it.
#[derive(Clone)]
pub(crate) struct RequestBody {
    receiver: Arc<AsyncMutex<mpsc::Receiver<Bytes>>>,
    kept: Arc<Mutex<Kept>>,
    /// The attempt that may read on (or [`ANY_HEDGE`]). One that may not stops: a retried
    /// attempt's body ends (its stream already failed, and it still may be polled by the
    /// connection), a hedge's body waits to be cancelled, so it never half-closes a request
    /// the server is still reading.
    reader: Arc<watch::Sender<u32>>,
    /// Ids of attempts so far; the first is 1.
    attempts: Arc<AtomicU32>,
}

/// Messages handed to attempts before the call committed.
struct Kept {
    messages: Vec<Bytes>,
    /// Bytes in `messages` not yet freed, counted in `pool_kept` too.
    bytes: usize,
    /// Still keeping: not committed, and under the limits.
    keeping: bool,
    /// `per_call_retry_buffer_size`.
    per_call: usize,
    /// What the pool's streams keep together, and its limit (`retry_buffer_size`).
    pool_kept: Arc<AtomicUsize>,
    pool_limit: usize,
}

impl Kept {
    fn free(&mut self, size: usize) {
        self.bytes -= size;
        self.pool_kept.fetch_sub(size, Ordering::AcqRel);
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.pool_kept.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// What an attempt's body reads next.
enum Next {
    Message(Bytes),
    /// The caller closed its side.
    End,
    /// Another attempt reads now: the body ends (a retried attempt) or waits (a hedge).
    Superseded,
}

impl RequestBody {
    /// The body of a stream whose messages come through `receiver`, kept for other attempts
    /// within `per_call` bytes and the pool's `pool_limit` shared in `pool_kept`.
    pub(crate) fn new(
        receiver: mpsc::Receiver<Bytes>,
        per_call: usize,
        pool_kept: Arc<AtomicUsize>,
        pool_limit: usize,
    ) -> RequestBody {
        RequestBody {
            receiver: Arc::new(AsyncMutex::new(receiver)),
            kept: Arc::new(Mutex::new(Kept {
                messages: Vec::new(),
                bytes: 0,
                keeping: true,
                per_call,
                pool_kept,
                pool_limit,
            })),
            reader: Arc::new(watch::channel(ANY_HEDGE).0),
            attempts: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The body of the next sequential attempt (the first, or a retry): the kept messages
    /// again, then what the caller sends. Every earlier attempt's body ends.
    pub(crate) fn attempt(&self) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
        let id = self.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        self.reader.send_replace(id);
        self.messages(id, false)
    }

    /// The body of one more hedged attempt, read beside the others until the call commits;
    /// its id for [`commit`](Self::commit).
    pub(crate) fn hedge(
        &self,
    ) -> (
        u32,
        impl futures_util::Stream<Item = Bytes> + Send + 'static,
    ) {
        let id = self.attempts.fetch_add(1, Ordering::AcqRel) + 1;
        (id, self.messages(id, true))
    }

    fn messages(
        &self,
        id: u32,
        hedged: bool,
    ) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
        let changes = self.reader.subscribe();
        futures_util::stream::unfold(
            (self.clone(), 0usize, changes),
            move |(body, index, mut changes)| async move {
                match body.next(id, index, &mut changes).await {
                    Next::Message(message) => Some((message, (body, index + 1, changes))),
                    Next::End => None,
                    Next::Superseded if hedged => std::future::pending().await,
                    Next::Superseded => None,
                }
            },
        )
    }

    /// Message `index` for attempt `id`: kept, or read from the channel (and kept while
    /// keeping).
    async fn next(&self, id: u32, index: usize, changes: &mut watch::Receiver<u32>) -> Next {
        if let Some(message) = self.replay(id, index) {
            return Next::Message(message);
        }
        let superseded = changes.wait_for(|reader| *reader != ANY_HEDGE && *reader != id);
        tokio::pin!(superseded);
        let mut receiver = tokio::select! {
            biased;
            _ = &mut superseded => return Next::Superseded,
            receiver = self.receiver.lock() => receiver,
        };
        // Another attempt may have read (and kept) this one while this waited for the channel.
        if let Some(message) = self.replay(id, index) {
            return Next::Message(message);
        }
        // `recv` is cancel-safe: a superseded attempt takes no message. What is read is kept
        // before the channel is let go, for the attempts behind this one.
        tokio::select! {
            biased;
            _ = &mut superseded => Next::Superseded,
            message = receiver.recv() => match message {
                Some(message) => {
                    self.keep(id, &message);
                    Next::Message(message)
                }
                None => Next::End,
            }
        }
    }

    /// The kept message at `index`, or `None` to read the channel. Once the call is committed
    /// to `id`, each message it replays is freed.
    fn replay(&self, id: u32, index: usize) -> Option<Bytes> {
        let mut kept = self.kept.lock();
        let reader = *self.reader.borrow();
        if !kept.keeping && reader != ANY_HEDGE && reader != id {
            // Committed to another attempt, which frees what it replays: this one reads no
            // more (its body stops), rather than sending a message already taken.
            return None;
        }
        if kept.keeping || reader != id {
            return kept.messages.get(index).cloned();
        }
        let message = std::mem::take(kept.messages.get_mut(index)?);
        kept.free(message.len());
        if index + 1 == kept.messages.len() {
            kept.messages = Vec::new();
        }
        Some(message)
    }

    /// Keeps a message attempt `id` read from the channel while keeping and within both
    /// buffers; one that would pass either commits the call (to `id`, if no attempt has it).
    fn keep(&self, id: u32, message: &Bytes) {
        let mut kept = self.kept.lock();
        if !kept.keeping {
            return;
        }
        let size = message.len();
        let pool_before = kept.pool_kept.fetch_add(size, Ordering::AcqRel);
        if kept.bytes + size > kept.per_call || pool_before + size > kept.pool_limit {
            kept.pool_kept.fetch_sub(size, Ordering::AcqRel);
            kept.keeping = false;
            drop(kept);
            self.claim(id);
        } else {
            kept.bytes += size;
            kept.messages.push(message.clone());
        }
    }

    /// Commits the call to hedged attempt `id` (its response headers came): nothing more is
    /// kept, and every other attempt stops reading. False when the call committed to another
    /// attempt first (its buffer overflowed there): this one has stopped reading and must go.
    pub(crate) fn commit(&self, id: u32) -> bool {
        if self.claim(id) || *self.reader.borrow() == id {
            self.kept.lock().keeping = false;
            true
        } else {
            false
        }
    }

    /// Makes `id` the only reader if hedged attempts all still read; true when it did.
    fn claim(&self, id: u32) -> bool {
        self.reader.send_if_modified(|reader| {
            let free = *reader == ANY_HEDGE;
            if free {
                *reader = id;
            }
            free
        })
    }

    /// The response headers of the current sequential attempt came.
    pub(crate) fn headers_came(&self) {
        self.kept.lock().keeping = false;
    }

    /// Whether another attempt could send everything the attempts so far were given.
    pub(crate) fn replayable(&self) -> bool {
        self.kept.lock().keeping
    }

    /// Resolves once the call has committed to an attempt other than `id`.
    pub(crate) async fn superseded(&self, id: u32) {
        let mut changes = self.reader.subscribe();
        let _ = changes
            .wait_for(|reader| *reader != ANY_HEDGE && *reader != id)
            .await;
    }
}
