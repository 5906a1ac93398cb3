//! `bzapper healthcheck`: asks a gateway's `GET /readyz` and exits 0 when it answers ready, 1
//! otherwise, for a container's `HEALTHCHECK` (the runtime image has no curl).

use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct HealthcheckArgs {
    /// The gateway's base URL.
    #[arg(long, env = "BZAPPER_URL", default_value = "http://127.0.0.1:8080", value_name = "URL")]
    url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    timeout_secs: u64,
}

pub async fn run(a: HealthcheckArgs) -> anyhow::Result<()> {
    let url = format!("{}/readyz", a.url.trim_end_matches('/'));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(a.timeout_secs)).build()?;
    let res = http.get(&url).send().await.with_context(|| format!("{url} did not answer"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url}: HTTP {}: {}", status.as_u16(), body.trim());
    super::print(body.trim())
}
