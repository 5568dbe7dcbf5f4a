//! Name resolution for targets: the system's DNS by default, or the caller's own.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// The future a [`Resolve`] implementation returns.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static>>;

/// Turns a host name and port into socket addresses. Implement it to plug in service discovery.
pub trait Resolve: Send + Sync + 'static {
    /// Every address `host` stands for now.
    fn resolve(&self, host: &str, port: u16) -> Resolving;
}

/// The resolver a pool uses; [`Resolver::system`] (the default) asks the operating system.
#[derive(Clone)]
pub struct Resolver(Option<Arc<dyn Resolve>>);

impl Resolver {
    /// The operating system's resolver (getaddrinfo).
    pub fn system() -> Resolver {
        Resolver(None)
    }

    /// A resolver of the caller's.
    pub fn custom(resolve: impl Resolve) -> Resolver {
        Resolver(Some(Arc::new(resolve)))
    }

    pub(crate) async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match &self.0 {
            Some(custom) => custom.resolve(host, port).await,
            None => Ok(tokio::net::lookup_host((host, port)).await?.collect()),
        }
    }
}

impl Default for Resolver {
    fn default() -> Resolver {
        Resolver::system()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Resolver(custom)"
        } else {
            "Resolver(system)"
        })
    }
}
