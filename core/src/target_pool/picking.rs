//! Which ready connection a call takes, as the target's balancing policy says.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::TargetPool;
use crate::connection::Connection;
use crate::service_config::LoadBalancing;
use crate::target::Address;

/// A connection with a free slot, and its stream limit now.
type Choice<'a> = (&'a Arc<Connection>, u32);

impl TargetPool {
    /// The connection the next call should take, with its stream limit: `None` when no ready
    /// connection has a free slot.
    pub(super) fn choose<'a>(&self, connections: &'a [Arc<Connection>]) -> Option<Choice<'a>> {
        let start = self.rotation.fetch_add(1, Ordering::Relaxed);
        match self.balancing.get() {
            // pick_first keeps every connection on one address, so the least loaded of all is
            // the least loaded there.
            LoadBalancing::LeastLoaded | LoadBalancing::PickFirst { .. } => {
                least_loaded(rotated(connections, start))
            }
            LoadBalancing::RoundRobin => {
                let addresses = with_free_slots(connections);
                let count = addresses.len();
                let first = self.turn(&addresses, start);
                (0..count).find_map(|offset| {
                    let address = addresses[first.wrapping_add(offset) % count];
                    least_loaded(at(connections, start, address))
                })
            }
            LoadBalancing::LeastRequest { choice_count } => {
                let addresses = with_free_slots(connections);
                if addresses.is_empty() {
                    return None;
                }
                // A48: sample choice_count addresses (with replacement), keep the one with
                // the fewest calls in flight.
                let sampled = (0..choice_count)
                    .map(|_| addresses[fastrand::usize(..addresses.len())])
                    .min_by_key(|address| outstanding(connections, address))?;
                least_loaded(at(connections, start, sampled))
            }
        }
    }

    /// Which of `addresses` has turn `start` of the rotation: each in turn, or with pushed
    /// weights each as many turns per round as its weight.
    fn turn(&self, addresses: &[&Address], start: usize) -> usize {
        let weights = self.weights.read();
        if weights.is_empty() || addresses.is_empty() {
            return start % addresses.len().max(1);
        }
        let weight = |address: &Address| weights.get(address).copied().unwrap_or(1) as usize;
        let total: usize = addresses.iter().map(|address| weight(address)).sum();
        let mut position = start % total.max(1);
        for (index, address) in addresses.iter().enumerate() {
            let turns = weight(address);
            if position < turns {
                return index;
            }
            position -= turns;
        }
        0
    }

    /// The most connections the target may have: for policies that keep a connection to
    /// every address, at least one per address.
    pub(super) fn max_connections(&self) -> usize {
        let configured = self.config.max_connections_per_target;
        if self.covers_every_address() {
            configured.max(self.addresses.lock().len())
        } else {
            configured
        }
    }

    /// Whether the policy keeps a connection to every address (round_robin, least_request).
    pub(super) fn covers_every_address(&self) -> bool {
        matches!(
            self.balancing.get(),
            LoadBalancing::RoundRobin | LoadBalancing::LeastRequest { .. }
        )
    }

    /// Whether each resolution's addresses are shuffled (pick_first's `shuffleAddressList`).
    pub(super) fn shuffles_addresses(&self) -> bool {
        matches!(
            self.balancing.get(),
            LoadBalancing::PickFirst {
                shuffle_address_list: true
            }
        )
    }

    /// Whether new connections stay on the address that has them (pick_first).
    pub(super) fn sticky_address(&self) -> bool {
        matches!(self.balancing.get(), LoadBalancing::PickFirst { .. })
    }
}

/// Every connection once, starting at `start` (so ties spread).
fn rotated(
    connections: &[Arc<Connection>],
    start: usize,
) -> impl Iterator<Item = &Arc<Connection>> {
    let count = connections.len();
    (0..count).map(move |offset| &connections[start.wrapping_add(offset) % count])
}

/// The connections to `address`, rotated.
fn at<'a>(
    connections: &'a [Arc<Connection>],
    start: usize,
    address: &'a Address,
) -> impl Iterator<Item = &'a Arc<Connection>> {
    rotated(connections, start).filter(move |connection| &connection.address == address)
}

/// The ready connection with a free slot and the lowest reserved / limit; strictly lower wins,
/// so ties stay with the first seen.
fn least_loaded<'a>(candidates: impl Iterator<Item = &'a Arc<Connection>>) -> Option<Choice<'a>> {
    let mut best: Option<(&Arc<Connection>, u64, u64)> = None;
    for connection in candidates {
        if !connection.takes_calls() {
            continue;
        }
        let limit = connection.stream_limit();
        let reserved = connection.reserved();
        if reserved >= limit {
            continue;
        }
        let (reserved, limit) = (u64::from(reserved), u64::from(limit));
        let better = best.is_none_or(|(_, best_reserved, best_limit)| {
            reserved * best_limit < best_reserved * limit
        });
        if better {
            best = Some((connection, reserved, limit));
        }
    }
    best.map(|(connection, _, limit)| (connection, u32::try_from(limit).unwrap_or(u32::MAX)))
}

/// The addresses with a ready connection that has a free slot, in a fixed order.
fn with_free_slots(connections: &[Arc<Connection>]) -> Vec<&Address> {
    connections
        .iter()
        .filter(|connection| {
            connection.is_ready() && connection.reserved() < connection.stream_limit()
        })
        .map(|connection| &connection.address)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Calls in flight on every connection to `address`.
fn outstanding(connections: &[Arc<Connection>], address: &Address) -> u64 {
    connections
        .iter()
        .filter(|connection| &connection.address == address)
        .map(|connection| u64::from(connection.reserved()))
        .sum()
}
