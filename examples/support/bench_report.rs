//! The bench's report: the table rows, the JSON file, the slow-loader
//! cases' lines and the targets the README states.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cache_core::Cache;

use super::allocs::Counts;
use super::quiet::Quiet;
use super::{BenchResult, Case, Fixture, slow_loader};

/// One case's line of the table.
pub(crate) struct Row {
    pub(crate) case: Case,
    pub(crate) ops_per_s: Option<f64>,
    pub(crate) ratio_vs_raw: Option<f64>,
    /// The lowest and highest ratio of one round (the case against its
    /// base in that round).
    pub(crate) spread: Option<(f64, f64)>,
    /// p50 and p99 per call in microseconds, for the GET cases.
    pub(crate) latency_us: Option<(f64, f64)>,
    /// The stored size of one value, for the 16 KiB document cases.
    pub(crate) bytes_per_value: Option<u64>,
    /// Allocations and bytes allocated per command (`--allocs`).
    pub(crate) allocs: Option<Counts>,
}

/// The stored size of one value of each 16 KiB document case that ran.
pub(crate) async fn stored_sizes(fx: &Fixture, active: &[Case]) -> BenchResult<Vec<(Case, u64)>> {
    let mut sizes = Vec::new();
    for (case, compressed) in [
        (Case::TypedJson16kC64, false),
        (Case::TypedJson16kLz4C64, true),
    ] {
        if active.contains(&case) {
            let bytes = fx
                .large
                .bytes_per_value(&mut fx.raw.clone(), compressed)
                .await?;
            println!("{:<28} {bytes:>12} bytes per value", case.name());
            sizes.push((case, bytes));
        }
    }
    Ok(sizes)
}

/// The compressed document case against the plain one: throughput and size.
pub(crate) fn print_large_targets(ops: &impl Fn(Case) -> Option<f64>, sizes: &[(Case, u64)]) {
    let (plain, lz4) = (Case::TypedJson16kC64, Case::TypedJson16kLz4C64);
    let Some(speed) = ops(lz4).zip(ops(plain)).map(|(a, b)| a / b) else {
        return;
    };
    let size = |case| {
        sizes
            .iter()
            .find(|(c, _)| *c == case)
            .map(|(_, b)| *b as f64)
    };
    let stored = size(lz4).zip(size(plain)).map_or(f64::NAN, |(a, b)| a / b);
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "  {:<40} {speed:>7.3}  (goal >= 0.8) {}",
        "typed_json_16k_lz4_c64 / typed_json_16k_c64",
        verdict(speed >= 0.8)
    );
    println!(
        "  {:<40} {stored:>7.3}  (goal <= 0.333) {}",
        "bytes stored, lz4 / plain",
        verdict(stored <= 1.0 / 3.0)
    );
}

/// A row for each case that ran (with `--cases`, only those), from what
/// was measured.
pub(crate) fn rows(
    ops: &impl Fn(Case) -> Option<f64>,
    spreads: &[(Case, (f64, f64))],
    latency: &[(Case, (f64, f64))],
    sizes: &[(Case, u64)],
    counts: &[(Case, Counts)],
) -> Vec<Row> {
    let of = |case: Case, figures: &[(Case, (f64, f64))]| {
        figures.iter().find(|(c, _)| *c == case).map(|(_, f)| *f)
    };
    (Case::ALL.iter().copied())
        .filter(|&case| ops(case).is_some())
        .map(|case| Row {
            case,
            ops_per_s: ops(case),
            ratio_vs_raw: ops(case).zip(ops(case.raw())).map(|(v, raw)| v / raw),
            spread: of(case, spreads),
            latency_us: of(case, latency),
            bytes_per_value: sizes.iter().find(|(c, _)| *c == case).map(|(_, b)| *b),
            allocs: counts.iter().find(|(c, _)| *c == case).map(|(_, n)| *n),
        })
        .collect()
}

/// The table: ops/s, the ratio against the base, p50/p99 at 64 tasks.
pub(crate) fn print_table(rows: &[Row]) {
    println!(
        "\n{:<28} {:>12} {:>14} {:>18} {:>16}",
        "case", "ops/s", "ratio vs base", "p50/p99 us", "allocs, B / op"
    );
    for row in rows {
        let latency = row
            .latency_us
            .map_or(String::new(), |(p50, p99)| format!("{p50:.0} / {p99:.0}"));
        // Without its base in the run, a case has no ratio.
        let ratio = row
            .ratio_vs_raw
            .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.3}"));
        let ops = row.ops_per_s.unwrap_or_default();
        let allocs = (row.allocs).map_or(String::new(), |n| {
            format!("{:.1}, {:.0}", n.allocs, n.bytes)
        });
        println!(
            "{:<28} {:>12.0} {:>14} {:>18} {:>16}",
            row.case.name(),
            ops,
            ratio,
            latency,
            allocs
        );
    }
}

pub(crate) fn json_report(
    rows: &[Row],
    slow: &[slow_loader::Figures],
    quiet: Option<&Quiet>,
) -> serde_json::Value {
    let mut cases: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "name": row.case.name(),
                "ops_per_s": row.ops_per_s.map(f64::round),
                "ratio_vs_raw": row.ratio_vs_raw.map(|r| (r * 1000.0).round() / 1000.0),
                "ratio_low": row.spread.map(|(low, _)| (low * 1000.0).round() / 1000.0),
                "ratio_high": row.spread.map(|(_, high)| (high * 1000.0).round() / 1000.0),
                "p50_us": row.latency_us.map(|(p50, _)| p50.round()),
                "p99_us": row.latency_us.map(|(_, p99)| p99.round()),
                "bytes_per_value": row.bytes_per_value,
                "allocs_per_op": row.allocs.map(|n| (n.allocs * 10.0).round() / 10.0),
                "bytes_allocated_per_op": row.allocs.map(|n| n.bytes.round()),
            })
        })
        .collect();
    // Calls per second; no raw peer to compare with.
    cases.extend(slow.iter().map(|figures| {
        serde_json::json!({
            "name": figures.name,
            "ops_per_s": figures.calls_per_s.round(),
            "ratio_vs_raw": null,
            "p50_us": figures.p50_us.round(),
            "p99_us": figures.p99_us.round(),
            "max_us": figures.max_us.round(),
        })
    }));
    serde_json::json!({
        "cases": cases,
        "other_cpu_percent": quiet.map(|quiet| (quiet.other_percent * 10.0).round() / 10.0),
        "disturbed": quiet.map(Quiet::disturbed),
    })
}

/// Runs the slow-loader cases on their own handle and prints them.
pub(crate) async fn slow_loader_cases(
    url: &str,
    duration: Duration,
    wanted: impl Fn(&str) -> bool,
) -> BenchResult<Vec<slow_loader::Figures>> {
    let cache = Cache::builder()
        .url(url)
        .namespace("bench")
        .timeout(Duration::from_secs(5))
        .build()
        .await?;
    let figures = slow_loader::run(&cache, duration, wanted).await?;
    for row in &figures {
        let (p50, p99, max) = (row.p50_us, row.p99_us, row.max_us);
        println!(
            "{:<28} {:>12.0} {:>14} {:>18}  max {max:.0} us",
            row.name,
            row.calls_per_s,
            "calls/s",
            format!("{p50:.0} / {p99:.0}")
        );
    }
    if let Some(p99) = figures.iter().find(|f| f.name == slow_loader::CASES[1]) {
        let verdict = if p99.p99_us <= 25_000.0 {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "  slow_loader_fail_safe_c64 p99 <= 25 ms: {:.1} ms {verdict}",
            p99.p99_us / 1e3
        );
    }
    Ok(figures)
}

/// Prints each ratio the bench holds the toolkit to against its goal:
/// the typed cases against the best plain client (raw redis-rs or fred).
pub(crate) fn print_targets(ops: &impl Fn(Case) -> Option<f64>, fx: &Fixture) {
    println!("\ntargets:");
    // A target whose cases did not all run (`--cases`) is not printed.
    let target = |label: &str, value: Option<f64>, goal: f64| {
        let Some(value) = value else { return };
        let verdict = if value >= goal { "met" } else { "MISSED" };
        println!("  {label:<48} {value:>7.3}  (goal >= {goal}) {verdict}");
    };
    let ratio = |a: Case, b: Case| ops(a).zip(ops(b)).map(|(a, b)| a / b);
    let best = |cases: &[Case]| cases.iter().filter_map(|&c| ops(c)).reduce(f64::max);
    let over_best = |a: Case, peers: &[Case]| ops(a).zip(best(peers)).map(|(a, b)| a / b);
    let gets = [Case::FredGetC64, Case::FredGetPool4C64];
    target(
        "typed_get_c64 / best of fred_get_*",
        over_best(Case::TypedGetC64, &gets),
        1.1,
    );
    use Case::*;
    let ratios = [
        (TypedGetC64, RawGetC64, 1.1),
        (TypedJsonC64, RawC64, 0.9),
        (TypedMsgpackC64, RawC64, 0.9),
        (TypedBincodeC64, RawC64, 0.9),
        (TypedJsonC64, HandJsonC64, 1.0),
        (TypedJsonC64, CachedCrateC64, 1.0),
        (TypedJsonC1, HandJsonC1, 0.97),
        (TypedGetTaggedC64, TypedGetC64, 0.9),
        (GetMany100, SequentialGet100, 1.0),
        (GetOrLoadMany100, GetMany100, 0.9),
        (GetOrLoadMany100, SequentialGetOrLoad100, 30.0),
    ];
    for (case, base, goal) in ratios {
        let label = format!("{} / {}", case.name(), base.name());
        target(&label, ratio(case, base), goal);
    }
    let batches = fx.batches.load(Ordering::Relaxed);
    let calls = fx.loader_calls.load(Ordering::Relaxed);
    if batches > 0 {
        println!(
            "  loader calls per 10%-miss batch: {calls} / {batches} = {:.3} (must be 1)",
            calls as f64 / batches as f64
        );
    }
    target(
        "shared_handle_c1 / conn_per_call_c1",
        ratio(Case::SharedHandleC1, Case::ConnPerCallC1),
        3.0,
    );
}

/// Each typed case's p99 against its base's: within 1.2 times.
pub(crate) fn print_p99_targets(rows: &[Row]) {
    let p99 = |case: Case| {
        (rows.iter())
            .find(|row| row.case == case)
            .and_then(|row| row.latency_us)
            .map(|(_, p99)| p99)
    };
    for row in rows
        .iter()
        .filter(|row| row.case.name().starts_with("typed_"))
    {
        let base = row.case.raw();
        let (Some(own), Some(of_base)) = (p99(row.case), p99(base)) else {
            continue;
        };
        if base == row.case {
            continue;
        }
        let ratio = own / of_base;
        let verdict = if ratio <= 1.2 { "met" } else { "MISSED" };
        let label = format!("p99 {} / {}", row.case.name(), base.name());
        println!("  {label:<48} {ratio:>7.3}  (goal <= 1.2) {verdict}");
    }
}

/// The typed SET+GET's allocations against the same pair written by hand:
/// no more (`--allocs` only).
pub(crate) fn print_alloc_targets(rows: &[Row]) {
    let allocs = |case: Case| {
        (rows.iter())
            .find(|row| row.case == case)
            .and_then(|row| row.allocs)
    };
    let (Some(typed), Some(hand)) = (allocs(Case::TypedJsonC64), allocs(Case::HandJsonC64)) else {
        return;
    };
    let ratio = typed.allocs / hand.allocs;
    let verdict = if ratio <= 1.0 { "met" } else { "MISSED" };
    let label = "allocs per op, typed_json_c64 / hand_json_c64";
    println!("  {label:<48} {ratio:>7.3}  (goal <= 1) {verdict}");
}
