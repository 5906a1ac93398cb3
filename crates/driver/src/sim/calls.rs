//! The calls ringing on each number of the simulated network (`POST
//! /v1/sim/instances/{id}/call`) until the number rejects them: a rejection names a call the
//! network offered to that number, as WhatsApp's `<reject>` answers an `<offer>`. A call that
//! is never rejected rings on: the network has no audio and no ringing timeout, and only the
//! cap below forgets it.

use std::collections::{HashMap, VecDeque};

use rand::Rng;

/// Most calls kept ringing per number: a gateway that never rejects must not grow the network
/// without bound; the oldest are forgotten first.
const CAP: usize = 1_000;

#[derive(Default)]
pub(crate) struct Ringing {
    by_instance: HashMap<String, VecDeque<String>>,
}

impl Ringing {
    /// A new call rings on the number; its id.
    pub(crate) fn offer(&mut self, instance_id: &str) -> String {
        let calls = self.by_instance.entry(instance_id.to_string()).or_default();
        if calls.len() >= CAP {
            calls.pop_front();
        }
        let id = call_id();
        calls.push_back(id.clone());
        id
    }

    /// The number rejects call `id`: whether it was ringing there (it no longer is).
    pub(crate) fn reject(&mut self, instance_id: &str, id: &str) -> bool {
        let Some(calls) = self.by_instance.get_mut(instance_id) else { return false };
        let before = calls.len();
        calls.retain(|c| c != id);
        let was_ringing = calls.len() < before;
        if calls.is_empty() {
            self.by_instance.remove(instance_id);
        }
        was_ringing
    }

    #[cfg(test)]
    fn ringing(&self, instance_id: &str) -> std::collections::HashSet<&str> {
        self.by_instance
            .get(instance_id)
            .map(|c| c.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// A call id shaped like WhatsApp's (32 upper-case hex digits).
fn call_id() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_rings_until_rejected_once_on_its_own_number() {
        let mut r = Ringing::default();
        let a = r.offer("i1");
        let b = r.offer("i1");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(!r.reject("i2", &a), "another number cannot reject it");
        assert!(r.reject("i1", &a));
        assert!(!r.reject("i1", &a), "rejected once");
        assert_eq!(r.ringing("i1"), std::collections::HashSet::from([b.as_str()]));
    }

    #[test]
    fn the_oldest_calls_are_forgotten_past_the_cap() {
        let mut r = Ringing::default();
        let first = r.offer("i1");
        for _ in 0..CAP {
            r.offer("i1");
        }
        assert!(!r.reject("i1", &first));
        assert_eq!(r.ringing("i1").len(), CAP);
    }
}
