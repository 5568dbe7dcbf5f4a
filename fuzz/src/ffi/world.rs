//! What an input has made so far (configs, pools, options, leases, streams, async calls, the
//! handles that went stale), how an operation's arguments are resolved against it, and what
//! the end of an input frees and checks.

use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use grpcpool::grpcpool_result::{self, *};
use grpcpool::*;
use grpcpool_core::{Config, Metadata};

use super::checks::{expect, Slot};
use super::input::Handle;

pub(super) struct ConfigEntry {
    pub(super) ptr: *mut grpcpool_config_t,
    /// The same settings applied to a core config, to predict the C side.
    pub(super) shadow: Config,
    /// Whether any setting was changed from the default.
    pub(super) changed: bool,
}

pub(super) struct PoolEntry {
    pub(super) ptr: *mut grpcpool_pool_t,
    /// Made with the default config: calls on it must behave as documented for a healthy
    /// server (echo OK, no waits).
    pub(super) default: bool,
    pub(super) closed: bool,
    pub(super) freed: bool,
}

pub(super) struct OptionsEntry {
    pub(super) ptr: *mut grpcpool_call_options_t,
    /// Its timeout as set, `None` for no deadline.
    pub(super) timeout: Option<Duration>,
    /// Its metadata as added, checked by the calls that use it.
    pub(super) metadata: Metadata,
    /// Only keys that leave an echo call's outcome alone.
    pub(super) clean: bool,
}

#[derive(Clone, Copy)]
pub(super) struct Live {
    pub(super) handle: u64,
    pub(super) pool: usize,
}

pub(super) struct CallEntry {
    pub(super) handle: u64,
    pub(super) slot: Arc<Slot>,
}

#[derive(Default)]
pub(super) struct World {
    pub(super) configs: Vec<ConfigEntry>,
    pub(super) pools: Vec<PoolEntry>,
    pub(super) options: Vec<OptionsEntry>,
    pub(super) leases: Vec<Live>,
    pub(super) streams: Vec<Live>,
    pub(super) calls: Vec<CallEntry>,
    pub(super) stale_leases: Vec<u64>,
    pub(super) stale_streams: Vec<u64>,
    /// Every async operation that started, with whether its callback must see CANCELLED.
    pub(super) started: Vec<(Arc<Slot>, &'static str)>,
    pub(super) cancelled: Vec<Arc<Slot>>,
    /// Slots of operations that did not start: their callbacks must never run.
    pub(super) refused: Vec<Arc<Slot>>,
    /// A bounded options object for stream opens that would otherwise have no deadline.
    pub(super) bounded: Option<*mut grpcpool_call_options_t>,
    pub(super) logging: bool,
}

/// What a handle argument is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Is {
    Live(usize),
    /// Maybe live (an async call that may have completed).
    Unknown,
    Invalid,
}

impl World {
    pub(super) fn pick<T>(items: &[T], index: u8) -> Option<usize> {
        (!items.is_empty()).then(|| usize::from(index) % items.len())
    }

    pub(super) fn live_pools(&self) -> Vec<usize> {
        (0..self.pools.len())
            .filter(|&i| !self.pools[i].freed)
            .collect()
    }

    /// A live pool, or NULL for `None` (or when there is none).
    pub(super) fn pool(&self, pick: Option<u8>) -> Option<usize> {
        let live = self.live_pools();
        pick.and_then(|index| Self::pick(&live, index).map(|i| live[i]))
    }

    pub(super) fn pool_ptr(&self, pool: Option<usize>) -> *mut grpcpool_pool_t {
        pool.map_or(ptr::null_mut(), |index| self.pools[index].ptr)
    }

    pub(super) fn resolve(
        &self,
        choice: Handle,
        live: &[Live],
        stale: &[u64],
        other: &[u64],
    ) -> (u64, Is) {
        let classify = |handle: u64| match live.iter().position(|entry| entry.handle == handle) {
            Some(index) => (handle, Is::Live(index)),
            None => (handle, Is::Invalid),
        };
        match choice {
            Handle::Live(index) => match Self::pick(live, index) {
                Some(index) => (live[index].handle, Is::Live(index)),
                None => classify(u64::from(index) << 32 | 1 << 24 | 1),
            },
            Handle::Stale(index) => match Self::pick(stale, index) {
                Some(index) => classify(stale[index]),
                None => classify(u64::from(index)),
            },
            Handle::Forged(value) => classify(value),
            Handle::Flipped { index, bit } => {
                let all: Vec<u64> = live
                    .iter()
                    .map(|entry| entry.handle)
                    .chain(stale.iter().copied())
                    .collect();
                let base = Self::pick(&all, index).map_or(0, |i| all[i]);
                classify(base ^ (1u64 << (bit % 64)))
            }
            Handle::Zero => (0, Is::Invalid),
            Handle::OtherKind(index) => match Self::pick(other, index) {
                Some(index) => classify(other[index]),
                None => (u64::MAX, Is::Invalid),
            },
        }
    }

    pub(super) fn lease(&self, choice: Handle) -> (u64, Is) {
        let other: Vec<u64> = self.streams.iter().map(|entry| entry.handle).collect();
        self.resolve(choice, &self.leases, &self.stale_leases, &other)
    }

    pub(super) fn stream(&self, choice: Handle) -> (u64, Is) {
        let other: Vec<u64> = self
            .leases
            .iter()
            .map(|entry| entry.handle)
            .chain(self.calls.iter().map(|call| call.handle))
            .collect();
        self.resolve(choice, &self.streams, &self.stale_streams, &other)
    }

    /// A call handle: async calls may have completed, so a known one is `Unknown`.
    pub(super) fn call(&self, choice: Handle) -> (u64, Is) {
        let known: Vec<Live> = self
            .calls
            .iter()
            .map(|call| Live {
                handle: call.handle,
                pool: 0,
            })
            .collect();
        let other: Vec<u64> = self.leases.iter().map(|entry| entry.handle).collect();
        match self.resolve(choice, &known, &[], &other) {
            (handle, Is::Live(_)) => (handle, Is::Unknown),
            resolved => resolved,
        }
    }
}

impl World {
    /// Records an async operation: a started one must run its callback once, a refused one
    /// never.
    pub(super) fn track(&mut self, rc: grpcpool_result, slot: Arc<Slot>, what: &'static str) {
        if rc == GRPCPOOL_OK {
            self.started.push((slot, what));
        } else {
            self.refused.push(slot);
        }
    }

    /// The pool is live.
    /// Frees a pool: its leases and streams become stale, its callbacks have all run.
    ///
    /// # Safety
    /// The pool is live.
    pub(super) unsafe fn free_pool(&mut self, index: usize) {
        // SAFETY: per the contract.
        unsafe { grpcpool_pool_free(self.pools[index].ptr) };
        self.pools[index].freed = true;
        let (gone, kept): (Vec<Live>, Vec<Live>) =
            self.leases.iter().partition(|lease| lease.pool == index);
        self.leases = kept;
        self.stale_leases
            .extend(gone.iter().map(|lease| lease.handle));
        let (gone, kept): (Vec<Live>, Vec<Live>) =
            self.streams.iter().partition(|stream| stream.pool == index);
        self.streams = kept;
        self.stale_streams
            .extend(gone.iter().map(|stream| stream.handle));
    }

    /// Frees everything the input made and checks what must hold once it is gone.
    ///
    /// # Safety
    /// The world's pointers are live.
    pub(super) unsafe fn finish(mut self) {
        // SAFETY (every call): pointers from the world, freed once.
        unsafe {
            for stream in std::mem::take(&mut self.streams) {
                expect(
                    grpcpool_stream_free(stream.handle),
                    &[GRPCPOOL_OK],
                    "free of a live stream",
                );
                self.stale_streams.push(stream.handle);
            }
            for lease in std::mem::take(&mut self.leases) {
                expect(
                    grpcpool_release(lease.handle),
                    &[GRPCPOOL_OK],
                    "release of a live lease",
                );
                self.stale_leases.push(lease.handle);
            }
            for index in self.live_pools() {
                self.free_pool(index);
            }
            for options in self.options.drain(..) {
                grpcpool_call_options_free(options.ptr);
            }
            if let Some(bounded) = self.bounded.take() {
                grpcpool_call_options_free(bounded);
            }
            for config in self.configs.drain(..) {
                grpcpool_config_free(config.ptr);
            }
            if self.logging {
                expect(
                    grpcpool_set_log_callback(None, ptr::null_mut(), 0),
                    &[GRPCPOOL_OK, GRPCPOOL_INVALID_ARGUMENT],
                    "log callback off",
                );
            }
        }
        // Every pool is freed, so every callback has run.
        for (slot, what) in &self.started {
            assert_eq!(
                slot.runs.load(Ordering::SeqCst),
                1,
                "a started {what}'s callback ran {} times",
                slot.runs.load(Ordering::SeqCst)
            );
            if slot.probed.load(Ordering::SeqCst) {
                assert_eq!(
                    slot.probe_result.load(Ordering::SeqCst),
                    GRPCPOOL_BLOCKING_IN_CALLBACK as i32,
                    "a blocking acquire in a callback"
                );
            }
        }
        for slot in &self.refused {
            assert_eq!(
                slot.runs.load(Ordering::SeqCst),
                0,
                "a refused operation's callback ran"
            );
        }
        for slot in &self.cancelled {
            assert_eq!(
                slot.code.load(Ordering::SeqCst),
                1,
                "a cancelled call's callback did not see CANCELLED"
            );
        }
        for handle in &self.stale_leases {
            expect(
                grpcpool_release(*handle),
                &[GRPCPOOL_INVALID_HANDLE],
                "a lease outlived its input",
            );
        }
        for handle in &self.stale_streams {
            expect(
                grpcpool_stream_close_send(*handle),
                &[GRPCPOOL_INVALID_HANDLE],
                "a stream outlived its input",
            );
        }
        for call in &self.calls {
            expect(
                grpcpool_call_cancel(call.handle),
                &[GRPCPOOL_INVALID_HANDLE],
                "a call outlived its input",
            );
        }
    }
}
