//! What an `xds:///name` target's xDS configuration decides: whether it may dial yet, why
//! its calls wait or fail, its balancing policy and its circuit breaker.
//!
//! Until the target's resources arrive, every call waits (as with wait-for-ready) up to its
//! deadline, then fails with UNAVAILABLE naming the resource still missing: it gives up a
//! twentieth of its wait (at most 100 ms) before the deadline, since a failure at the deadline
//! would be reported as DEADLINE_EXCEEDED. Calls that do
//! not wait for ready fail fast only once a resource is known absent: the control plane left
//! it out of an LDS or CDS response, or it did not come within the does-not-exist timeout
//! (15 s, as gRPC's).

use std::sync::atomic::Ordering;

use super::TargetPool;
use crate::target::Target;
use crate::xds::selection::Outcome;
use crate::Error;

impl TargetPool {
    /// The listener an `xds:///name` target (or one of its routes) follows.
    pub(crate) fn xds_name(&self) -> Option<&str> {
        self.target.xds_name()
    }

    /// The target (its text, settings) a route of an xDS target serves under.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The target's xDS outcome now; `None` for targets of other kinds.
    pub(super) fn xds_outcome(&self) -> Option<Outcome> {
        let name = self.target.xds_name()?;
        let key = self.target.pushed_name()?;
        let outcome = match self.shared.xds() {
            Some(client) => client.outcome(name, key),
            None => Outcome::Waiting("the xDS client has not started".to_owned()),
        };
        Some(outcome)
    }

    /// Whether the target is an xDS one whose endpoints are not known yet (nothing to dial).
    pub(super) fn xds_not_ready(&self) -> bool {
        self.xds_outcome()
            .is_some_and(|outcome| !matches!(outcome, Outcome::Ready(_)))
    }

    /// For an xDS target that is not ready: `Ok` while its resources may still come (the call
    /// waits), UNAVAILABLE once one is known absent. `None` when the usual checks apply.
    pub(super) fn xds_fail_fast(&self) -> Option<Result<(), Error>> {
        match self.xds_outcome()? {
            Outcome::Ready(_) => None,
            Outcome::Waiting(_) => Some(Ok(())),
            Outcome::Failing(reason) => Some(Err(self.unavailable(reason))),
        }
    }

    /// What a call that waited out its deadline on an xDS target without a configuration
    /// fails with: UNAVAILABLE naming the missing resource.
    pub(crate) fn xds_deadline_error(&self) -> Option<Error> {
        match self.xds_outcome()? {
            Outcome::Ready(_) => None,
            Outcome::Waiting(reason) | Outcome::Failing(reason) => Some(self.unavailable(reason)),
        }
    }

    /// Why an xDS target has no address to dial, when it has none.
    pub(super) fn xds_no_endpoints(&self) -> Option<String> {
        Some(match self.xds_outcome()? {
            Outcome::Ready(selected) => format!(
                "{}: xDS cluster(s) {} have no healthy endpoint",
                self.target.text,
                selected.clusters.join(", ")
            ),
            Outcome::Waiting(reason) | Outcome::Failing(reason) => {
                format!("{}: {reason}", self.target.text)
            }
        })
    }

    /// Takes the cluster's lb_policy and circuit breaker from a ready xDS configuration.
    pub(super) fn xds_apply_policy(&self) {
        if let Some(Outcome::Ready(selected)) = self.xds_outcome() {
            if self.balancing.set(selected.balancing) {
                tracing::debug!(target = %self.target.text, balancing = ?selected.balancing, "xDS balancing policy");
            }
            let max = selected.max_requests.map_or(u64::MAX, u64::from);
            self.xds_max_requests.store(max, Ordering::Release);
        }
    }

    /// UNAVAILABLE when the cluster's circuit breaker allows no more calls in flight.
    pub(super) fn xds_circuit_breaker(&self) -> Result<(), Error> {
        let max = self.xds_max_requests.load(Ordering::Acquire);
        if max == u64::MAX {
            return Ok(());
        }
        let in_flight: u64 = self
            .connections
            .read()
            .iter()
            .map(|connection| u64::from(connection.reserved()))
            .sum();
        if in_flight >= max {
            return Err(self.unavailable(format!(
                "the xDS cluster's circuit breaker allows {max} requests in flight"
            )));
        }
        Ok(())
    }

    fn unavailable(&self, reason: String) -> Error {
        Error::Unavailable {
            target: self.target.text.clone(),
            reason,
        }
    }
}
