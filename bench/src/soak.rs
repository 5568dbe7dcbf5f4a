//! The soak run (issue 12): a million unary calls through the C ABI from 16 threads, watching
//! the client's memory, to see whether anything grows with the number of calls made.
//!
//! `grpcpool-bench soak [--calls N] [--threads T] ...` starts the tonic echo server in a child
//! process (as the matrix does), builds bench/c/soak.c the way it builds driver.c, and runs it
//! pinned to a CPU of its own. The C program prints one JSON line per second (calls done,
//! failures, VmRSS, heap in use, threads, open descriptors) and a last line with the totals and
//! the pool's stats; this side reads them as they come, bounds the run in time, and writes
//! soak.json, samples.csv, soak.md and rss.svg under `--out` (and, with `--docs FILE`, the
//! report's section into that file). Not part of CI: the full run takes about a minute of two
//! cores and its figures are only worth reading on a machine that is otherwise quiet.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clients::Transport;
use crate::server::{ChildServer, ServerKind};
use crate::soak_report;
use crate::soak_summary;

/// How long past its own time cap the C program may run (its last calls' 10 s timeouts, the
/// pool's teardown) before it is killed as hung.
const KILL_SLACK: Duration = Duration::from_secs(60);

/// The longest time cap `--max-seconds` takes.
const MAX_SECONDS: f64 = 86_400.0;

const USAGE: &str = "usage: grpcpool-bench soak [--calls N] [--threads T] [--payload BYTES]
       [--warmup-calls W] [--max-seconds S] [--interval S] [--out DIR] [--docs FILE] [--no-pin]

Runs N (default 1,000,000) blocking grpcpool_unary calls of BYTES (default 1024) from T
(default 16) pthreads in bench/c/soak.c against the tonic echo server, stopping after N calls
or S seconds (default 900), whichever comes first, and samples the client's RSS every S
(default 1) seconds. The first W calls (default N/20) are the warm-up: RSS at start is read
after them and the growth per 100k calls is fitted to the samples after them. Writes
soak/soak.json, soak/samples.csv, soak/soak.md and soak/rss.svg under --out (default
target/bench); --docs FILE also puts the section into FILE (docs/benchmarks.md) and the plot
beside it in benchmarks/soak-rss.svg.";

/// What a soak run is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakOptions {
    /// Calls in all, the warm-up's included.
    pub calls: u64,
    /// Caller threads in the C program.
    pub threads: usize,
    /// Request payload bytes (the echo server sends as many back).
    pub payload: usize,
    /// Calls before the RSS at start is read; `None`: a twentieth of `calls`.
    pub warmup_calls: Option<u64>,
    /// The C program claims no call after this many seconds.
    pub max_seconds: f64,
    /// Seconds between RSS samples.
    pub interval: f64,
    pub out: PathBuf,
    pub docs: Option<PathBuf>,
    pub pin: bool,
}

impl SoakOptions {
    /// Parses `soak`'s arguments (after the subcommand); `Ok(None)` for `--help`.
    pub fn parse(args: &[String], default_out: PathBuf) -> Result<Option<SoakOptions>, String> {
        let mut options = SoakOptions {
            calls: 1_000_000,
            threads: 16,
            payload: 1024,
            warmup_calls: None,
            max_seconds: 900.0,
            interval: 1.0,
            out: default_out,
            docs: None,
            pin: true,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            let count = |text: String| -> Result<u64, String> {
                // 1_000_000 and 1,000,000 read as they are written.
                text.replace(['_', ','], "")
                    .parse()
                    .map_err(|_| format!("{arg} takes a whole number, not {text:?}"))
            };
            let seconds = |text: String| -> Result<f64, String> {
                match text.parse::<f64>() {
                    Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
                    _ => Err(format!(
                        "{arg} takes a positive number of seconds, not {text:?}"
                    )),
                }
            };
            match arg.as_str() {
                "--calls" => options.calls = count(value()?)?,
                "--threads" => options.threads = count(value()?)? as usize,
                "--payload" => options.payload = count(value()?)? as usize,
                "--warmup-calls" => options.warmup_calls = Some(count(value()?)?),
                "--max-seconds" => options.max_seconds = seconds(value()?)?,
                "--interval" => options.interval = seconds(value()?)?,
                "--out" => options.out = PathBuf::from(value()?),
                "--docs" => options.docs = Some(PathBuf::from(value()?)),
                "--no-pin" => options.pin = false,
                "--help" | "-h" => return Ok(None),
                other => return Err(format!("unknown soak argument {other:?} (try soak --help)")),
            }
        }
        if options.calls == 0 {
            return Err("--calls takes at least 1".into());
        }
        // The C program's own bound; past it thread stacks alone would dwarf what is measured.
        if !(1..=4096).contains(&options.threads) {
            return Err("--threads takes 1 to 4096".into());
        }
        if options.interval < 0.01 {
            return Err("--interval takes at least 0.01 s".into());
        }
        // A day is longer than any soak worth reading, and keeps the time arithmetic in range.
        if options.max_seconds > MAX_SECONDS || options.interval > MAX_SECONDS {
            return Err(format!(
                "--max-seconds and --interval take at most {MAX_SECONDS} s"
            ));
        }
        Ok(Some(options))
    }

    /// The warm-up's calls: as given, else a twentieth of the run.
    pub fn warmup(&self) -> u64 {
        self.warmup_calls.unwrap_or(self.calls / 20).min(self.calls)
    }

    /// The C program's arguments for these options against `target`.
    pub fn c_args(&self, target: &str, method: &str) -> Vec<String> {
        vec![
            "--target".into(),
            target.into(),
            "--method".into(),
            method.into(),
            "--calls".into(),
            self.calls.to_string(),
            "--threads".into(),
            self.threads.to_string(),
            "--payload".into(),
            self.payload.to_string(),
            "--warmup-calls".into(),
            self.warmup().to_string(),
            "--max-seconds".into(),
            self.max_seconds.to_string(),
            "--interval-ms".into(),
            ((self.interval * 1000.0).round() as u64).to_string(),
        ]
    }
}

/// One sample line of the C program; a negative figure is one it could not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// False for the sample after the caller threads exited (their stacks freed).
    #[serde(default = "running")]
    pub running: bool,
    /// Seconds since the pool was created (the first call came just after).
    pub t: f64,
    /// Calls completed, OK or not.
    pub calls: u64,
    pub failures: u64,
    /// VmRSS from /proc/self/status.
    pub rss_kib: i64,
    /// Heap in use from glibc's mallinfo2, the Rust library's allocations included.
    pub heap_kib: i64,
    pub threads: i64,
    /// Open file descriptors, sockets included.
    pub fds: i64,
}

fn running() -> bool {
    true
}

impl Default for Sample {
    fn default() -> Sample {
        Sample {
            running: true,
            t: 0.0,
            calls: 0,
            failures: 0,
            rss_kib: -1,
            heap_kib: -1,
            threads: -1,
            fds: -1,
        }
    }
}

/// The C program's last line: totals, and the pool as it was once every call had returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct End {
    pub threads: usize,
    pub payload: usize,
    pub calls: u64,
    pub ok: u64,
    /// Non-OK gRPC statuses by code name (UNAVAILABLE, ...).
    pub failures_by_code: BTreeMap<String, u64>,
    /// Calls the library failed by grpcpool_result name (GRPCPOOL_ACQUIRE_TIMEOUT, ...).
    pub failures_by_result: BTreeMap<String, u64>,
    /// From the first call to the last one's return.
    pub seconds: f64,
    pub warmup_calls: u64,
    /// When the warm-up's last call returned, seconds since the start; 0 if it never did.
    pub warmup_seconds: f64,
    /// "calls" when every call was made, "time" when the time cap stopped the run.
    pub stopped_by: String,
    pub cpu_seconds: f64,
    /// ru_maxrss: the peak between samples too.
    pub peak_rss_kib: i64,
    /// grpcpool_pool_stats_json after the threads joined (null if it failed).
    pub stats: serde_json::Value,
    /// grpcpool_pool_leaks_json then.
    pub leaks: serde_json::Value,
    pub rss_before_pool_kib: i64,
    pub heap_before_pool_kib: i64,
    pub rss_after_free_kib: i64,
    pub heap_after_free_kib: i64,
    pub threads_after_free: i64,
}

/// A line of the C program's output.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Line {
    Sample(Sample),
    End(Box<End>),
}

/// How and where the run happened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakMeta {
    /// The UTC date the run started, YYYY-MM-DD.
    pub date: String,
    pub unix_time: u64,
    /// CPUs, their model, memory and kernel.
    pub machine: String,
    /// CPUs this process may run on, to weigh the load average by.
    pub cpus: usize,
    pub pinned: String,
    pub load_before: String,
    pub load_after: String,
    /// The command that reproduces this run.
    pub command: String,
    /// The harness's wall time, server start and C build included.
    pub wall_seconds: f64,
}

/// `grpcpool-bench soak ARGS`.
pub fn main(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let Some(options) = SoakOptions::parse(args, crate::repo_root().join("target/bench"))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let started = Instant::now();
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let cpus = crate::affinity::allowed_cpus();
    let (server_cpu, client_cpu, pinned) = if options.pin && cpus.len() >= 2 {
        (
            Some(cpus[1]),
            Some(cpus[0]),
            format!("server on CPU {}, client on CPU {}", cpus[1], cpus[0]),
        )
    } else {
        (None, None, "no (one CPU, or --no-pin)".to_owned())
    };
    let mut meta = SoakMeta {
        date: soak_report::utc_date(unix_time),
        unix_time,
        machine: machine(cpus.len()),
        cpus: cpus.len(),
        pinned,
        load_before: crate::load_average(),
        command: rerun_command(args),
        ..SoakMeta::default()
    };
    let directory = std::path::absolute(&options.out)
        .unwrap_or_else(|_| options.out.clone())
        .join("soak");
    std::fs::create_dir_all(&directory)?;
    let binary = crate::build_c_program(&crate::repo_root(), &directory.join("c"), "c/soak.c")?;
    let server = ChildServer::start(ServerKind::Tonic, Transport::Plaintext, server_cpu)?;
    println!(
        "soak: {} calls of {} B from {} threads through the C ABI against the tonic server at {} \
         (warm-up {} calls, time cap {} s, a sample every {} s); pinning: {}; load average {}",
        options.calls,
        options.payload,
        options.threads,
        server.target,
        options.warmup(),
        options.max_seconds,
        options.interval,
        meta.pinned,
        meta.load_before
    );
    let mut command = Command::new(&binary);
    command.args(options.c_args(&server.target, &server.method));
    if let Some(cpu) = client_cpu {
        crate::affinity::pin_command(&mut command, cpu);
    }
    let limit = Duration::from_secs_f64(options.max_seconds) + KILL_SLACK;
    let (samples, end) = run_child(command, limit, options.calls)?;
    drop(server);
    meta.load_after = crate::load_average();
    meta.wall_seconds = started.elapsed().as_secs_f64();
    let summary = soak_summary::summarize(&samples, &end);
    for (figure, value) in soak_report::rows(&summary) {
        println!("  {figure:<64} {value}");
    }
    write(&options, &meta, &summary, &samples, &end, &directory)?;
    Ok(())
}

/// Runs the C program, echoing its progress, until its last line or `limit`.
fn run_child(
    mut command: Command,
    limit: Duration,
    calls: u64,
) -> Result<(Vec<Sample>, End), Box<dyn std::error::Error>> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or("no stdout from the soak client")?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or("no stderr from the soak client")?;
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Drained meanwhile so a chatty child cannot block on a full pipe; kept for the error.
    let errors = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buffer);
        buffer
    });
    let deadline = Instant::now() + limit;
    let mut samples = Vec::new();
    let mut end = None;
    let mut unparsed = Vec::new();
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            break Err(format!(
                "the soak client ran past {limit:?} and was killed ({} samples)",
                samples.len()
            ));
        }
        match received.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(line) => match serde_json::from_str::<Line>(&line) {
                Ok(Line::Sample(sample)) => {
                    progress(&sample, calls);
                    samples.push(sample);
                }
                Ok(Line::End(last)) => end = Some(*last),
                Err(_) => unparsed.push(line),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
        }
    };
    let status = child.wait();
    let _ = reader.join();
    let stderr = errors.join().unwrap_or_default();
    eprint!("\r\x1b[K");
    outcome?;
    let tail = || {
        let text = String::from_utf8_lossy(&stderr);
        let mut lines: Vec<&str> = text.lines().rev().take(3).collect();
        lines.extend(unparsed.iter().rev().take(2).map(String::as_str));
        lines.join(" | ")
    };
    match (end, status) {
        (Some(end), Ok(status)) if status.success() => Ok((samples, end)),
        (_, Ok(status)) => Err(format!("the soak client failed ({status}): {}", tail()).into()),
        (_, Err(error)) => Err(format!("the soak client: {error}").into()),
    }
}

/// `[#####-----] 340000/1000000 calls, 17 s, RSS 9.8 MiB` on stderr.
fn progress(sample: &Sample, calls: u64) {
    let width = 30;
    let filled = (sample.calls.min(calls) as usize * width)
        .checked_div(calls as usize)
        .unwrap_or(width);
    eprint!(
        "\r\x1b[K[{}{}] {}/{calls} calls, {:.0} s, RSS {:.1} MiB, {} failed",
        "#".repeat(filled),
        "-".repeat(width - filled),
        sample.calls,
        sample.t,
        sample.rss_kib as f64 / 1024.0,
        sample.failures
    );
    use std::io::Write as _;
    let _ = std::io::stderr().flush();
}

/// "2 CPUs (AMD EPYC), 23.5 GiB, Linux 6.1.0": what a reader needs to weigh the figures.
fn machine(cpus: usize) -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!(", {:.1} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| format!(", Linux {}", text.trim()))
        .unwrap_or_default();
    format!("{cpus} CPU(s) ({model}){memory}{kernel}")
}

/// The command a reader runs to repeat this soak.
fn rerun_command(args: &[String]) -> String {
    let mut command = String::from("cargo run --release -p grpcpool-bench -- soak");
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    command
}

/// Everything a soak run writes.
#[derive(Serialize)]
struct Results<'a> {
    meta: &'a SoakMeta,
    options: &'a SoakOptions,
    summary: &'a soak_summary::Summary,
    end: &'a End,
    samples: &'a [Sample],
}

fn write(
    options: &SoakOptions,
    meta: &SoakMeta,
    summary: &soak_summary::Summary,
    samples: &[Sample],
    end: &End,
    directory: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let results = Results {
        meta,
        options,
        summary,
        end,
        samples,
    };
    std::fs::write(
        directory.join("soak.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    std::fs::write(directory.join("samples.csv"), soak_report::csv(samples))?;
    std::fs::write(
        directory.join("rss.svg"),
        soak_report::svg(samples, summary),
    )?;
    std::fs::write(
        directory.join("soak.md"),
        soak_report::section(meta, options, summary, samples, "rss.svg"),
    )?;
    let dir = directory.display();
    println!(
        "\nload average before {}, after {}; {:.0} s in all\nresults: {dir}/soak.json, {dir}/samples.csv, report {dir}/soak.md, plot {dir}/rss.svg",
        meta.load_before, meta.load_after, meta.wall_seconds
    );
    if let Some(docs) = &options.docs {
        // The section goes into the report in place of an earlier soak's, the plot beside the
        // report's other plots.
        let plots = docs.parent().unwrap_or(Path::new(".")).join("benchmarks");
        std::fs::create_dir_all(&plots)?;
        std::fs::write(
            plots.join("soak-rss.svg"),
            soak_report::svg(samples, summary),
        )?;
        let existing = std::fs::read_to_string(docs).unwrap_or_default();
        let section =
            soak_report::section(meta, options, summary, samples, "benchmarks/soak-rss.svg");
        std::fs::write(docs, soak_report::splice(&existing, &section))?;
        println!(
            "section written to {} (plot {})",
            docs.display(),
            plots.join("soak-rss.svg").display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn defaults_are_the_issue_s_run() {
        let options = SoakOptions::parse(&[], PathBuf::from("out")).ok().flatten();
        let options = options.unwrap_or_else(|| panic!("defaults must parse"));
        assert_eq!(
            (options.calls, options.threads, options.payload),
            (1_000_000, 16, 1024)
        );
        assert_eq!(options.warmup(), 50_000);
        assert!(options.pin && options.docs.is_none());
    }

    #[test]
    fn flags_and_bad_input() {
        let parse = |args: &[&str]| SoakOptions::parse(&strings(args), PathBuf::from("out"));
        let quick = parse(&[
            "--calls",
            "50,000",
            "--threads",
            "4",
            "--warmup-calls",
            "100",
        ]);
        let quick = quick.ok().flatten().unwrap_or_else(|| panic!("must parse"));
        assert_eq!(
            (quick.calls, quick.threads, quick.warmup()),
            (50_000, 4, 100)
        );
        let args = quick.c_args("http://127.0.0.1:1", "/a/b");
        assert!(args.windows(2).any(|pair| pair == ["--calls", "50000"]));
        assert!(args
            .windows(2)
            .any(|pair| pair == ["--interval-ms", "1000"]));
        assert_eq!(parse(&["--help"]), Ok(None));
        for bad in [
            &["--calls"][..],
            &["--calls", "many"],
            &["--calls", "0"],
            &["--threads", "0"],
            &["--threads", "100000"],
            &["--max-seconds", "-1"],
            &["--max-seconds", "1e30"],
            &["--interval", "NaN"],
            &["--bogus"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // More warm-up than calls is the whole run, not an error.
        let over = parse(&["--calls", "10", "--warmup-calls", "99"])
            .ok()
            .flatten();
        assert_eq!(over.map(|options| options.warmup()), Some(10));
    }

    #[test]
    fn lines_parse() {
        let sample: Result<Line, _> = serde_json::from_str(
            r#"{"kind":"sample","running":true,"t":1.0,"calls":10,"failures":0,"rss_kib":100,"heap_kib":-1,"threads":3,"fds":5}"#,
        );
        assert!(matches!(
            sample,
            Ok(Line::Sample(Sample {
                calls: 10,
                heap_kib: -1,
                ..
            }))
        ));
        let end: Result<Line, _> = serde_json::from_str(
            r#"{"kind":"end","threads":16,"payload":1024,"calls":10,"ok":9,"failures_by_code":{"UNAVAILABLE":1},"failures_by_result":{},"seconds":1.5,"warmup_calls":1,"warmup_seconds":0.1,"stopped_by":"calls","cpu_seconds":1.0,"peak_rss_kib":200,"stats":{"leases_out":0},"leaks":[],"rss_before_pool_kib":1,"heap_before_pool_kib":1,"rss_after_free_kib":1,"heap_after_free_kib":1,"threads_after_free":1}"#,
        );
        match end {
            Ok(Line::End(end)) => {
                assert_eq!(end.failures_by_code.get("UNAVAILABLE"), Some(&1));
                assert_eq!(end.stats["leases_out"], 0);
            }
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Line>(r#"{"kind":"other"}"#).is_err());
    }

    #[test]
    fn rerun_command_repeats_the_flags() {
        assert_eq!(
            rerun_command(&strings(&["--calls", "50000"])),
            "cargo run --release -p grpcpool-bench -- soak --calls 50000"
        );
    }
}
