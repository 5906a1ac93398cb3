//! A pool's settings as the send rules read them: the stored settings with the quiet hours
//! checked once, when they are set.

use bzapper_store::PoolSettings;

use crate::runtime::campaigns::window::{ScheduleSpec, Window};

/// A pool's settings with its quiet hours checked once, when they are set.
#[derive(Debug, Clone, Default, PartialEq)]
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
