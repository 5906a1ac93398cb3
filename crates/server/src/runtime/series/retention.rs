//! What the retention sweep removes from the series: each tier's buckets older than that
//! tier is kept (the fine tier 48 h, the hour tier `--series-retention-days`). Run with the
//! event pruning, every ten minutes.

use bzapper_store::{SeriesStore, StoreError};
use chrono::{DateTime, Utc};

use super::settings::SeriesSettings;

/// (tier, oldest bucket start kept) for every tier.
pub fn cutoffs(settings: &SeriesSettings, now: DateTime<Utc>) -> Vec<(u32, DateTime<Utc>)> {
    settings
        .tiers()
        .into_iter()
        .map(|tier| {
            let keep = chrono::Duration::from_std(settings.retention_of(tier))
                .unwrap_or(chrono::Duration::days(30));
            (tier, now - keep)
        })
        .collect()
}

/// Prunes every tier; returns how many rows went.
pub async fn prune(
    store: &dyn SeriesStore,
    settings: &SeriesSettings,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for (tier, before) in cutoffs(settings, now) {
        n += store.prune_series(tier, before).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tier_is_cut_at_its_own_age() {
        let now = DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z").unwrap().to_utc();
        let got = cutoffs(&SeriesSettings::default(), now);
        assert_eq!(
            got,
            vec![(60, now - chrono::Duration::hours(48)), (3600, now - chrono::Duration::days(30))]
        );
    }
}
