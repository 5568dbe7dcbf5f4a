//! The addresses a target stands for now, each with its own reconnect backoff.

use std::time::{Duration, Instant};

use crate::backoff::{Backoff, BackoffConfig};
use crate::target::Address;

struct Entry {
    address: Address,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

/// Addresses from the last resolution; a failed address waits out its backoff, then is tried again.
pub(crate) struct AddressBook {
    entries: Vec<Entry>,
    backoff: BackoffConfig,
    resolved_at: Option<Instant>,
    rotation: usize,
    /// A lookup is due at once (a connection was lost).
    resolve_now: bool,
    /// When a lost connection last asked for a lookup.
    loss_resolution_at: Option<Instant>,
}

/// A lost connection asks for a new lookup at most this often (gRPC's resolvers rate-limit
/// re-resolution to 30 s).
const LOSS_RESOLUTION_EVERY: Duration = Duration::from_secs(30);

impl AddressBook {
    pub(crate) fn new(backoff: BackoffConfig) -> AddressBook {
        AddressBook {
            entries: Vec::new(),
            backoff,
            resolved_at: None,
            rotation: 0,
            resolve_now: false,
            loss_resolution_at: None,
        }
    }

    pub(crate) fn is_resolved(&self) -> bool {
        self.resolved_at.is_some()
    }

    /// Whether the addresses should be looked up again.
    pub(crate) fn resolution_due(&self, now: Instant, every: Duration) -> bool {
        self.resolve_now
            || self
                .resolved_at
                .is_none_or(|at| now.duration_since(at) >= every)
    }

    pub(crate) fn next_resolution(&self, every: Duration) -> Option<Instant> {
        if self.resolve_now {
            return Some(Instant::now());
        }
        self.resolved_at.map(|at| at + every)
    }

    /// A connection was lost: the name may point elsewhere now, so it is looked up again at
    /// once, as gRPC does, but at most once per `LOSS_RESOLUTION_EVERY`; true when asked.
    pub(crate) fn resolve_after_loss(&mut self, now: Instant) -> bool {
        let recently = self
            .loss_resolution_at
            .is_some_and(|at| now.duration_since(at) < LOSS_RESOLUTION_EVERY);
        if recently {
            return false;
        }
        self.loss_resolution_at = Some(now);
        self.resolve_now = true;
        true
    }

    /// Replaces the address list, keeping the backoff of addresses that stay; `shuffle` puts it
    /// in a random order first (pick_first's `shuffleAddressList`, gRPC A62).
    pub(crate) fn update(&mut self, mut addresses: Vec<Address>, now: Instant, shuffle: bool) {
        if shuffle {
            fastrand::shuffle(&mut addresses);
        }
        let mut previous = std::mem::take(&mut self.entries);
        self.entries = addresses
            .into_iter()
            .map(
                |address| match previous.iter().position(|entry| entry.address == address) {
                    Some(index) => previous.swap_remove(index),
                    None => Entry {
                        address,
                        backoff: Backoff::new(self.backoff.clone()),
                        retry_at: None,
                    },
                },
            )
            .collect();
        self.resolved_at = Some(now);
        self.resolve_now = false;
    }

    /// A failed resolution still counts as an attempt, so it is retried on the interval.
    pub(crate) fn resolution_failed(&mut self, now: Instant) {
        self.resolved_at = Some(now);
        self.resolve_now = false;
    }

    /// How many addresses the last resolution gave.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every address of the last resolution, in order.
    pub(crate) fn addresses(&self) -> Vec<Address> {
        self.entries
            .iter()
            .map(|entry| entry.address.clone())
            .collect()
    }

    pub(crate) fn contains(&self, address: &Address) -> bool {
        self.entries.iter().any(|entry| &entry.address == address)
    }

    pub(crate) fn any_available(&self, now: Instant) -> bool {
        self.entries
            .iter()
            .any(|entry| entry.retry_at.is_none_or(|at| at <= now))
    }

    /// Addresses not waiting out a backoff.
    pub(crate) fn available(&self, now: Instant) -> impl Iterator<Item = &Address> {
        self.entries
            .iter()
            .filter(move |entry| entry.retry_at.is_none_or(|at| at <= now))
            .map(|entry| &entry.address)
    }

    /// The address the next connection goes to: under pick_first (`sticky`), the address that
    /// already has connections while it is out of backoff, else the first one in order that
    /// is; otherwise the address not in backoff with the fewest connections, ties rotated.
    pub(crate) fn pick(
        &mut self,
        now: Instant,
        sticky: bool,
        connections_to: impl Fn(&Address) -> usize,
    ) -> Option<Address> {
        if sticky {
            let mut available = self
                .entries
                .iter()
                .filter(|entry| entry.retry_at.is_none_or(|at| at <= now));
            let first = available.clone().next();
            return available
                .find(|entry| connections_to(&entry.address) > 0)
                .or(first)
                .map(|entry| entry.address.clone());
        }
        let count = self.entries.len();
        self.rotation = self.rotation.wrapping_add(1);
        (0..count)
            .map(|offset| &self.entries[(self.rotation + offset) % count])
            .filter(|entry| entry.retry_at.is_none_or(|at| at <= now))
            .min_by_key(|entry| connections_to(&entry.address))
            .map(|entry| entry.address.clone())
    }

    /// Records a failed attempt; returns the wait before the address is tried again.
    pub(crate) fn failed(&mut self, address: &Address, now: Instant) -> Duration {
        match self
            .entries
            .iter_mut()
            .find(|entry| &entry.address == address)
        {
            Some(entry) => {
                let delay = entry.backoff.next_delay();
                entry.retry_at = Some(now + delay);
                delay
            }
            None => Duration::ZERO,
        }
    }

    pub(crate) fn succeeded(&mut self, address: &Address) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|entry| &entry.address == address)
        {
            entry.backoff.reset();
            entry.retry_at = None;
        }
    }

    /// When the earliest address in backoff may be tried again.
    pub(crate) fn earliest_retry(&self) -> Option<Instant> {
        self.entries.iter().filter_map(|entry| entry.retry_at).min()
    }
}
