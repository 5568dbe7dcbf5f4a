//! Endpoints the host program sets for `static:///name` targets ([`crate::Pool::set_endpoints`]),
//! read by those targets when they resolve: at their first use, on every update, and on the
//! DNS refresh schedule.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::target::Endpoint;

/// The endpoints set so far, by name.
#[derive(Default)]
pub(crate) struct PushedEndpoints(RwLock<HashMap<String, Arc<[Endpoint]>>>);

impl PushedEndpoints {
    /// Replaces the endpoints of `name` (an empty list leaves it with none).
    pub(crate) fn set(&self, name: &str, endpoints: Vec<Endpoint>) {
        self.0.write().insert(name.to_owned(), endpoints.into());
    }

    /// The endpoints of `name`, if any were ever set.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<[Endpoint]>> {
        self.0.read().get(name).cloned()
    }
}
