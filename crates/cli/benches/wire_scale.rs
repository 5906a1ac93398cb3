//! The gateway on its REAL WhatsApp driver (`whatsapp-rust`) holding many connected numbers
//! against the wire-level fake WhatsApp server (`bzapper simnet --wire`): memory per connected
//! number, CPU at idle, how long linking takes, and how long a restart takes to bring every
//! number back.
//!
//! `cargo bench -p bzapper --bench wire_scale` (env `BZAPPER_BENCH_INSTANCES`, default 100).
//!
//! Knobs for large N (env): `BZAPPER_BENCH_LINK_CONCURRENCY` (numbers linked at once, default
//! 32), `BZAPPER_BENCH_TIMEOUT_SECS` (how long linking, or the restart, may take until all are
//! `connected`; default 900 s, or 0.5 s a number when more), `BZAPPER_BENCH_GATEWAY_ENV`
//! (`K=V,K=V` set on the gateway only, e.g. `MALLOC_ARENA_MAX=2`), `BZAPPER_BENCH_HEAPTRACK=DIR`
//! (the gateway runs under `heaptrack`, which writes `DIR/gateway-linked.zst` and
//! `DIR/gateway-restarted.zst`; build with `CARGO_PROFILE_RELEASE_STRIP=none` for symbols),
//! `BZAPPER_BENCH_PERF=DIR` (`perf record` of the gateway into `DIR/idle-linked.data`,
//! `DIR/restart.data` from the listener open to all connected, `DIR/idle-restarted.data`).
//!
//! Both run as child processes of this bench (the `bzapper` binary built for benches has
//! whatsapp-rust's `danger-skip-cert-chain-verify` on, a dev-dependency, so it accepts the
//! fake's zero-signed certificate chain). Their logs go to files in a temporary directory, or
//! in `BZAPPER_BENCH_LOGS=DIR` to keep them (level `RUST_LOG`, default `warn`); the tail is
//! printed when a step fails.
//!
//! Steps: start the fake and the gateway; RSS of the empty gateway; create and link N numbers
//! (32 at a time: create, wait for the QR, scan it through `/v1/sim`; a progress line every
//! 10 s) and wait until all are
//! `connected`; settle 10 s; RSS, and CPU over 10 s from `/proc/PID/stat`; SIGTERM the gateway,
//! start it again on the same data dir against the same fake, and time from the process start
//! to all N `connected`; RSS after that.

#[path = "wire_scale/run.rs"]
mod run;
#[path = "../tests/support/mod.rs"]
mod support;

#[tokio::main]
async fn main() {
    let n: usize = run::env_or("BZAPPER_BENCH_INSTANCES", 100);
    run::measure(n, None).await.print();
}
