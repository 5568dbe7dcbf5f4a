//! Load harness comparing grpcpool with the clients users would pick instead.
//!
//! `grpcpool-bench [--quick] [--seconds N] [--rounds N] [--concurrency 1,16,128] [--transports plain,tls]`
//! starts the echo server in a child process (so the client's CPU is the client's alone), then
//! runs every client at every concurrency side by side and prints QPS, p50/p99 latency and
//! client CPU microseconds per call, with the ratios the core issue sets targets for.

mod clients;
mod measure;
mod server;

use std::time::Duration;

use clients::{ClientKind, Transport};

struct Options {
    seconds: f64,
    rounds: usize,
    concurrency: Vec<usize>,
    transports: Vec<Transport>,
    json: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 2.0,
        rounds: 3,
        concurrency: vec![1, 16, 128],
        transports: vec![Transport::Plaintext, Transport::Tls],
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                options.seconds = 1.0;
                options.rounds = 1;
            }
            "--rounds" => {
                options.rounds = value()?.parse().map_err(|_| "--rounds takes a number")?
            }
            "--seconds" => {
                options.seconds = value()?.parse().map_err(|_| "--seconds takes a number")?
            }
            "--concurrency" => {
                options.concurrency = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|_| format!("bad concurrency {n:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--transports" => {
                options.transports = value()?
                    .split(',')
                    .map(|name| match name {
                        "plain" | "plaintext" => Ok(Transport::Plaintext),
                        "tls" => Ok(Transport::Tls),
                        other => Err(format!("unknown transport {other:?}")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--json" => options.json = Some(value()?),
            "--help" | "-h" => {
                println!("usage: grpcpool-bench [--quick] [--seconds N] [--rounds N] [--concurrency 1,16,128] [--transports plain,tls] [--json FILE]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return server::serve_child();
    }
    let options = parse_options()?;
    let duration = Duration::from_secs_f64(options.seconds);
    let mut cells = Vec::new();
    for transport in &options.transports {
        let server = server::ChildServer::start(*transport)?;
        println!(
            "\n{} server at {} (child process {}) {}",
            transport.name(),
            server.target,
            server.pid(),
            server.key_kind
        );
        for &concurrency in &options.concurrency {
            // Clients take turns within each round, so drift on a shared machine hits all alike.
            let mut rounds = Vec::new();
            for _ in 0..options.rounds.max(1) {
                for kind in ClientKind::ALL
                    .into_iter()
                    .filter(|kind| clients::available(*kind))
                {
                    rounds.push(
                        clients::run(kind, &server, concurrency, duration)
                            .map_err(|error| error.to_string())?,
                    );
                }
            }
            for kind in ClientKind::ALL
                .into_iter()
                .filter(|kind| clients::available(*kind))
            {
                let cell = measure::median(rounds.iter().filter(|cell| cell.client == kind.name()));
                println!("  {}", cell.row());
                cells.push(cell);
            }
        }
    }
    println!("\n{}", measure::ratios(&cells));
    if let Some(path) = options.json {
        std::fs::write(&path, serde_json::to_string_pretty(&cells)?)?;
        println!("results written to {path}");
    }
    Ok(())
}
