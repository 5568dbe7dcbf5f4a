//! The register of outstanding leases, scanned for ones held past the leak threshold.

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where a lease was acquired: a Rust call site, or a description a binding supplies.
#[derive(Debug, Clone)]
pub enum AcquireSite {
    /// The Rust caller of `Pool::acquire`.
    Code(&'static Location<'static>),
    /// A binding's description, such as a Python or JavaScript stack line.
    Described(Arc<str>),
}

impl std::fmt::Display for AcquireSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcquireSite::Code(location) => write!(f, "{location}"),
            AcquireSite::Described(text) => f.write_str(text),
        }
    }
}

struct Record {
    acquired_at: Instant,
    site: AcquireSite,
    reported: bool,
}

/// A lease that has been held too long.
#[derive(Debug, Clone)]
pub struct LeakReport {
    /// The lease's target.
    pub target: String,
    /// Where it was acquired.
    pub site: String,
    /// How long it has been held.
    pub held_for: Duration,
}

/// Outstanding leases of one target, in a slab: a lease's id is its slot, reused once freed.
#[derive(Default)]
pub(crate) struct LeaseRegister {
    slab: Mutex<Slab>,
}

#[derive(Default)]
struct Slab {
    records: Vec<Option<Record>>,
    free: Vec<usize>,
    live: usize,
}

impl LeaseRegister {
    pub(crate) fn insert(&self, site: AcquireSite) -> u64 {
        let record = Record {
            acquired_at: Instant::now(),
            site,
            reported: false,
        };
        let mut slab = self.slab.lock();
        slab.live += 1;
        let index = match slab.free.pop() {
            Some(index) => {
                slab.records[index] = Some(record);
                index
            }
            None => {
                slab.records.push(Some(record));
                slab.records.len() - 1
            }
        };
        index as u64
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut slab = self.slab.lock();
        let index = id as usize;
        if slab.records.get_mut(index).and_then(Option::take).is_some() {
            slab.free.push(index);
            slab.live -= 1;
        }
    }

    /// Marks a lease reported as leaked (so scans skip it); its site, if it was not already.
    pub(crate) fn report(&self, id: u64) -> Option<String> {
        let mut slab = self.slab.lock();
        let record = slab.records.get_mut(id as usize)?.as_mut()?;
        if record.reported {
            return None;
        }
        record.reported = true;
        Some(record.site.to_string())
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.lock().live
    }

    /// Leases held past `threshold` not reported before; each is reported once.
    pub(crate) fn newly_leaked(&self, threshold: Duration, target: &str) -> Vec<LeakReport> {
        let now = Instant::now();
        let mut slab = self.slab.lock();
        slab.records
            .iter_mut()
            .flatten()
            .filter(|record| {
                !record.reported && now.duration_since(record.acquired_at) >= threshold
            })
            .map(|record| {
                record.reported = true;
                LeakReport {
                    target: target.to_owned(),
                    site: record.site.to_string(),
                    held_for: now.duration_since(record.acquired_at),
                }
            })
            .collect()
    }

    /// Every lease held past `threshold`, reported or not.
    pub(crate) fn held_past(&self, threshold: Duration, target: &str) -> Vec<LeakReport> {
        let now = Instant::now();
        self.slab
            .lock()
            .records
            .iter()
            .flatten()
            .filter(|record| now.duration_since(record.acquired_at) >= threshold)
            .map(|record| LeakReport {
                target: target.to_owned(),
                site: record.site.to_string(),
                held_for: now.duration_since(record.acquired_at),
            })
            .collect()
    }
}
