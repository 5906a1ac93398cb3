//! Which events a subscriber (an SSE stream, a webhook) wants: an instance and a list of types
//! or `prefix.*` patterns.

use bzapper_store::Event;

use crate::events::kinds::EVENT_TYPES;

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    instance_id: Option<String>,
    /// Exact types and `prefix.` patterns; empty means every type.
    patterns: Vec<String>,
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
                return Err(format!("unknown event type or pattern `{t}`"));
            }
            patterns.push(t.trim_end_matches('*').to_string());
        }
        Ok(Filter { instance_id, patterns })
    }

    pub fn matches(&self, e: &Event) -> bool {
        let instance_ok = match &self.instance_id {
            Some(i) => e.instance_id.as_deref() == Some(i.as_str()),
            None => true,
        };
        let type_ok = self.patterns.is_empty()
            || self.patterns.iter().any(|p| {
                if p.ends_with('.') {
                    e.kind.starts_with(p.as_str())
                } else {
                    e.kind == *p
                }
            });
        instance_ok && type_ok
    }
}
