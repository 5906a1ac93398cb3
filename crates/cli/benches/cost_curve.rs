//! The cost curve of one node: for 100, 1,000 and 10,000 numbers on the REAL WhatsApp driver
//! against the wire-level fake, the gateway's RSS (and per number), CPU at idle, restart time
//! (process start → all connected) and accepted sends/s, so that the growth of each cost with
//! the number of numbers shows.
//!
//! ```sh
//! cargo bench -p bzapper --bench cost_curve                                  # 100,1000,10000
//! BZAPPER_BENCH_SIZES=100,1000 BZAPPER_BENCH_PLOT=docs/cost_curve.png \
//!   cargo bench -p bzapper --bench cost_curve
//! ```
//!
//! Env: `BZAPPER_BENCH_SIZES` (comma-separated, default `100,1000,10000`),
//! `BZAPPER_BENCH_ACCEPT_SECS` (the accept burst at each size, default 10),
//! `BZAPPER_BENCH_CSV` (where the CSV goes, default `cost_curve.csv` in the working directory),
//! `BZAPPER_BENCH_PLOT` (a PNG to draw with `cost_curve/plot.py`, which needs matplotlib), and
//! `wire_scale`'s knobs. Each size is one `wire_scale` run on a fresh data dir and a fresh
//! fake (`wire_scale/run.rs`), followed by an accept burst (64 in flight, a new recipient each,
//! no `instance_id`) against the restarted gateway holding all N: one row of the table and of
//! the CSV per size.

use std::io::Write;

#[path = "wire_scale/run.rs"]
mod run;
#[path = "../tests/support/mod.rs"]
mod support;

/// The CSV's columns, in order (`cost_curve/plot.py` reads them by name).
const COLUMNS: &str = "numbers,rss_empty_mib,rss_linked_mib,per_number_linked_kib,\
rss_resumed_mib,per_number_resumed_kib,idle_cpu_pct,idle_cpu_resumed_pct,link_s,restart_s,\
listening_s,accepted_per_s,accept_p99_ms,fake_rss_mib,anon_per_number_linked_kib,\
anon_per_number_resumed_kib";

fn row(f: &run::Figures) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (per, per_after) = f.per_number_kib();
    let (anon, anon_after) = f.per_number_anon_kib();
    let accepts = f.accepts.as_ref();
    format!(
        "{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.2},{:.2},{:.1},{:.2},{:.2},{:.0},{:.1},{:.1},{:.1},{:.1}",
        f.n,
        mib(f.empty),
        mib(f.idle),
        per,
        mib(f.idle_after),
        per_after,
        f.cpu[0],
        f.cpu_after[0],
        f.link_time.as_secs_f64(),
        f.resume.as_secs_f64(),
        f.listening.as_secs_f64(),
        accepts.map_or(0.0, |a| a.per_sec),
        accepts.map_or(0.0, |a| a.p99_ms),
        mib(f.fake_idle),
        anon,
        anon_after,
    )
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BZAPPER_BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("BZAPPER_BENCH_SIZES: numbers separated by commas"))
        .collect();
    let accept_secs = run::env_or("BZAPPER_BENCH_ACCEPT_SECS", 10u64);
    let csv = std::env::var("BZAPPER_BENCH_CSV").unwrap_or_else(|_| "cost_curve.csv".into());
    let mut rows = vec![COLUMNS.to_string()];
    for n in sizes {
        eprintln!("== {n} numbers");
        let figures = run::measure(n, Some(accept_secs)).await;
        figures.print();
        rows.push(row(&figures));
        // Written after every size, so a long run that fails later keeps what it measured.
        let mut file = std::fs::File::create(&csv).expect("creating the CSV");
        writeln!(file, "{}", rows.join("\n")).expect("writing the CSV");
    }
    println!("\n== cost curve ({csv})\n{}", rows.join("\n"));
    if let Ok(png) = std::env::var("BZAPPER_BENCH_PLOT") {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/cost_curve/plot.py");
        let python = std::env::var("BZAPPER_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let status = std::process::Command::new(python).args([script, &csv, &png]).status();
        match status {
            Ok(s) if s.success() => println!("plot: {png}"),
            other => eprintln!("plotting failed ({other:?}): is matplotlib installed?"),
        }
    }
}
