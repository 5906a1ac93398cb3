//! "Seen before reply": a number set to [`ReadReceipts::Auto`] marks a contact's unread
//! messages read, after a human pause, before it replies to them, as a person does. This is
//! the number's setting and the pure bookkeeping of what each number received and has not
//! marked read ([`UnreadInbound`]); the gateway keeps it in memory.

use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// What a number does with the read receipts of what it receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadReceipts {
    /// Nothing is marked read unless asked (`POST …/read`).
    #[default]
    Off,
    /// Before replying to a contact, the number marks the contact's unread messages read.
    Auto,
}

impl ReadReceipts {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadReceipts::Off => "off",
            ReadReceipts::Auto => "auto",
        }
    }

    /// `off` or `auto`; the error is the sentence the API answers with.
    pub fn parse(s: &str) -> Result<ReadReceipts, String> {
        match s {
            "off" => Ok(ReadReceipts::Off),
            "auto" => Ok(ReadReceipts::Auto),
            other => Err(format!("read_receipts must be `off` or `auto`, not `{other}`")),
        }
    }
}

/// How long a person takes to open a chat and read it before typing, ms.
pub const READ_DELAY_MS: RangeInclusive<u64> = 1_000..=4_000;

/// The pause before marking a contact's messages read, drawn uniformly from
/// [`READ_DELAY_MS`].
pub fn read_delay_ms(rng: &mut impl Rng) -> u64 {
    rng.gen_range(READ_DELAY_MS)
}

/// The most contacts with unread messages kept per number (the oldest go first).
pub const MAX_CHATS_PER_NUMBER: usize = 2_000;
/// The most unread message ids kept per contact (the oldest go first).
pub const MAX_IDS_PER_CHAT: usize = 64;

/// Messages a contact sent in one direct chat, not yet marked read: the chat as the network
/// addressed it (a phone JID or a LID: the receipt goes back to it) and their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadBatch<C> {
    pub chat: C,
    pub ids: Vec<String>,
}

/// What each number received in its direct chats and has not marked read, by number and by
/// contact key (the contact's phone JID where known, which is what a reply is addressed to).
/// `C` is the chat address type (the gateway's `Jid`).
#[derive(Debug)]
pub struct UnreadInbound<C> {
    numbers: HashMap<String, Chats<C>>,
}

#[derive(Debug)]
struct Chats<C> {
    by_contact: HashMap<String, Vec<UnreadBatch<C>>>,
    /// Contact keys, oldest first, to drop the oldest beyond the cap.
    order: VecDeque<String>,
}

impl<C> Default for UnreadInbound<C> {
    fn default() -> Self {
        UnreadInbound { numbers: HashMap::new() }
    }
}

impl<C: Clone + PartialEq> UnreadInbound<C> {
    /// Number `number` received message `id` from `contact` in the direct chat addressed as
    /// `chat`. A redelivery of an id already noted changes nothing.
    pub fn note(&mut self, number: &str, contact: &str, chat: &C, id: &str) {
        let chats = self
            .numbers
            .entry(number.to_string())
            .or_insert_with(|| Chats { by_contact: HashMap::new(), order: VecDeque::new() });
        let batches = match chats.by_contact.get_mut(contact) {
            Some(b) => b,
            None => {
                if chats.order.len() >= MAX_CHATS_PER_NUMBER {
                    if let Some(oldest) = chats.order.pop_front() {
                        chats.by_contact.remove(&oldest);
                    }
                }
                chats.order.push_back(contact.to_string());
                chats.by_contact.entry(contact.to_string()).or_default()
            }
        };
        if batches.iter().any(|b| b.ids.iter().any(|i| i == id)) {
            return;
        }
        match batches.iter_mut().find(|b| &b.chat == chat) {
            Some(b) => b.ids.push(id.to_string()),
            None => batches.push(UnreadBatch { chat: chat.clone(), ids: vec![id.to_string()] }),
        }
        let total: usize = batches.iter().map(|b| b.ids.len()).sum();
        if total > MAX_IDS_PER_CHAT {
            if let Some(first) = batches.iter_mut().find(|b| !b.ids.is_empty()) {
                first.ids.remove(0);
            }
            batches.retain(|b| !b.ids.is_empty());
        }
    }

    /// Whether `number` has unread messages from `contact`.
    pub fn has(&self, number: &str, contact: &str) -> bool {
        self.numbers.get(number).is_some_and(|c| c.by_contact.contains_key(contact))
    }

    /// Takes (and forgets) `number`'s unread messages from `contact`, by chat address.
    pub fn take(&mut self, number: &str, contact: &str) -> Vec<UnreadBatch<C>> {
        let Some(chats) = self.numbers.get_mut(number) else { return Vec::new() };
        let taken = chats.by_contact.remove(contact).unwrap_or_default();
        if !taken.is_empty() {
            chats.order.retain(|c| c != contact);
        }
        if chats.by_contact.is_empty() {
            self.numbers.remove(number);
        }
        taken
    }

    /// Forgets message `id` of `number` (it was marked read another way).
    pub fn forget_message(&mut self, number: &str, id: &str) {
        let Some(chats) = self.numbers.get_mut(number) else { return };
        let mut emptied = Vec::new();
        for (contact, batches) in chats.by_contact.iter_mut() {
            for b in batches.iter_mut() {
                b.ids.retain(|i| i != id);
            }
            batches.retain(|b| !b.ids.is_empty());
            if batches.is_empty() {
                emptied.push(contact.clone());
            }
        }
        for contact in emptied {
            chats.by_contact.remove(&contact);
            chats.order.retain(|c| c != &contact);
        }
        if chats.by_contact.is_empty() {
            self.numbers.remove(number);
        }
    }

    /// Forgets everything of `number` (deleted, logged out).
    pub fn forget_number(&mut self, number: &str) {
        self.numbers.remove(number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_and_writes_its_two_words() {
        assert_eq!(ReadReceipts::default(), ReadReceipts::Off);
        for r in [ReadReceipts::Off, ReadReceipts::Auto] {
            assert_eq!(ReadReceipts::parse(r.as_str()), Ok(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!(ReadReceipts::parse("on").unwrap_err().contains("`off` or `auto`"));
    }

    #[test]
    fn unread_messages_are_taken_once_by_chat_address() {
        let mut u = UnreadInbound::<String>::default();
        u.note("n1", "c1", &"c1@s".to_string(), "A");
        u.note("n1", "c1", &"c1@s".to_string(), "B");
        u.note("n1", "c1", &"9@lid".to_string(), "C");
        u.note("n1", "c1", &"c1@s".to_string(), "A"); // a redelivery
        u.note("n2", "c1", &"c1@s".to_string(), "X");
        assert!(u.has("n1", "c1") && !u.has("n1", "c2"));
        let taken = u.take("n1", "c1");
        assert_eq!(
            taken,
            [
                UnreadBatch { chat: "c1@s".to_string(), ids: vec!["A".into(), "B".into()] },
                UnreadBatch { chat: "9@lid".to_string(), ids: vec!["C".into()] },
            ]
        );
        assert!(u.take("n1", "c1").is_empty());
        // Another number's unread messages are its own.
        assert_eq!(u.take("n2", "c1")[0].ids, ["X"]);
    }

    #[test]
    fn a_message_read_another_way_and_a_forgotten_number_are_gone() {
        let mut u = UnreadInbound::<String>::default();
        u.note("n1", "c1", &"c1".to_string(), "A");
        u.note("n1", "c1", &"c1".to_string(), "B");
        u.forget_message("n1", "A");
        assert_eq!(u.take("n1", "c1")[0].ids, ["B"]);
        u.note("n1", "c1", &"c1".to_string(), "C");
        u.forget_message("n1", "C");
        assert!(!u.has("n1", "c1"));
        u.note("n1", "c2", &"c2".to_string(), "D");
        u.forget_number("n1");
        assert!(u.take("n1", "c2").is_empty());
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let mut u = UnreadInbound::<String>::default();
        for i in 0..MAX_IDS_PER_CHAT + 10 {
            u.note("n", "c", &"c".to_string(), &format!("m{i}"));
        }
        let ids = &u.take("n", "c")[0].ids;
        assert_eq!(ids.len(), MAX_IDS_PER_CHAT);
        assert_eq!(ids[0], "m10", "the oldest went first");
        for i in 0..MAX_CHATS_PER_NUMBER + 1 {
            u.note("n", &format!("c{i}"), &"x".to_string(), "m");
        }
        assert!(
            !u.has("n", "c0")
                && u.has("n", "c1")
                && u.has("n", &format!("c{MAX_CHATS_PER_NUMBER}"))
        );
    }

    #[test]
    fn the_read_delay_is_a_human_one() {
        let mut rng = rand::rngs::mock::StepRng::new(0, u64::MAX / 7);
        for _ in 0..50 {
            assert!(READ_DELAY_MS.contains(&read_delay_ms(&mut rng)));
        }
    }
}
