//! Which events a subscriber (an SSE stream, a webhook) wants: an instance and a list of types
//! or `prefix.*` patterns.

use bzapper_core::validate::shown;
use bzapper_store::Event;

use crate::events::kinds::EVENT_TYPES;

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    instance_id: Option<String>,
    /// Exact types and prefixes; empty means every type.
    patterns: Vec<Pattern>,
}

/// One entry of a filter: a type, or (written with a trailing `*`) every type that starts
/// with what comes before the `*` (`instance.*`, `inst*`, or `*` for all).
#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Filter {
    pub fn parse(instance_id: Option<String>, types: Option<&str>) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for t in types.unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let known = match t.strip_suffix('*') {
                Some(prefix) => EVENT_TYPES.iter().any(|k| k.starts_with(prefix)),
                None => EVENT_TYPES.contains(&t),
            };
            if !known {
                return Err(format!("unknown event type or pattern `{}`", shown(t)));
            }
            patterns.push(match t.strip_suffix('*') {
                Some(prefix) => Pattern::Prefix(prefix.to_string()),
                None => Pattern::Exact(t.to_string()),
            });
        }
        Ok(Filter { instance_id, patterns })
    }

    pub fn matches(&self, e: &Event) -> bool {
        let instance_ok = match &self.instance_id {
            Some(i) => e.instance_id.as_deref() == Some(i.as_str()),
            None => true,
        };
        let type_ok = self.patterns.is_empty()
            || self.patterns.iter().any(|p| match p {
                Pattern::Exact(t) => e.kind == *t,
                Pattern::Prefix(prefix) => e.kind.starts_with(prefix.as_str()),
            });
        instance_ok && type_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, instance: Option<&str>) -> Event {
        Event {
            id: 1,
            tenant_id: "t1".into(),
            instance_id: instance.map(Into::into),
            kind: kind.into(),
            data: serde_json::json!({}),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_star_matches_every_type_that_starts_with_what_comes_before_it() {
        let f = |t: &str| Filter::parse(None, Some(t)).unwrap();
        let qr = event("instance.qr", None);
        let got = event("message.received", None);
        assert!(f("instance.*").matches(&qr) && !f("instance.*").matches(&got));
        assert!(f("inst*").matches(&qr) && !f("inst*").matches(&got));
        assert!(f("*").matches(&qr) && f("*").matches(&got));
        assert!(f("message.received").matches(&got) && !f("message.received").matches(&qr));
        assert!(f("instance.qr, message.*").matches(&got));
        assert!(Filter::parse(None, Some("bogus.*")).is_err());
        assert!(Filter::parse(None, Some("instance.q")).is_err());
    }

    #[test]
    fn an_instance_filter_keeps_only_that_numbers_events() {
        let f = Filter::parse(Some("i1".into()), None).unwrap();
        assert!(f.matches(&event("instance.qr", Some("i1"))));
        assert!(!f.matches(&event("instance.qr", Some("i2"))));
        assert!(!f.matches(&event("campaign.created", None)));
    }
}
