//! The target's balancing policy, which an xDS cluster's lb_policy may change while calls
//! pick: one atomic word, read on every pick without a lock.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::service_config::LoadBalancing;

/// A [`LoadBalancing`] that can be replaced.
pub(crate) struct BalancingCell(AtomicU64);

impl BalancingCell {
    pub(crate) fn new(balancing: LoadBalancing) -> BalancingCell {
        BalancingCell(AtomicU64::new(encode(balancing)))
    }

    pub(crate) fn get(&self) -> LoadBalancing {
        decode(self.0.load(Ordering::Relaxed))
    }

    /// Replaces the policy; whether it changed.
    pub(crate) fn set(&self, balancing: LoadBalancing) -> bool {
        self.0.swap(encode(balancing), Ordering::AcqRel) != encode(balancing)
    }
}

/// Low byte: the policy; above it least_request's choice count.
fn encode(balancing: LoadBalancing) -> u64 {
    match balancing {
        LoadBalancing::LeastLoaded => 0,
        LoadBalancing::PickFirst {
            shuffle_address_list: false,
        } => 1,
        LoadBalancing::PickFirst {
            shuffle_address_list: true,
        } => 2,
        LoadBalancing::RoundRobin => 3,
        LoadBalancing::LeastRequest { choice_count } => 4 | (u64::from(choice_count) << 8),
    }
}

fn decode(word: u64) -> LoadBalancing {
    match word & 0xff {
        1 => LoadBalancing::PickFirst {
            shuffle_address_list: false,
        },
        2 => LoadBalancing::PickFirst {
            shuffle_address_list: true,
        },
        3 => LoadBalancing::RoundRobin,
        4 => LoadBalancing::LeastRequest {
            // Encoded from a u32.
            choice_count: u32::try_from(word >> 8).unwrap_or(2),
        },
        _ => LoadBalancing::LeastLoaded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_round_trips() {
        for policy in [
            LoadBalancing::LeastLoaded,
            LoadBalancing::PickFirst {
                shuffle_address_list: false,
            },
            LoadBalancing::PickFirst {
                shuffle_address_list: true,
            },
            LoadBalancing::RoundRobin,
            LoadBalancing::LeastRequest { choice_count: 7 },
        ] {
            let cell = BalancingCell::new(LoadBalancing::LeastLoaded);
            cell.set(policy);
            assert_eq!(cell.get(), policy);
        }
    }
}
