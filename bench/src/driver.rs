//! The driver protocol: every client row is a process of its own, started as
//!
//! ```text
//! DRIVER --target URL --concurrency N --seconds S --payload BYTES [--connections K]
//!        [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]
//! ```
//!
//! which warms up for `--warmup` seconds uncounted, then runs `N` closed loops of unary calls
//! for `S` seconds and prints one JSON line, [`DriverReport`]: calls, errors, seconds, qps,
//! p50_us, p99_us, cpu_us_per_call (getrusage of the driver process itself over the counted
//! window, children excluded) and peak_rss_kib. A driver on a JIT runtime may warm up past
//! `--warmup` until its code is optimized (bench/node/driver.js: 5,000 calls, at most 4 s); the
//! harness's time limit leaves room for that. A driver run with `--check` alone exits 0 when
//! it can run here, else prints why not and exits non-zero, so a missing peer is a row marked
//! "not available" rather than a failed run.
//!
//! The request is the interop `SimpleRequest{response_size: BYTES, payload: {body: BYTES zero
//! bytes}}` (empty for 0), sent as pre-encoded bytes: the tonic echo server returns it, the
//! grpc-go interop server answers `BYTES` of payload, so both directions carry the payload.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the interop server's `UnaryCall` is called; the default `--method`.
pub const INTEROP_UNARY: &str = "/grpc.testing.TestService/UnaryCall";

/// The arguments of one driver run.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveArgs {
    pub target: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub warmup: f64,
    pub payload: usize,
    pub connections: usize,
    pub method: String,
    pub tls_ca: Option<PathBuf>,
    pub server_name: Option<String>,
}

impl DriveArgs {
    /// Parses the protocol's arguments (without the program name or client name).
    pub fn parse(args: &[String]) -> Result<DriveArgs, String> {
        let mut out = DriveArgs {
            target: String::new(),
            concurrency: 1,
            seconds: 1.0,
            warmup: 0.3,
            payload: 0,
            connections: 1,
            method: INTEROP_UNARY.to_owned(),
            tls_ca: None,
            server_name: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            let number = |text: String| -> Result<f64, String> {
                text.parse().map_err(|_| format!("{arg} takes a number"))
            };
            match arg.as_str() {
                "--target" => out.target = value()?,
                "--concurrency" => out.concurrency = number(value()?)? as usize,
                "--seconds" => out.seconds = number(value()?)?,
                "--warmup" => out.warmup = number(value()?)?,
                "--payload" => out.payload = number(value()?)? as usize,
                "--connections" => out.connections = (number(value()?)? as usize).max(1),
                "--method" => out.method = value()?,
                "--tls-ca" => out.tls_ca = Some(PathBuf::from(value()?)),
                "--server-name" => out.server_name = Some(value()?),
                other => return Err(format!("unknown driver argument {other:?}")),
            }
        }
        if out.target.is_empty() {
            return Err("--target is required".into());
        }
        out.concurrency = out.concurrency.max(1);
        Ok(out)
    }

    /// The protocol's arguments for these settings.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--target".into(),
            self.target.clone(),
            "--concurrency".into(),
            self.concurrency.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
            "--warmup".into(),
            self.warmup.to_string(),
            "--payload".into(),
            self.payload.to_string(),
            "--connections".into(),
            self.connections.to_string(),
            "--method".into(),
            self.method.clone(),
        ];
        if let Some(ca) = &self.tls_ca {
            args.extend(["--tls-ca".into(), ca.display().to_string()]);
        }
        if let Some(name) = &self.server_name {
            args.extend(["--server-name".into(), name.clone()]);
        }
        args
    }
}

/// The one JSON line a driver prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriverReport {
    pub calls: u64,
    pub errors: u64,
    pub seconds: f64,
    pub qps: f64,
    pub p50_us: f64,
    /// `None` when the driver cannot tell (h2load reports a mean only).
    pub p99_us: Option<f64>,
    pub cpu_us_per_call: f64,
    pub peak_rss_kib: u64,
}

/// Runs `command` (program and leading arguments) with `args`, pinned to `cpu` when given,
/// and reads its report; kills it when it runs past its time by more than `slack`.
pub fn run(
    command: &[String],
    args: &DriveArgs,
    cpu: Option<usize>,
    slack: Duration,
) -> Result<DriverReport, String> {
    let (program, leading) = command.split_first().ok_or("empty driver command")?;
    let mut child = Command::new(program);
    child
        .args(leading)
        .args(args.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cpu) = cpu {
        crate::affinity::pin_command(&mut child, cpu);
    }
    let child = child
        .spawn()
        .map_err(|error| format!("{program}: {error}"))?;
    let output = wait_bounded(
        child,
        Duration::from_secs_f64(args.seconds + args.warmup) + slack,
    )?;
    let stdout = String::from_utf8_lossy(&output.0);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .ok_or_else(|| {
            let stderr = String::from_utf8_lossy(&output.1);
            let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            format!("no report from {program} ({}): {tail}", output.2)
        })?;
    serde_json::from_str(line).map_err(|error| format!("bad report {line:?}: {error}"))
}

/// Runs `command` (bounded by `limit`) and parses the last JSON line it prints as `T`.
pub fn run_json<T: serde::de::DeserializeOwned>(
    mut command: Command,
    limit: Duration,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (stdout, stderr, status) = wait_bounded(child, limit)?;
    let stdout = String::from_utf8_lossy(&stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .ok_or_else(|| {
            let stderr = String::from_utf8_lossy(&stderr);
            let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            format!("no report ({status}): {tail}")
        })?;
    Ok(serde_json::from_str(line)?)
}

/// Asks a driver whether it can run here: `Ok` or the reason it cannot.
pub fn check(command: &[String]) -> Result<(), String> {
    let (program, leading) = command.split_first().ok_or("empty driver command")?;
    let child = Command::new(program)
        .args(leading)
        .arg("--check")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("{program}: {error}"))?;
    let (stdout, stderr, status) = wait_bounded(child, Duration::from_secs(30))?;
    if status.success() {
        return Ok(());
    }
    let text = format!(
        "{} {}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    Err(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

type Output = (Vec<u8>, Vec<u8>, std::process::ExitStatus);

/// Waits for `child` at most `limit`, killing it past that; returns stdout, stderr and status.
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Result<Output, String> {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_end(&mut buffer);
        }
        buffer
    });
    let err_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.take(64 * 1024).read_to_end(&mut buffer);
        }
        buffer
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("driver ran past {limit:?}; killed"));
            }
            Err(error) => return Err(error.to_string()),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok((stdout, stderr, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let args = DriveArgs {
            target: "https://127.0.0.1:1".into(),
            concurrency: 16,
            seconds: 0.5,
            warmup: 0.2,
            payload: 1024,
            connections: 4,
            method: "/a/b".into(),
            tls_ca: Some(PathBuf::from("/tmp/ca.pem")),
            server_name: Some("localhost".into()),
        };
        assert_eq!(DriveArgs::parse(&args.to_args()), Ok(args));
        assert!(DriveArgs::parse(&[]).is_err());
    }

    #[test]
    fn report_parses_without_p99() {
        let report: DriverReport = serde_json::from_str(
            r#"{"calls":3,"errors":0,"seconds":1.0,"qps":3.0,"p50_us":5.0,"p99_us":null,"cpu_us_per_call":2.0,"peak_rss_kib":100}"#,
        )
        .unwrap_or_default();
        assert_eq!(report.calls, 3);
        assert_eq!(report.p99_us, None);
    }
}
