//! One queue of the dispatcher (a pool's, or the messages forced to one number): the messages
//! that may go now in accept order, and those scheduled for later (`not_before_ms`) aside,
//! ordered by when they may go, so that a scheduled message never stands in front of the queue.

use std::collections::{BTreeMap, VecDeque};

use super::dispatcher::QueuedMessage;
use super::pacing::typing_floor_ms;

/// How many entries of a queue one poll looks at without handing them out (messages that
/// cannot go yet: their contact's pace, a sticky number that is busy, every ready number at
/// its first-contact cap…). Messages further back wait for the ones in front to go, so a poll
/// costs at most this many looks per queue whatever the backlog.
pub const LOOKAHEAD: usize = 64;

/// A queued message with its place in line: queues stay sorted by `seq`, so that a message put
/// back after a failed attempt returns to exactly where it was.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub seq: i64,
    pub msg: QueuedMessage,
}

impl Entry {
    /// The shortest typing time its text can get: the earliest its send can follow its start.
    pub fn floor_ms(&self) -> i64 {
        typing_floor_ms(self.msg.text_chars) as i64
    }

    /// Past its validity at `now_ms`: never handed out again, waiting for `take_expired`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.msg.expires_at_ms.is_some_and(|t| now_ms >= t)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Line {
    /// May go now, in accept order.
    pub ready: VecDeque<Entry>,
    /// Scheduled: (not before, seq) → entry; moved to `ready` by `promote` when due.
    later: BTreeMap<(i64, i64), Entry>,
}

impl Line {
    /// Puts an entry in line: scheduled ones aside until `promote` finds them due.
    pub fn insert(&mut self, entry: Entry) {
        match entry.msg.not_before_ms {
            Some(t) => {
                self.later.insert((t, entry.seq), entry);
            }
            None => self.insert_ready(entry),
        }
    }

    fn insert_ready(&mut self, entry: Entry) {
        let pos = self.ready.partition_point(|e| e.seq < entry.seq);
        self.ready.insert(pos, entry);
    }

    /// Moves the scheduled entries due at `now_ms` to their place in line.
    pub fn promote(&mut self, now_ms: i64) {
        while let Some(entry) = self.later.first_entry().filter(|e| e.key().0 <= now_ms) {
            let entry = entry.remove();
            self.insert_ready(entry);
        }
    }

    /// When the earliest scheduled entry is due.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.later.keys().next().map(|k| k.0)
    }

    pub fn len(&self) -> usize {
        self.ready.len() + self.later.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.later.is_empty()
    }

    /// Takes the entry with this id out, wherever it waits.
    pub fn remove(&mut self, message_id: &str) -> Option<Entry> {
        if let Some(pos) = self.ready.iter().position(|e| e.msg.id == message_id) {
            return self.ready.remove(pos);
        }
        let key = self.later.iter().find(|(_, e)| e.msg.id == message_id).map(|(k, _)| *k)?;
        self.later.remove(&key)
    }

    /// Every entry, in accept order.
    pub fn entries(&self) -> Vec<&Entry> {
        let mut all: Vec<&Entry> = self.ready.iter().chain(self.later.values()).collect();
        all.sort_by_key(|e| e.seq);
        all
    }

    /// Takes every entry out, in accept order.
    pub fn drain(&mut self) -> Vec<Entry> {
        let mut all: Vec<Entry> =
            self.ready.drain(..).chain(std::mem::take(&mut self.later).into_values()).collect();
        all.sort_by_key(|e| e.seq);
        all
    }
}
