//! A global allocator that hands every request to the system allocator and counts it:
//! allocations, reallocations, frees, bytes asked for, bytes live, and allocations by size
//! class. Relaxed atomics: the counters are read at quiet points (between loops of calls, or
//! with every call held by the server), where no ordering with other memory is needed.
//!
//! Only this binary installs it, so the matrix binary (`grpcpool-bench`) never pays for it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The upper bounds, in bytes, of the size classes an allocation is counted in; a last class
/// takes everything larger.
pub const CLASS_LIMITS: [usize; 5] = [64, 256, 1024, 4096, 16384];
/// How many size classes there are: one per limit and one above the last.
pub const CLASSES: usize = CLASS_LIMITS.len() + 1;

/// The allocator: the system's, counted. The binary installs one as its global allocator;
/// a test can make its own and call it directly, to count exactly what it asked for.
pub struct Counting {
    allocations: AtomicU64,
    reallocations: AtomicU64,
    frees: AtomicU64,
    bytes: AtomicU64,
    /// Signed: a reset may come between a block's allocation and its free.
    live: AtomicI64,
    by_class: [AtomicU64; CLASSES],
}

thread_local! {
    /// Set while this thread runs code whose allocations are the harness's own (polling the
    /// pool's stats while calls are held). A `const` Cell has no destructor, so reading it
    /// inside the allocator never allocates, even while the thread is being torn down.
    static UNCOUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    UNCOUNTED
        .try_with(|uncounted| !uncounted.get())
        .unwrap_or(true)
}

/// The size class of an allocation of `size` bytes: an index into [`CLASS_LIMITS`], or its length for a
/// size above the last.
pub fn class_of(size: usize) -> usize {
    CLASS_LIMITS
        .iter()
        .position(|&limit| size <= limit)
        .unwrap_or(CLASS_LIMITS.len())
}

impl Counting {
    /// An allocator with every counter at zero.
    pub const fn new() -> Counting {
        Counting {
            allocations: AtomicU64::new(0),
            reallocations: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            live: AtomicI64::new(0),
            by_class: [const { AtomicU64::new(0) }; CLASSES],
        }
    }

    fn record_allocation(&self, size: usize) {
        if counted() {
            self.allocations.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(size as u64, Ordering::Relaxed);
            self.live.fetch_add(size as i64, Ordering::Relaxed);
            self.by_class[class_of(size)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        Counts {
            allocations: self.allocations.load(Ordering::Relaxed),
            reallocations: self.reallocations.load(Ordering::Relaxed),
            frees: self.frees.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            live: self.live.load(Ordering::Relaxed),
            by_class: std::array::from_fn(|class| self.by_class[class].load(Ordering::Relaxed)),
        }
    }

    /// Zeroes every counter but the live bytes, which frees of blocks allocated before keep
    /// lowering (zeroing them would make the figure meaningless rather than relative).
    pub fn reset(&self) {
        for counter in [
            &self.allocations,
            &self.reallocations,
            &self.frees,
            &self.bytes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        for counter in &self.by_class {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

impl Default for Counting {
    fn default() -> Counting {
        Counting::new()
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds
// GlobalAlloc's contract; the counting around it only touches atomics and a `const`
// thread-local, neither of which allocates, so there is no reentrance.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        let block = unsafe { System.alloc(layout) };
        if !block.is_null() {
            self.record_allocation(layout.size());
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in alloc.
        let block = unsafe { System.alloc_zeroed(layout) };
        if !block.is_null() {
            self.record_allocation(layout.size());
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if counted() {
            self.frees.fetch_add(1, Ordering::Relaxed);
            self.live.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: the caller's block and layout, allocated by this allocator, so by System.
        unsafe { System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in dealloc, with the caller's new size.
        let moved = unsafe { System.realloc(block, layout, new_size) };
        if !moved.is_null() && counted() {
            // The bytes asked for are the new size (the allocator may have to find and fill
            // a new block of it); what is live grows or shrinks by the difference.
            self.reallocations.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(new_size as u64, Ordering::Relaxed);
            self.live
                .fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        moved
    }
}

/// The counters at one moment (each read on its own, so exact only when nothing allocates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls to alloc and alloc_zeroed.
    pub allocations: u64,
    /// Calls to realloc.
    pub reallocations: u64,
    /// Calls to dealloc.
    pub frees: u64,
    /// Bytes asked for by allocations and reallocations (a realloc's new size).
    pub bytes: u64,
    /// Bytes allocated and not yet freed (since the program started, not since a reset).
    pub live: i64,
    /// Allocations (not reallocations) in each size class.
    pub by_class: [u64; CLASSES],
}

impl Counts {
    /// What happened between `earlier` and `self`, as signed figures (live bytes can fall).
    pub fn since(&self, earlier: &Counts) -> Delta {
        let diff = |now: u64, then: u64| now as i64 - then as i64;
        Delta {
            allocations: diff(self.allocations, earlier.allocations),
            reallocations: diff(self.reallocations, earlier.reallocations),
            frees: diff(self.frees, earlier.frees),
            bytes: diff(self.bytes, earlier.bytes),
            live: self.live - earlier.live,
            by_class: std::array::from_fn(|class| {
                diff(self.by_class[class], earlier.by_class[class])
            }),
        }
    }
}

/// Runs `work` with this thread's allocations not counted (nor their frees, so a block must
/// be freed on the thread and inside the closure it was allocated in, or the live bytes
/// drift): for the harness's own bookkeeping while calls are held.
pub fn uncounted<T>(work: impl FnOnce() -> T) -> T {
    let before = UNCOUNTED.with(|uncounted| uncounted.replace(true));
    let out = work();
    UNCOUNTED.with(|uncounted| uncounted.set(before));
    out
}

/// The difference of two [`Counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    /// Allocations made.
    pub allocations: i64,
    /// Reallocations made.
    pub reallocations: i64,
    /// Frees made.
    pub frees: i64,
    /// Bytes asked for.
    pub bytes: i64,
    /// Growth of the live bytes.
    pub live: i64,
    /// Allocations made in each size class.
    pub by_class: [i64; CLASSES],
}

impl Delta {
    /// `self - other`, field by field.
    pub fn minus(&self, other: &Delta) -> Delta {
        Delta {
            allocations: self.allocations - other.allocations,
            reallocations: self.reallocations - other.reallocations,
            frees: self.frees - other.frees,
            bytes: self.bytes - other.bytes,
            live: self.live - other.live,
            by_class: std::array::from_fn(|class| self.by_class[class] - other.by_class[class]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_in_their_class() {
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(64), 0);
        assert_eq!(class_of(65), 1);
        assert_eq!(class_of(256), 1);
        assert_eq!(class_of(1024), 2);
        assert_eq!(class_of(1025), 3);
        assert_eq!(class_of(4096), 3);
        assert_eq!(class_of(16384), 4);
        assert_eq!(class_of(16385), 5);
    }

    // An allocator of the test's own, called directly: nothing else goes through it, so
    // every figure is exact.
    #[test]
    #[allow(unsafe_code)]
    fn an_allocation_its_growth_and_its_free_are_counted() {
        let counting = Counting::new();
        let layout = Layout::from_size_align(3000, 8).unwrap();
        // SAFETY: a layout of non-zero size; the block is reallocated and freed with it.
        let block = unsafe { counting.alloc(layout) };
        assert!(!block.is_null());
        let allocated = counting.counts();
        assert_eq!(allocated.allocations, 1);
        assert_eq!(allocated.bytes, 3000);
        assert_eq!(allocated.live, 3000);
        assert_eq!(allocated.by_class[class_of(3000)], 1);
        assert_eq!(allocated.by_class.iter().sum::<u64>(), 1);

        // SAFETY: the block this allocator returned, with its layout; 6000 is non-zero.
        let block = unsafe { counting.realloc(block, layout, 6000) };
        assert!(!block.is_null());
        let grown = counting.counts().since(&allocated);
        assert_eq!((grown.allocations, grown.reallocations), (0, 1));
        assert_eq!((grown.bytes, grown.live), (6000, 3000));

        let grown_layout = Layout::from_size_align(6000, 8).unwrap();
        // SAFETY: the reallocated block with its current layout, freed once.
        unsafe { counting.dealloc(block, grown_layout) };
        let freed = counting.counts();
        assert_eq!((freed.frees, freed.live), (1, 0));

        counting.reset();
        let reset = counting.counts();
        assert_eq!(reset, Counts::default());
    }

    #[test]
    #[allow(unsafe_code)]
    fn uncounted_work_is_not_counted() {
        let counting = Counting::new();
        let layout = Layout::new::<[u64; 16]>();
        // SAFETY: a non-zero layout; the block is freed with it inside the same closure.
        let block = uncounted(|| unsafe { counting.alloc(layout) });
        assert!(!block.is_null());
        // SAFETY: as above.
        uncounted(|| unsafe { counting.dealloc(block, layout) });
        assert_eq!(counting.counts(), Counts::default());
        // And counting resumes after it.
        // SAFETY: as above, counted this time.
        let block = unsafe { counting.alloc(layout) };
        // SAFETY: as above.
        unsafe { counting.dealloc(block, layout) };
        let counts = counting.counts();
        assert_eq!((counts.allocations, counts.frees, counts.live), (1, 1, 0));
    }

    #[test]
    fn the_global_allocator_counts_a_vec() {
        // Other tests' threads allocate meanwhile, so only what none of them asks for is
        // exact: a block over 16 KiB.
        let before = crate::ALLOCATOR.counts();
        let vec: Vec<u8> = Vec::with_capacity(100_000);
        let after = crate::ALLOCATOR.counts().since(&before);
        assert_eq!(after.by_class[CLASSES - 1], 1);
        assert!(after.allocations >= 1 && after.bytes >= 100_000);
        drop(std::hint::black_box(vec));
        assert!(crate::ALLOCATOR.counts().since(&before).frees >= 1);
    }
}
