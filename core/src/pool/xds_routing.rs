//! Calls to `xds:///name` targets: the pool's xDS client, and which of the target's pools a
//! call takes (its route's, by the call's path).

use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use super::{endpoints_changed, Pool};
use crate::prepared_call::PreparedCall;
use crate::shared::Shared;
use crate::target_pool::{xds_margin, TargetPool};
use crate::xds::bootstrap::Bootstrap;
use crate::xds::client::{Notifier, Route, XdsClient};
use crate::Error;

impl Pool {
    /// The pool's xDS client, started on first use from the bootstrap (the `xds_bootstrap`
    /// setting, `GRPC_XDS_BOOTSTRAP` or `GRPC_XDS_BOOTSTRAP_CONFIG`).
    pub(super) fn xds_client(&self, shared: &Arc<Shared>) -> Result<Arc<XdsClient>, Error> {
        if let Some(client) = shared.xds() {
            return Ok(Arc::clone(client));
        }
        let _starting = shared.xds_starting.lock();
        if let Some(client) = shared.xds() {
            return Ok(Arc::clone(client));
        }
        let bootstrap = Bootstrap::load(self.inner.config.xds_bootstrap.as_deref())
            .map_err(Error::InvalidConfig)?;
        let targets = Arc::downgrade(&self.inner.targets);
        let notify: Notifier = Box::new(move |key: &str| {
            if let Some(targets) = targets.upgrade() {
                endpoints_changed(&targets, key);
            }
        });
        let client = XdsClient::start(
            bootstrap,
            Arc::clone(&shared.config),
            shared.runtime.clone(),
            Arc::clone(&shared.pushed),
            notify,
        );
        let client = shared.xds.get_or_init(|| client);
        if shared.is_closed() {
            client.close();
        }
        Ok(Arc::clone(client))
    }

    /// The pool a call takes on `main` (a target's own pool): itself, or for an xDS target
    /// whose route for the call's path goes to other clusters, that route's (made on first
    /// use). Before the target's configuration is known the call waits for it, up to just
    /// before its deadline. `Err(Unavailable)` when no route matches the path, or naming the
    /// resource that did not come.
    pub(super) async fn route_call(
        &self,
        main: &Arc<TargetPool>,
        call: &PreparedCall,
    ) -> Result<Arc<TargetPool>, Error> {
        let Some(name) = main.xds_name() else {
            return Ok(Arc::clone(main));
        };
        let Some(client) = main.shared().xds() else {
            return Ok(Arc::clone(main));
        };
        let path = call.path.as_str();
        // As the target's own acquire, give up a little before the deadline, so the call
        // fails with UNAVAILABLE naming what is missing rather than DEADLINE_EXCEEDED.
        let wait = call.acquire_wait(main.config());
        let until = Instant::now().checked_add(wait.saturating_sub(xds_margin(wait)));
        loop {
            let mut changed = pin!(client.changed());
            changed.as_mut().enable();
            match client.route(name, path) {
                Route::Default => return Ok(Arc::clone(main)),
                Route::Unrouted(reason) => {
                    return Err(Error::Unavailable {
                        target: main.text().to_owned(),
                        reason,
                    })
                }
                Route::Other(key) => {
                    return self
                        .target_pool_with(&key, main.text(), || Ok(main.target().for_route(&key)))
                }
                Route::Pending => {
                    if main.shared().until_opt(until, changed).await.is_none() {
                        return Err(main.xds_deadline_error().unwrap_or_else(|| {
                            Error::Unavailable {
                                target: main.text().to_owned(),
                                reason: "the xDS configuration did not arrive".to_owned(),
                            }
                        }));
                    }
                }
            }
        }
    }
}
