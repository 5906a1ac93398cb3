//! The inbound messages the network handed to each number that the number has not
//! acknowledged yet, as WhatsApp keeps them: a gateway acknowledges a message only once it is
//! on its disk, so what it never acknowledged (it crashed, or its store failed) is delivered
//! again at the number's next login, in the order first handed.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::InboundMessage;

/// Most messages kept per number: a gateway that never acknowledges (one of an older version)
/// must not grow the network without bound; the oldest go first.
const CAP: usize = 100_000;

#[derive(Default)]
pub(crate) struct Unacked {
    by_instance: HashMap<String, VecDeque<InboundMessage>>,
}

impl Unacked {
    /// `message` was handed to the number's connection.
    pub(crate) fn handed(&mut self, instance_id: &str, message: InboundMessage) {
        let queue = self.by_instance.entry(instance_id.to_string()).or_default();
        if queue.len() >= CAP {
            queue.pop_front();
        }
        queue.push_back(message);
    }

    /// The number acknowledged these message ids (ids it does not hold are ignored: a
    /// redelivered message may be acknowledged twice).
    pub(crate) fn ack(&mut self, instance_id: &str, ids: &[String]) {
        let Some(queue) = self.by_instance.get_mut(instance_id) else { return };
        let ids: HashSet<&str> = ids.iter().map(String::as_str).collect();
        queue.retain(|m| !ids.contains(m.id.as_str()));
        if queue.is_empty() {
            self.by_instance.remove(instance_id);
        }
    }

    /// What the number has not acknowledged, oldest first: delivered again at its login.
    pub(crate) fn pending(&self, instance_id: &str) -> impl Iterator<Item = &InboundMessage> {
        self.by_instance.get(instance_id).into_iter().flatten()
    }

    /// The number's device went (unlinked, or replaced by a new one): its messages with it.
    pub(crate) fn forget(&mut self, instance_id: &str) {
        self.by_instance.remove(instance_id);
    }
}

#[cfg(test)]
mod tests {
    use bzapper_core::Jid;
    use chrono::Utc;

    use super::*;
    use crate::InboundContent;

    fn msg(id: &str) -> InboundMessage {
        let jid = Jid::parse("5511988880001@s.whatsapp.net").unwrap();
        InboundMessage {
            id: id.into(),
            chat: jid.clone(),
            sender: jid,
            sender_alt: None,
            push_name: None,
            text: "hi".into(),
            mentions: vec![],
            content: InboundContent::Text,
            reply_to: None,
            at: Utc::now(),
        }
    }

    fn ids(u: &Unacked, instance: &str) -> Vec<String> {
        u.pending(instance).map(|m| m.id.clone()).collect()
    }

    #[test]
    fn kept_in_order_until_acknowledged_per_number() {
        let mut u = Unacked::default();
        for id in ["A", "B", "C"] {
            u.handed("i1", msg(id));
        }
        u.handed("i2", msg("A"));
        u.ack("i1", &["B".into(), "Z".into()]);
        assert_eq!(ids(&u, "i1"), ["A", "C"]);
        assert_eq!(ids(&u, "i2"), ["A"], "another number's copy is its own");
        u.ack("i1", &["A".into(), "C".into(), "A".into()]);
        assert!(ids(&u, "i1").is_empty());
        u.forget("i2");
        assert!(ids(&u, "i2").is_empty());
        assert!(ids(&u, "i9").is_empty());
    }
}
