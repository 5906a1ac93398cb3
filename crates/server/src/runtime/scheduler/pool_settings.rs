//! Each pool's sending settings (sticky sender, country match, per-contact pacing, quiet
//! hours) as the scheduler keeps them: set at start-up from the store and again whenever a
//! pool is changed, read by the send rules.

use bzapper_store::PoolSettings;

use crate::runtime::campaigns::window::{ScheduleSpec, Window};

use super::Scheduler;

/// A pool's settings with its quiet hours checked once, when they are set.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRules {
    pub settings: PoolSettings,
    /// The pool's active hours (messages wait outside them); `None`: no quiet hours, or
    /// stored hours that no longer parse (logged when set).
    pub active_hours: Option<Window>,
}

impl PoolRules {
    pub fn new(tenant_id: &str, pool: &str, settings: &PoolSettings) -> Self {
        let active_hours = settings.quiet_hours.as_ref().and_then(|v| {
            let parsed = serde_json::from_value::<ScheduleSpec>(v.clone())
                .map_err(|e| e.to_string())
                .and_then(|spec| Window::parse(&spec));
            match parsed {
                Ok(w) => Some(w),
                Err(e) => {
                    // Checked before it was stored: only a hand-edited row gets here.
                    tracing::warn!(tenant_id, pool, error = %e, "a pool's stored quiet hours are not valid; ignoring them");
                    None
                }
            }
        });
        PoolRules { settings: settings.clone(), active_hours }
    }
}

impl Default for PoolRules {
    fn default() -> Self {
        PoolRules { settings: PoolSettings::default(), active_hours: None }
    }
}

impl Scheduler {
    /// The pool's settings changed (or were read at start): the next decision uses them.
    pub fn set_pool_settings(&self, tenant_id: &str, pool: &str, settings: &PoolSettings) {
        let rules = PoolRules::new(tenant_id, pool, settings);
        self.lock().pools.insert((tenant_id.to_string(), pool.to_string()), rules);
        self.wake.notify_one();
    }

    /// The pool's settings as last set; a pool never set has the defaults.
    pub fn pool_rules(&self, tenant_id: &str, pool: &str) -> PoolRules {
        self.lock().pools.get(&(tenant_id.to_string(), pool.to_string())).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quiet_hours_are_parsed_once_and_bad_stored_ones_ignored() {
        let mut s = PoolSettings {
            quiet_hours: Some(json!({"timezone": "UTC", "start": "08:00", "end": "18:00"})),
            ..PoolSettings::default()
        };
        let r = PoolRules::new("t", "p", &s);
        assert_eq!(r.active_hours.map(|w| w.spec().start), Some("08:00".to_string()));
        s.quiet_hours = Some(json!({"timezone": "Nowhere/Else", "start": "08:00", "end": "18:00"}));
        assert_eq!(PoolRules::new("t", "p", &s).active_hours, None);
        assert_eq!(PoolRules::default().settings, PoolSettings::default());
    }
}
