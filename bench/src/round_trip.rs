//! The emulated round trip: the tonic echo server behind the delay proxy (delay_proxy.rs), so
//! that what a pooled connection saves over a connection per call shows as it would across a
//! real link, where a handshake costs round trips rather than loopback microseconds.
//!
//! For each transport the harness starts the server (a child process), for each one-way delay a
//! proxy inside the harness (on a runtime thread of its own), and runs each client row through it
//! as a driver child process, one round: none of the proxy's CPU is billed to a client.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::clients::Transport;
use crate::delay_proxy::DelayProxy;
use crate::driver::{self, DriveArgs};
use crate::measure::Cell;
use crate::report::{RoundTrip, RoundTripRow};
use crate::server::{ChildServer, ServerKind};

/// The client rows compared: the pooled async API and a new channel for each call.
pub const CLIENTS: [&str; 2] = ["grpcpool", "dial-per-call"];
/// The request of every call: a 1 KiB SimpleRequest, as in the matrix.
const PAYLOAD: usize = 1024;
/// How far past its time a driver may run before it is killed.
const SLACK: Duration = Duration::from_secs(30);

/// What the section runs: every delay × transport × concurrency × client.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub delays: Vec<Duration>,
    pub transports: Vec<Transport>,
    pub concurrency: Vec<usize>,
    pub clients: Vec<&'static str>,
    /// Counted and warm-up seconds of each driver run.
    pub seconds: f64,
    pub warmup: f64,
}

impl Plan {
    /// 1 ms and 10 ms each way, plaintext and TLS, c = 1 and 16, the rows of [`CLIENTS`] that
    /// `wanted` names (all when `None`); 3 s per run, or 1 s when `quick`. Sixteen runs come to
    /// about a minute (quick: half that) with the processes' start-up.
    pub fn new(quick: bool, wanted: Option<&[String]>) -> Plan {
        let clients = CLIENTS
            .into_iter()
            .filter(|name| wanted.is_none_or(|wanted| wanted.iter().any(|w| w == name)))
            .collect();
        Plan {
            delays: vec![Duration::from_millis(1), Duration::from_millis(10)],
            transports: vec![Transport::Plaintext, Transport::Tls],
            concurrency: vec![1, 16],
            clients,
            seconds: if quick { 1.0 } else { 3.0 },
            // Enough for the pooled row's connection and its handshakes at 10 ms each way.
            warmup: if quick { 0.3 } else { 0.5 },
        }
    }

    /// How many driver runs it makes.
    pub fn runs(&self) -> usize {
        self.delays.len() * self.transports.len() * self.concurrency.len() * self.clients.len()
    }
}

/// Runs the plan: servers pinned to `server_cpu`, drivers to `client_cpu` when given.
pub fn run(plan: &Plan, server_cpu: Option<usize>, client_cpu: Option<usize>) -> RoundTrip {
    let mut out = RoundTrip {
        seconds: plan.seconds,
        warmup: plan.warmup,
        ..RoundTrip::default()
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe.display().to_string(),
        Err(error) => {
            out.notes.push(format!("no path to this binary: {error}"));
            return out;
        }
    };
    let started = Instant::now();
    for &transport in &plan.transports {
        let server = match ChildServer::start(ServerKind::Tonic, transport, server_cpu) {
            Ok(server) => server,
            Err(error) => {
                out.notes
                    .push(format!("tonic server, {}: {error}", transport.name()));
                continue;
            }
        };
        if transport == Transport::Tls {
            out.tls_key = server.key_kind.to_owned();
        }
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port));
        for &delay in &plan.delays {
            let proxy = match DelayProxy::start(upstream, delay) {
                Ok(proxy) => proxy,
                Err(error) => {
                    out.notes.push(format!("delay proxy: {error}"));
                    continue;
                }
            };
            // The server's own scheme and certificate name; only the port is the proxy's.
            let scheme = if transport == Transport::Tls {
                "https"
            } else {
                "http"
            };
            for &concurrency in &plan.concurrency {
                let args = DriveArgs {
                    target: format!("{scheme}://127.0.0.1:{}", proxy.port()),
                    concurrency,
                    seconds: plan.seconds,
                    warmup: plan.warmup,
                    payload: PAYLOAD,
                    connections: 1,
                    method: server.method.clone(),
                    tls_ca: server.ca_file.clone(),
                    server_name: server.server_name.clone(),
                };
                for &client in &plan.clients {
                    let command = [exe.clone(), "drive".into(), client.into()];
                    let before = proxy.accepted();
                    let result = driver::run(&command, &args, client_cpu, SLACK);
                    let mut cell = Cell {
                        server: ServerKind::Tonic.name().into(),
                        transport: transport.name().into(),
                        client: client.into(),
                        face: "rust".into(),
                        ours: client == "grpcpool",
                        concurrency,
                        payload: PAYLOAD,
                        connections: 1,
                        ..Cell::default()
                    };
                    match result {
                        Ok(report) => cell.fill(&[report]),
                        Err(error) => cell.note = Some(format!("failed: {error}")),
                    }
                    let row = RoundTripRow {
                        one_way_ms: delay.as_secs_f64() * 1e3,
                        proxy_connections: proxy.accepted().saturating_sub(before),
                        cell,
                    };
                    println!(
                        "  {:>4} ms each way, {:<9} c={:<3} {}  ({} connections)",
                        row.one_way_ms,
                        transport.name(),
                        concurrency,
                        row.cell.row(),
                        row.proxy_connections
                    );
                    out.rows.push(row);
                }
            }
        }
    }
    println!("  ({:.0} s)", started.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_both_rows_unless_the_clients_say_otherwise() {
        let full = Plan::new(false, None);
        assert_eq!(full.clients, CLIENTS.to_vec());
        assert_eq!(full.runs(), 16);
        let quick = Plan::new(true, None);
        assert!(quick.seconds < full.seconds);
        assert_eq!(quick.runs(), 16);
        let wanted = ["grpcpool".to_owned(), "tonic-channel".to_owned()];
        let some = Plan::new(true, Some(&wanted));
        assert_eq!(some.clients, vec!["grpcpool"]);
        assert_eq!(some.runs(), 8);
        assert_eq!(Plan::new(true, Some(&[])).runs(), 0);
    }
}
