//! The soak run's report: a Markdown section for docs/benchmarks.md (the figures, then the
//! samples over time downsampled to a short table), the samples as CSV and an SVG plot of RSS
//! and heap against calls done.

use std::fmt::Write as _;

use crate::soak::{Sample, SoakMeta, SoakOptions};
use crate::soak_summary::Summary;

/// The heading every soak section starts with; the rest of it names the number of calls.
const HEADING: &str = "## Soak: ";
/// Rows of the samples table: enough to see a trend, few enough to read.
const TABLE_ROWS: usize = 20;

/// 1234567 as "1,234,567".
pub fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A count of calls as a heading says it: 1M, 50k, 1,234.
pub fn short_count(calls: u64) -> String {
    if calls >= 1_000_000 && calls.is_multiple_of(1_000_000) {
        format!("{}M", calls / 1_000_000)
    } else if calls >= 1_000 && calls.is_multiple_of(1_000) {
        format!("{}k", calls / 1_000)
    } else {
        thousands(calls as i64)
    }
}

fn kib(value: i64) -> String {
    if value < 0 {
        "unknown".into()
    } else {
        format!(
            "{:.1} MiB ({} KiB)",
            value as f64 / 1024.0,
            thousands(value)
        )
    }
}

fn per_100k(value: Option<f64>) -> String {
    value.map_or("-".into(), |value| format!("{value:+.1} KiB"))
}

/// "+0.8 ± 1.5 KiB (later half +2.3 KiB)".
fn growth(slope: Option<f64>, stderr: Option<f64>, late: Option<f64>) -> String {
    let error = stderr.map_or(String::new(), |stderr| format!(" ± {stderr:.1}"));
    match slope {
        Some(slope) => format!("{slope:+.1}{error} KiB (later half {})", per_100k(late)),
        None => "-".into(),
    }
}

fn option(value: Option<u64>) -> String {
    value.map_or("-".into(), |value| thousands(value as i64))
}

/// The figures as (figure, value) rows, for the console and the report.
pub fn rows(summary: &Summary) -> Vec<(String, String)> {
    let failures = if summary.failures.is_empty() {
        "none".to_owned()
    } else {
        summary
            .failures
            .iter()
            .map(|(name, count)| format!("{name} {}", thousands(*count as i64)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let stopped = match summary.stopped_by.as_str() {
        "calls" => "every call made".to_owned(),
        "time" => "the time cap".to_owned(),
        other => other.to_owned(),
    };
    let heap = |value: Option<i64>| value.map_or("unknown".to_owned(), thousands);
    let leak_check = format!(
        "{} / {} / {}: {}",
        option(summary.leases_out),
        option(summary.streams_in_flight),
        summary
            .leaks_reported
            .map_or("-".to_owned(), |count| count.to_string()),
        if summary.leak_check_passed {
            "pass"
        } else {
            "FAIL"
        }
    );
    let after_free = match (summary.heap_before_pool_kib, summary.heap_after_free_kib) {
        (Some(before), Some(after)) => format!(
            "heap {} KiB ({} KiB before grpcpool_pool_new); RSS {} KiB, {} thread(s)",
            thousands(after),
            thousands(before),
            thousands(summary.rss_after_free_kib),
            summary.threads_after_free
        ),
        _ => format!(
            "RSS {} KiB ({} KiB before the pool), {} thread(s)",
            thousands(summary.rss_after_free_kib),
            thousands(summary.rss_before_pool_kib),
            summary.threads_after_free
        ),
    };
    vec![
        (
            "calls made (OK / failed), stopped by".into(),
            format!(
                "{} ({} / {}), {stopped}",
                thousands(summary.calls as i64),
                thousands(summary.ok as i64),
                thousands(summary.failed as i64)
            ),
        ),
        ("failures by status".into(), failures),
        (
            "elapsed (of which warm-up)".into(),
            if summary.calls < summary.warmup_calls {
                format!("{:.1} s (the warm-up never finished)", summary.seconds)
            } else {
                format!("{:.1} s ({:.1} s)", summary.seconds, summary.warmup_seconds)
            },
        ),
        ("QPS".into(), thousands(summary.qps.round() as i64)),
        (
            "client CPU per call".into(),
            format!("{:.1} µs", summary.cpu_us_per_call),
        ),
        (
            format!(
                "RSS at start (after {} warm-up calls)",
                thousands(summary.warmup_calls as i64)
            ),
            kib(summary.rss_start_kib),
        ),
        ("RSS peak".into(), kib(summary.rss_peak_kib)),
        (
            "RSS at end (the last sample under load)".into(),
            kib(summary.rss_end_kib),
        ),
        (
            "RSS growth per 100k calls after warm-up, ± standard error".into(),
            growth(
                summary.rss_kib_per_100k,
                summary.rss_kib_per_100k_stderr,
                summary.rss_kib_per_100k_late,
            ),
        ),
        (
            "heap in use at start / end, KiB".into(),
            format!(
                "{} / {}",
                heap(summary.heap_start_kib),
                heap(summary.heap_end_kib)
            ),
        ),
        (
            "heap growth per 100k calls after warm-up, ± standard error".into(),
            growth(
                summary.heap_kib_per_100k,
                summary.heap_kib_per_100k_stderr,
                summary.heap_kib_per_100k_late,
            ),
        ),
        (
            "threads, open fds: start -> end".into(),
            format!(
                "{} -> {}, {} -> {}",
                summary.threads_start, summary.threads_end, summary.fds_start, summary.fds_end
            ),
        ),
        (
            "every call returned, threads joined: RSS / heap / threads".into(),
            format!(
                "{} KiB / {} KiB / {}",
                summary.rss_joined_kib.map_or("-".into(), thousands),
                summary.heap_joined_kib.map_or("-".into(), thousands),
                summary
                    .threads_joined
                    .map_or("-".into(), |threads| threads.to_string())
            ),
        ),
        (
            "leak check at end: leases_out / streams_in_flight / leaks".into(),
            leak_check,
        ),
        (
            "pool stats: calls started / succeeded, connects, reconnects, GOAWAYs".into(),
            format!(
                "{} / {}, {}, {}, {}",
                option(summary.stats_calls_started),
                option(summary.stats_calls_succeeded),
                option(summary.connects),
                option(summary.reconnects),
                option(summary.goaways_received)
            ),
        ),
        ("after grpcpool_pool_free".into(), after_free),
    ]
}

/// Indices of about `want` rows spread evenly over `len` samples, the first and last among
/// them, and `keep` (the warm-up's end) too.
pub fn downsample(len: usize, want: usize, keep: Option<usize>) -> Vec<usize> {
    if len <= want.max(2) {
        return (0..len).collect();
    }
    let steps = want.max(2) - 1;
    let mut out: Vec<usize> = (0..=steps)
        .map(|step| (step * (len - 1) + steps / 2) / steps)
        .collect();
    out.extend(keep.filter(|index| *index < len));
    out.sort_unstable();
    out.dedup();
    out
}

/// The samples as CSV.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("t,running,calls,failures,rss_kib,heap_kib,threads,fds\n");
    for sample in samples {
        let _ = writeln!(
            out,
            "{:.3},{},{},{},{},{},{},{}",
            sample.t,
            sample.running,
            sample.calls,
            sample.failures,
            sample.rss_kib,
            sample.heap_kib,
            sample.threads,
            sample.fds
        );
    }
    out
}

/// The report's section, from its `## Soak: ...` heading to the samples table; `plot` is the
/// SVG's path relative to the file the section goes into.
pub fn section(
    meta: &SoakMeta,
    options: &SoakOptions,
    summary: &Summary,
    samples: &[Sample],
    plot: &str,
) -> String {
    let mut out = format!(
        "{HEADING}{} calls through the C ABI\n\n",
        short_count(options.calls)
    );
    let _ = writeln!(
        out,
        "Run on {} on {}; pinning: {}; load average before: {}; after: {}. Not part of CI (this \
         run took {:.0} s, most of both cores); to run it again: `{}` (`--calls 50000` for a \
         quick look, `soak --help` for the flags).\n",
        meta.date,
        meta.machine,
        meta.pinned,
        meta.load_before,
        meta.load_after,
        meta.wall_seconds,
        meta.command
    );
    let _ = writeln!(
        out,
        "bench/c/soak.c: {} pthreads making blocking `grpcpool_unary` calls ({} B SimpleRequests, \
         echoed back) through include/grpcpool.h on one pool with default settings, against the \
         tonic echo server in a child process, plaintext over loopback; {} calls or {} s, \
         whichever comes first. Every {} s the client reads its own VmRSS (/proc/self/status) and \
         heap in use (glibc's mallinfo2, which covers the Rust library's allocations too and, \
         unlike RSS, neither hides a leak behind pages freed earlier nor counts pages the \
         allocator keeps). The first {} calls are the warm-up: RSS at start is the first sample \
         after them, and the growth per 100k calls is the least-squares slope of the samples \
         after them against calls done, with the later half's own slope beside it (a leak keeps \
         its slope there; warming up does not). The leak check reads the pool's stats JSON once \
         every call has returned.\n",
        options.threads,
        thousands(options.payload as i64),
        thousands(options.calls as i64),
        options.max_seconds,
        options.interval,
        thousands(summary.warmup_calls as i64)
    );
    let busiest = [&meta.load_before, &meta.load_after]
        .iter()
        .filter_map(|load| load.split_whitespace().next()?.parse::<f64>().ok())
        .fold(0.0_f64, f64::max);
    if meta.cpus > 0 && busiest > meta.cpus as f64 {
        let _ = writeln!(
            out,
            "The machine was busy with other work (a load average of {busiest:.1} on {} CPUs): \
             read QPS as a floor and CPU per call as a ceiling. The memory figures do not depend \
             on the load.\n",
            meta.cpus
        );
    }
    out.push_str("| figure | value |\n|---|---:|\n");
    for (figure, value) in rows(summary) {
        let _ = writeln!(out, "| {figure} | {value} |");
    }
    let _ = writeln!(out, "\nPlot: [RSS and heap against calls done]({plot})\n");
    let keep = samples.iter().position(|sample| {
        sample.running && sample.calls >= summary.warmup_calls && sample.calls > 0
    });
    let shown = downsample(samples.len(), TABLE_ROWS, keep);
    let _ = writeln!(
        out,
        "Samples ({} of {}; all of them in soak/samples.csv under --out):\n",
        shown.len(),
        samples.len()
    );
    out.push_str(
        "| t (s) | calls | QPS since the row above | RSS KiB | heap KiB | threads | fds |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut previous: Option<&Sample> = None;
    for (index, sample) in shown
        .iter()
        .filter_map(|index| samples.get(*index).map(|sample| (*index, sample)))
    {
        let qps = previous
            .filter(|before| sample.t > before.t)
            .map_or(String::new(), |before| {
                thousands(
                    (sample.calls.saturating_sub(before.calls) as f64 / (sample.t - before.t))
                        .round() as i64,
                )
            });
        let heap = if sample.heap_kib >= 0 {
            thousands(sample.heap_kib)
        } else {
            "-".into()
        };
        let mark = if Some(index) == keep {
            " (warm-up done)"
        } else if !sample.running {
            " (threads joined)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {:.1} | {}{mark} | {qps} | {} | {heap} | {} | {} |",
            sample.t,
            thousands(sample.calls as i64),
            thousands(sample.rss_kib),
            sample.threads,
            sample.fds
        );
        previous = Some(sample);
    }
    out
}

/// Where the soak section of a report starts and ends: its heading up to the next `## `
/// heading or the end.
fn bounds(text: &str) -> Option<(usize, usize)> {
    let start = if text.starts_with(HEADING) {
        0
    } else {
        text.find(&format!("\n{HEADING}"))? + 1
    };
    let end = text[start + HEADING.len()..]
        .find("\n## ")
        .map_or(text.len(), |offset| start + HEADING.len() + offset + 1);
    Some((start, end))
}

/// The soak section of a report, if it has one, so that regenerating the rest keeps it.
pub fn section_of(text: &str) -> Option<&str> {
    bounds(text).map(|(start, end)| &text[start..end])
}

/// `text` with its soak section replaced by `section`, or `section` appended when it has none.
pub fn splice(text: &str, section: &str) -> String {
    let section = section.trim_end();
    match bounds(text) {
        Some((start, end)) => {
            let rest = &text[end..];
            let gap = if rest.is_empty() { "\n" } else { "\n\n" };
            format!("{}{section}{gap}{rest}", &text[..start])
        }
        None if text.trim().is_empty() => format!("{section}\n"),
        None => format!("{}\n\n{section}\n", text.trim_end()),
    }
}

/// The UTC date of a Unix time, YYYY-MM-DD (the civil calendar from days since 1970).
pub fn utc_date(unix_time: u64) -> String {
    let days = (unix_time / 86_400) as i64;
    // Howard Hinnant's days_from_civil inverse: eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A line of the plot: its name, colour and figure.
type Series = (&'static str, &'static str, fn(&Sample) -> i64);

/// RSS and heap in MiB against calls done, with the warm-up's end marked.
pub fn svg(samples: &[Sample], summary: &Summary) -> String {
    let (width, height) = (720.0, 420.0);
    let (left, right, top, bottom) = (70.0, 150.0, 40.0, 50.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let x_max = samples
        .iter()
        .map(|sample| sample.calls)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y_max = samples
        .iter()
        .flat_map(|sample| [sample.rss_kib, sample.heap_kib])
        .max()
        .unwrap_or(0)
        .max(1) as f64
        / 1024.0
        * 1.1;
    let sx = |calls: f64| left + calls / x_max * plot_w;
    let sy = |mib: f64| top + plot_h - mib / y_max * plot_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="14" text-anchor="middle">Soak client memory, {} calls through the C ABI</text>"#,
        left + plot_w / 2.0,
        short_count(summary.calls)
    );
    let _ = writeln!(
        out,
        r#"<path d="M{left} {top} V{} H{}" stroke="black" fill="none"/>"#,
        top + plot_h,
        left + plot_w
    );
    for tick in 0..=5 {
        let value = y_max * tick as f64 / 5.0;
        let y = sy(value);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{value:.1}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
        let calls = x_max * tick as f64 / 5.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            sx(calls),
            top + plot_h + 18.0,
            short_count((calls / 1000.0).round() as u64 * 1000)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">calls done</text>"#,
        left + plot_w / 2.0,
        height - 10.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">MiB</text>"#,
        top + plot_h / 2.0
    );
    if summary.warmup_calls > 0 {
        let x = sx(summary.warmup_calls as f64);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="#666">warm-up</text>"##,
            top + plot_h,
            x + 4.0,
            top + 12.0
        );
    }
    let series: [Series; 2] = [
        ("RSS", "#1f77b4", |sample| sample.rss_kib),
        ("heap in use", "#d62728", |sample| sample.heap_kib),
    ];
    for (index, (name, color, field)) in series.iter().enumerate() {
        let points: Vec<String> = samples
            .iter()
            // The drop once the threads' stacks are freed is not a trend: under load only.
            .filter(|sample| sample.running && field(sample) >= 0)
            .map(|sample| {
                format!(
                    "{:.1},{:.1}",
                    sx(sample.calls as f64),
                    sy(field(sample) as f64 / 1024.0)
                )
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            points.join(" ")
        );
        let legend_y = top + 16.0 * index as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            left + plot_w + 12.0,
            left + plot_w + 32.0,
            left + plot_w + 38.0,
            legend_y + 4.0
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak_summary::{fixture, summarize};

    #[test]
    fn report_has_the_figures_and_a_short_table() {
        let (samples, end) = fixture();
        let summary = summarize(&samples, &end);
        let options = SoakOptions::parse(&[], "out".into()).ok().flatten();
        let options = options.unwrap_or_else(|| panic!("defaults parse"));
        let text = section(&SoakMeta::default(), &options, &summary, &samples, "p.svg");
        assert!(!text.contains("was busy"), "{text}");
        let busy = SoakMeta {
            cpus: 2,
            load_before: "1.00 1.00 1.00".into(),
            load_after: "3.50 2.00 1.00".into(),
            ..SoakMeta::default()
        };
        let busy = section(&busy, &options, &summary, &samples, "p.svg");
        assert!(busy.contains("a load average of 3.5 on 2 CPUs"), "{busy}");
        assert!(
            text.starts_with("## Soak: 1M calls through the C ABI\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "| leak check at end: leases_out / streams_in_flight / leaks | 0 / 0 / 0: pass |"
            ),
            "{text}"
        );
        assert!(
            text.contains("GRPCPOOL_ACQUIRE_TIMEOUT 1, UNAVAILABLE 1"),
            "{text}"
        );
        assert!(
            text.contains("| 2.0 | 20,000 (warm-up done) | 10,000 | 8,000 |"),
            "{text}"
        );
        assert!(text.contains("(p.svg)"));
        let plot = svg(&samples, &summary);
        assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
        assert_eq!(plot.matches("<polyline").count(), 2);
        assert!(svg(&[], &Summary::default()).trim_end().ends_with("</svg>"));
        assert_eq!(csv(&samples).lines().count(), 13);
        assert!(
            text.contains("| 10.5 | 100,000 (threads joined) |"),
            "{text}"
        );
    }

    #[test]
    fn downsampling_keeps_ends_and_the_warm_up() {
        assert_eq!(downsample(5, 20, None), vec![0, 1, 2, 3, 4]);
        let picked = downsample(100, 20, Some(7));
        assert_eq!((picked.first(), picked.last()), (Some(&0), Some(&99)));
        assert!(picked.contains(&7) && picked.len() <= 21, "{picked:?}");
        assert!(picked.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(downsample(0, 20, Some(3)).is_empty());
    }

    #[test]
    fn splice_replaces_or_appends_the_section() {
        let section = "## Soak: 1M calls through the C ABI\n\nnew\n";
        let report = "# Benchmarks\n\n## Scale\n\nscale\n";
        let added = splice(report, section);
        assert_eq!(added, format!("{report}\n{section}"));
        let old =
            "# Benchmarks\n\n## Soak: 50k calls through the C ABI\n\nold\n\n## Scale\n\nscale\n";
        let replaced = splice(old, section);
        assert_eq!(
            replaced,
            "# Benchmarks\n\n## Soak: 1M calls through the C ABI\n\nnew\n\n## Scale\n\nscale\n"
        );
        assert_eq!(splice(&added, section), added);
        assert_eq!(section_of(&added), Some(section));
        assert_eq!(section_of(report), None);
        assert_eq!(splice("", section), section);
    }

    #[test]
    fn dates_and_counts() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_796_083_200 + 3_600), "2026-12-01");
        assert_eq!(utc_date(1_709_164_800), "2024-02-29");
        assert_eq!(utc_date(951_868_800), "2000-03-01");
        assert_eq!(short_count(1_000_000), "1M");
        assert_eq!(short_count(50_000), "50k");
        assert_eq!(short_count(1_234), "1,234");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
