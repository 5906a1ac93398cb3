//! The dashboard's time series: a sampler task that records, at a fixed interval, what each
//! number sent since the previous sample, its health score and each pool's queue depth, in one
//! transaction per sample (`sampler.rs`), with the pure parts apart: the settings and tiers
//! (`settings.rs`), turning the recorder's running `sent` counters into per-interval sends
//! (`sends.rs`), and what the retention sweep removes (`retention.rs`). Stored by
//! `bzapper_store::SeriesStore`; read by `GET /v1/stats/series` (`app::stats`).

pub mod retention;
pub mod sampler;
pub mod sends;
pub mod settings;
