//! Endpoints the host program sets for `static:///name` targets ([`crate::Pool::set_endpoints`]),
//! read by those targets when they resolve: at their first use, on every update, and on the
//! DNS refresh schedule.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::target::{literal_addresses, Address, Endpoint};

/// One endpoint set for a name, and its weight (1 unless given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Weighted {
    pub(crate) endpoint: Endpoint,
    /// round_robin gives the endpoint's addresses this many turns per round.
    pub(crate) weight: u32,
}

/// The endpoints set so far, by name.
#[derive(Default)]
pub(crate) struct PushedEndpoints(RwLock<HashMap<String, Arc<[Weighted]>>>);

impl PushedEndpoints {
    /// Replaces the endpoints of `name` (an empty list leaves it with none).
    pub(crate) fn set(&self, name: &str, endpoints: Vec<Weighted>) {
        self.0.write().insert(name.to_owned(), endpoints.into());
    }

    /// The endpoints of `name`, if any were ever set.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<[Weighted]>> {
        self.0.read().get(name).cloned()
    }
}

/// The addresses `endpoints` name with their weights when none needs resolving (IP literals
/// and socket paths), sorted, an address named twice keeping its larger weight; `None` when
/// some name must be looked up.
pub(crate) fn literal_weighted(endpoints: &[Weighted]) -> Option<Vec<(Address, u32)>> {
    let mut weighted = Vec::new();
    for entry in endpoints {
        for address in literal_addresses(std::slice::from_ref(&entry.endpoint))? {
            weighted.push((address, entry.weight));
        }
    }
    Some(merged(weighted))
}

/// Sorted by address, one entry per address with the largest weight it was given.
pub(crate) fn merged(mut weighted: Vec<(Address, u32)>) -> Vec<(Address, u32)> {
    weighted.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    weighted.dedup_by(|later, kept| later.0 == kept.0);
    weighted
}
