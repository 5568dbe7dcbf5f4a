//! Waking blocking callers in batches: one futex wake for every caller whose call finished in a
//! worker's batch of work, rather than one wake per call.
//!
//! A caller's thread sleeps until its call's task ends on a worker. Woken one by one, each
//! caller ran at once on a loaded core and the worker was switched out in the middle of its
//! batch, then back in: about two context switches per call where one is the floor. Here the
//! callers sleep on a few shared futex words, each caller on a bit of its own
//! (`FUTEX_WAIT_BITSET`). A finished call sets its bit; the first to finish in a batch waits
//! until the worker has run its other ready tasks and polled for I/O (`yield_now` defers to
//! then), and wakes every bit set by then with one `FUTEX_WAKE_BITSET` per word; when no other
//! caller holds a bit it wakes at once, as no call could join its batch. The figures are in
//! docs/blocking-calls.md.
//!
//! Linux only; elsewhere, and when every bit is taken, [`BatchedWakes::lane`] gives `None` and
//! the caller waits on the task's JoinHandle as before.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Futex words callers sleep on; each has 32 bits, one per sleeping caller.
const WORDS: usize = 8;

/// The futex words of one pool, and whether a batch's wake is due.
pub(crate) struct BatchedWakes {
    words: [Word; WORDS],
    /// A finished call's task has taken on waking the current batch.
    batch_due: AtomicBool,
}

/// One futex word and its bits.
#[derive(Default)]
struct Word {
    /// What callers sleep on: bumped before every wake, so a caller that saw its call
    /// unfinished and then sleeps on a stale value returns at once instead.
    sequence: AtomicU32,
    /// Bits held by callers.
    taken: AtomicU32,
    /// Bits whose calls finished since the last wake.
    finished: AtomicU32,
}

impl Default for BatchedWakes {
    fn default() -> BatchedWakes {
        BatchedWakes {
            words: std::array::from_fn(|_| Word::default()),
            batch_due: AtomicBool::new(false),
        }
    }
}

impl BatchedWakes {
    /// A bit for one blocking caller to sleep on, given back when the lane drops; `None` when
    /// all are taken or futexes are not available here.
    pub(crate) fn lane(self: &Arc<Self>) -> Option<Lane> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        for (index, word) in self.words.iter().enumerate() {
            let mut taken = word.taken.load(Ordering::Relaxed);
            while taken != u32::MAX {
                let bit = 1 << (!taken).trailing_zeros();
                match word.taken.compare_exchange_weak(
                    taken,
                    taken | bit,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Some(Lane(Bit {
                            wakes: Arc::clone(self),
                            word: index,
                            bit,
                        }))
                    }
                    Err(now) => taken = now,
                }
            }
        }
        None
    }

    /// Wakes every caller whose call finished since the last wake.
    ///
    /// `batch_due` and the `finished` bits are all SeqCst: a call that finishes after its word
    /// was swept must see `batch_due` cleared (and so wake a batch of its own), which needs the
    /// clearing store ordered before the sweep's swaps, not just released.
    fn wake_finished(&self) {
        self.batch_due.store(false, Ordering::SeqCst);
        for word in &self.words {
            let finished = word.finished.swap(0, Ordering::SeqCst);
            if finished != 0 {
                word.wake(finished);
            }
        }
    }
}

impl Word {
    fn wake(&self, bits: u32) {
        self.sequence.fetch_add(1, Ordering::AcqRel);
        futex::wake(&self.sequence, bits);
    }
}

/// A word and a bit of it, in one pool's futex words.
struct Bit {
    wakes: Arc<BatchedWakes>,
    word: usize,
    bit: u32,
}

impl Bit {
    fn word(&self) -> &Word {
        &self.wakes.words[self.word]
    }
}

/// One caller's bit; dropping it gives the bit back. A call that finishes after its caller
/// gave up may set a bit now someone else's: that caller wakes, finds its own call unfinished
/// and sleeps again.
pub(crate) struct Lane(Bit);

impl Lane {
    /// Sleeps until `done` is set or `deadline` passes; true when done.
    pub(crate) fn wait(&self, done: &AtomicBool, deadline: Option<Instant>) -> bool {
        let word = self.0.word();
        loop {
            let sequence = word.sequence.load(Ordering::Acquire);
            if done.load(Ordering::Acquire) {
                return true;
            }
            let remaining = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(remaining) if !remaining.is_zero() => Some(remaining),
                    _ => return false,
                },
                None => None,
            };
            futex::wait(&word.sequence, sequence, self.0.bit, remaining);
        }
    }

    /// A handle for the call's task: the lane's word and bit, without giving the bit back.
    pub(crate) fn for_task(&self) -> TaskLane {
        TaskLane(Bit {
            wakes: Arc::clone(&self.0.wakes),
            word: self.0.word,
            bit: self.0.bit,
        })
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.0.word().taken.fetch_and(!self.0.bit, Ordering::AcqRel);
    }
}

/// What the call's task holds of its caller's lane.
pub(crate) struct TaskLane(Bit);

impl TaskLane {
    /// Called by the call's task once its caller's `done` is set: marks the caller to be woken
    /// with the batch. The task that gets `Some` drops it after its worker's other ready work
    /// (at once when [`BatchWake::others_waiting`] says no other caller could join), which wakes
    /// the batch.
    pub(crate) fn finished(&self) -> Option<BatchWake> {
        self.0
            .word()
            .finished
            .fetch_or(self.0.bit, Ordering::SeqCst);
        if self.0.wakes.batch_due.swap(true, Ordering::SeqCst) {
            return None;
        }
        Some(BatchWake {
            wakes: Arc::clone(&self.0.wakes),
        })
    }

    /// Wakes this caller alone, now: for a call dropped unfinished (aborted, or its runtime
    /// stopped), where no batch may come.
    pub(crate) fn wake_now(&self) {
        self.0.word().wake(self.0.bit);
    }
}

/// The duty of waking the current batch; carried out when dropped, so a task dropped before
/// it got to it (an abort, a runtime stopping) still wakes its batch.
pub(crate) struct BatchWake {
    wakes: Arc<BatchedWakes>,
}

impl BatchWake {
    /// Whether more than one lane is taken, so that another caller's call could still end in
    /// this batch (the finisher's own caller usually holds one of them): a lone caller's batch
    /// is worth no wait. A miscount only costs a batch its size, never a wake.
    pub(crate) fn others_waiting(&self) -> bool {
        let mut taken = 0;
        for word in &self.wakes.words {
            taken += word.taken.load(Ordering::Relaxed).count_ones();
            if taken > 1 {
                return true;
            }
        }
        false
    }
}

impl Drop for BatchWake {
    fn drop(&mut self) {
        self.wakes.wake_finished();
    }
}

#[cfg(target_os = "linux")]
mod futex {
    //! The two futex operations, on a word private to this process.
    #![allow(unsafe_code)]

    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `word` holds `expected`, until a wake names a bit of `bits` or `timeout`
    /// passes; returns early on any signal or spurious wake, which callers loop over.
    pub(super) fn wait(word: &AtomicU32, expected: u32, bits: u32, timeout: Option<Duration>) {
        // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time.
        let until = timeout.map(|timeout| {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes only the timespec it is given.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
            libc::timespec {
                tv_sec: now
                    .tv_sec
                    .saturating_add(timeout.as_secs().min(i64::MAX as u64 / 2) as libc::time_t)
                    .saturating_add((nanos / 1_000_000_000) as libc::time_t),
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            }
        });
        let until_ptr = until
            .as_ref()
            .map_or(std::ptr::null(), |until| until as *const libc::timespec);
        // SAFETY: the word is a live AtomicU32 for the whole call, and the timespec outlives
        // it; the kernel only reads both.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
                expected,
                until_ptr,
                std::ptr::null::<u32>(),
                bits,
            );
        }
    }

    /// Wakes every thread sleeping on `word` with a bit of `bits`.
    pub(super) fn wake(word: &AtomicU32, bits: u32) {
        // SAFETY: as in `wait`; a wake reads nothing but the word's address.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE_BITSET | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                bits,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod futex {
    //! Never called: without futexes no lane is handed out.

    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    pub(super) fn wait(_: &AtomicU32, _: u32, _: u32, _: Option<Duration>) {}

    pub(super) fn wake(_: &AtomicU32, _: u32) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lanes_are_distinct_until_all_are_taken_and_come_back_when_dropped() {
        let wakes = Arc::new(BatchedWakes::default());
        let lanes: Vec<Lane> = (0..WORDS * 32).map_while(|_| wakes.lane()).collect();
        assert_eq!(lanes.len(), WORDS * 32);
        let mut seen: Vec<(usize, u32)> =
            lanes.iter().map(|lane| (lane.0.word, lane.0.bit)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), WORDS * 32);
        assert!(wakes.lane().is_none());
        drop(lanes);
        assert!(wakes.lane().is_some());
    }

    #[test]
    fn a_finished_batch_wakes_its_callers_and_only_the_first_finisher_wakes_it() {
        let wakes = Arc::new(BatchedWakes::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let lane = wakes.lane().unwrap();
                let done = Arc::new(AtomicBool::new(false));
                let task = lane.for_task();
                let waiting = Arc::clone(&done);
                let thread = std::thread::spawn(move || lane.wait(&waiting, None));
                (task, done, thread)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        let mut duties = Vec::new();
        for (task, done, _) in &waiters {
            done.store(true, Ordering::Release);
            duties.push(task.finished());
        }
        assert!(duties[0].is_some());
        assert!(duties[1..].iter().all(Option::is_none));
        drop(duties);
        for (_, _, thread) in waiters {
            assert!(thread.join().unwrap());
        }
    }

    #[test]
    fn a_batch_is_worth_waiting_for_only_while_another_caller_holds_a_lane() {
        let wakes = Arc::new(BatchedWakes::default());
        let lone = wakes.lane().unwrap();
        let task = lone.for_task();
        let batch = task.finished().unwrap();
        assert!(!batch.others_waiting());
        let other = wakes.lane().unwrap();
        assert!(batch.others_waiting());
        drop(other);
        assert!(!batch.others_waiting());
    }

    #[test]
    fn a_wait_gives_up_at_its_deadline() {
        let wakes = Arc::new(BatchedWakes::default());
        let lane = wakes.lane().unwrap();
        let done = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_millis(30);
        assert!(!lane.wait(&done, Some(deadline)));
        assert!(Instant::now() >= deadline);
    }
}
