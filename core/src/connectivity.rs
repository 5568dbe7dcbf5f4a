//! A target's connectivity in gRPC's five states, and the pool-wide signal that it may have
//! changed: what grpcio's `Channel.subscribe`, grpc.aio's `get_state`/`wait_for_state_change`
//! and grpc-js's `getConnectivityState`/`watchConnectivityState` report.

use std::time::Instant;

use tokio::sync::watch;

use crate::shared::Shared;
use crate::Error;

/// A target's connectivity, as gRPC names it (grpc's `connectivity_state`). The numbers are
/// gRPC's, the same in grpcio's `ChannelConnectivity` and grpc-js's `ConnectivityState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Connectivity {
    /// No connection and none being made: the target was not used yet, left the pool after
    /// `target_idle_timeout`, or keeps no connection when unused (`min_connections` 0).
    Idle = 0,
    /// No connection takes calls yet and a dial is under way (or about to start).
    Connecting = 1,
    /// At least one connection takes calls.
    Ready = 2,
    /// No connection takes calls and the last dial or resolution failed (or every ready
    /// connection's server is not serving, or its address is ejected): calls that do not wait
    /// for ready fail fast with UNAVAILABLE while the pool backs off and dials again.
    TransientFailure = 3,
    /// The pool is closed.
    Shutdown = 4,
}

impl Connectivity {
    /// gRPC's name for the state (`READY`, `TRANSIENT_FAILURE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Connectivity::Idle => "IDLE",
            Connectivity::Connecting => "CONNECTING",
            Connectivity::Ready => "READY",
            Connectivity::TransientFailure => "TRANSIENT_FAILURE",
            Connectivity::Shutdown => "SHUTDOWN",
        }
    }

    /// The state with gRPC's number `value`, if there is one.
    pub fn from_number(value: u32) -> Option<Connectivity> {
        match value {
            0 => Some(Connectivity::Idle),
            1 => Some(Connectivity::Connecting),
            2 => Some(Connectivity::Ready),
            3 => Some(Connectivity::TransientFailure),
            4 => Some(Connectivity::Shutdown),
            _ => None,
        }
    }
}

/// Says "some target's connectivity may have changed" to whoever watches the pool. One signal
/// for the whole pool, not one per target: changes are rare (dials, losses, health answers,
/// targets made or gone), a watcher recomputes its target's state on each, and a target that
/// is not in the pool yet has nothing of its own to wait on.
pub(crate) struct ConnectivitySignal {
    changes: watch::Sender<u64>,
}

impl Default for ConnectivitySignal {
    fn default() -> ConnectivitySignal {
        ConnectivitySignal {
            changes: watch::Sender::new(0),
        }
    }
}

impl ConnectivitySignal {
    /// Wakes every watcher to look again.
    pub(crate) fn changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A receiver that sees every change from now on: take it before reading the state, so a
    /// change between the read and the wait is not missed.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Waits until `current()` is other than `last` (or `deadline` passes) and returns it: the loop
/// behind [`crate::Pool::connectivity_changed`]. `current` is read after subscribing, so no
/// change slips between the read and the wait.
pub(crate) async fn changed_from<F>(
    signal: &ConnectivitySignal,
    shared: &Shared,
    last: Connectivity,
    deadline: Option<Instant>,
    mut current: F,
) -> Result<Connectivity, Error>
where
    F: FnMut() -> Result<Connectivity, Error>,
{
    let mut changes = signal.subscribe();
    loop {
        let state = current()?;
        if state != last || state == Connectivity::Shutdown {
            return Ok(state);
        }
        let waited = shared.until_opt(deadline, wait(&mut changes)).await;
        if waited.is_none() {
            return current();
        }
    }
}

/// The next change; never, once the pool's sender is gone (the pool is dropping).
async fn wait(changes: &mut watch::Receiver<u64>) {
    if changes.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grpcs() {
        for number in 0..5 {
            let state = Connectivity::from_number(number);
            assert_eq!(state.map(|state| state as u32), Some(number));
        }
        assert_eq!(Connectivity::from_number(5), None);
        assert_eq!(Connectivity::TransientFailure.name(), "TRANSIENT_FAILURE");
    }

    #[tokio::test]
    async fn a_change_after_subscribing_is_seen() {
        let signal = ConnectivitySignal::default();
        let mut receiver = signal.subscribe();
        signal.changed();
        assert!(receiver.changed().await.is_ok());
    }
}
