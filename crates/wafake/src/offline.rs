//! The offline queue: what WhatsApp keeps for a device until the device acknowledges it.
//!
//! Every message to a device is queued, whether the device is online (it is sent at once) or
//! not. The device's receipt (`<receipt id>`, with more ids in `<list><item id/>`; any type
//! but a retry) or a bare `<ack class="message" id>` acknowledges it and the queue lets it
//! go. What is still queued when the device logs in (it was offline, or it got the message
//! and never acknowledged it: it crashed first) is delivered again, the same stanza with
//! `offline="1"`, in the handshake whatsapp-rust drives (`client/offline_resume.rs`,
//! `handlers/ib.rs`), as WA Web's `WAWebOfflineHandler`:
//!
//! 1. after the passive iq, `<ib><offline_preview count=N message=N/>`, then a primer of
//!    the first [`PRIMER`] stanzas;
//! 2. the rest on the client's `<ib><offline_batch count=K/>` requests, K at a time;
//! 3. once all N are out, `<ib><offline count=N/>` ends the drain (with nothing queued, this
//!    alone is sent: `count="0"`).
//!
//! A message that arrives during the drain goes out at once, like any live message.

use std::collections::{HashMap, HashSet, VecDeque};

use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;

/// Stanzas sent right after the preview, before the client asks for a batch (WA Web: ~5).
pub(crate) const PRIMER: usize = 5;

/// One device's unacknowledged messages, oldest first.
#[derive(Default)]
pub(crate) struct Queue {
    items: VecDeque<(String, Node)>,
}

/// Every device's queue, by device JID (`PHONE:N@s.whatsapp.net`).
#[derive(Default)]
pub(crate) struct Queues {
    by_device: HashMap<String, Queue>,
}

impl Queues {
    /// Keeps message `id` for `device` until it is acknowledged.
    pub(crate) fn keep(&mut self, device: &str, id: &str, node: Node) {
        let queue = self.by_device.entry(device.to_string()).or_default();
        queue.items.push_back((id.to_string(), node));
    }

    /// The device acknowledged these ids.
    pub(crate) fn ack<'a>(&mut self, device: &str, ids: impl IntoIterator<Item = &'a str>) {
        let Some(queue) = self.by_device.get_mut(device) else { return };
        let ids: HashSet<&str> = ids.into_iter().collect();
        queue.items.retain(|(id, _)| !ids.contains(id.as_str()));
        if queue.items.is_empty() {
            self.by_device.remove(device);
        }
    }

    /// The ids `device` has not acknowledged, oldest first.
    pub(crate) fn pending(&self, device: &str) -> Vec<String> {
        let items = self.by_device.get(device).map(|q| &q.items);
        items.into_iter().flatten().map(|(id, _)| id.clone()).collect()
    }

    /// What a login of `device` delivers: every queued stanza, marked offline.
    pub(crate) fn backlog(&self, device: &str) -> VecDeque<Node> {
        let items = self.by_device.get(device).map(|q| &q.items);
        items.into_iter().flatten().map(|(_, node)| offline(node)).collect()
    }

    /// The device was unlinked: nothing will ever fetch its messages.
    pub(crate) fn forget(&mut self, device: &str) {
        self.by_device.remove(device);
    }
}

/// `node` as delivered from the offline queue.
fn offline(node: &Node) -> Node {
    let mut node = node.clone();
    node.attrs.insert("offline", "1");
    node
}

/// The ids a client's `<receipt>` or `<ack class="message">` acknowledges; none for a retry
/// request (the client could not decrypt: the message must come again).
pub(crate) fn acknowledged(node: &Node) -> Vec<String> {
    let attr = |n: &Node, k: &str| n.attrs.get(k).map(|v| v.as_str().into_owned());
    match node.tag.as_ref() {
        "receipt" if attr(node, "type").is_some_and(|t| t.contains("retry")) => vec![],
        "receipt" => {
            let listed = node
                .get_optional_child("list")
                .and_then(Node::children)
                .unwrap_or_default()
                .iter()
                .filter(|i| i.tag == "item")
                .filter_map(|i| attr(i, "id"));
            attr(node, "id").into_iter().chain(listed).collect()
        }
        "ack" if attr(node, "class").as_deref() == Some("message") => {
            attr(node, "id").into_iter().collect()
        }
        _ => vec![],
    }
}

/// A login's delivery of the backlog, driven by the client's batch requests.
pub(crate) struct Drain {
    left: VecDeque<Node>,
    total: usize,
}

impl Drain {
    /// Starts delivering `backlog`: the stanzas to send now (the preview and the primer, or
    /// the end marker when there is nothing), and the drain still under way, if any.
    pub(crate) fn start(backlog: VecDeque<Node>) -> (Vec<Node>, Option<Drain>) {
        let total = backlog.len();
        if total == 0 {
            return (vec![end_marker(0)], None);
        }
        let preview = NodeBuilder::new("ib")
            .children([NodeBuilder::new("offline_preview")
                .attr("count", total.to_string())
                .attr("message", total.to_string())
                .build()])
            .build();
        let mut drain = Drain { left: backlog, total };
        let mut out = vec![preview];
        out.extend(drain.take(PRIMER));
        (out, (!drain.is_done()).then_some(drain))
    }

    /// The client asked for `count` more: the stanzas to send, the end marker after the last.
    pub(crate) fn take(&mut self, count: usize) -> Vec<Node> {
        let n = count.min(self.left.len());
        let mut out: Vec<Node> = self.left.drain(..n).collect();
        if self.left.is_empty() {
            out.push(end_marker(self.total));
        }
        out
    }

    pub(crate) fn is_done(&self) -> bool {
        self.left.is_empty()
    }
}

/// `<ib><offline count=N/>`: the drain is over.
fn end_marker(count: usize) -> Node {
    NodeBuilder::new("ib")
        .children([NodeBuilder::new("offline").attr("count", count.to_string()).build()])
        .build()
}

/// The `count` of a client's `<ib><offline_batch count=K/>`, if `node` is one.
pub(crate) fn batch_request(node: &Node) -> Option<usize> {
    let batch = node.get_optional_child("offline_batch")?;
    batch.attrs.get("count").and_then(|v| v.as_str().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str) -> Node {
        NodeBuilder::new("message").attr("id", id).attr("type", "text").build()
    }

    fn describe(nodes: &[Node]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| match n.tag.as_ref() {
                "message" => format!(
                    "{}{}",
                    n.attrs.get("id").unwrap().as_str(),
                    if n.attrs.get("offline").is_some() { "*" } else { "" }
                ),
                _ => {
                    let c = &n.children().unwrap()[0];
                    format!("{}={}", c.tag, c.attrs.get("count").unwrap().as_str())
                }
            })
            .collect()
    }

    #[test]
    fn kept_until_acknowledged_by_receipt_list_or_ack_but_not_by_a_retry() {
        let mut q = Queues::default();
        for id in ["A", "B", "C", "D", "E"] {
            q.keep("d1", id, msg(id));
        }
        let receipt = NodeBuilder::new("receipt")
            .attr("id", "A")
            .children([NodeBuilder::new("list")
                .children([NodeBuilder::new("item").attr("id", "C").build()])
                .build()])
            .build();
        let retry = NodeBuilder::new("receipt").attr("id", "B").attr("type", "retry").build();
        let ack = NodeBuilder::new("ack").attr("class", "message").attr("id", "D").build();
        let other_ack = NodeBuilder::new("ack").attr("class", "receipt").attr("id", "E").build();
        for node in [&receipt, &retry, &ack, &other_ack] {
            let ids = acknowledged(node);
            q.ack("d1", ids.iter().map(String::as_str));
        }
        assert_eq!(q.pending("d1"), ["B", "E"]);
        assert_eq!(describe(&Vec::from(q.backlog("d1"))), ["B*", "E*"], "delivered as offline");
        assert!(q.pending("d2").is_empty());
        q.forget("d1");
        assert!(q.pending("d1").is_empty());
    }

    #[test]
    fn a_login_drains_preview_primer_then_batches_then_the_end_marker() {
        let backlog: VecDeque<Node> = (0..12).map(|n| offline(&msg(&format!("M{n}")))).collect();
        let (now, drain) = Drain::start(backlog);
        assert_eq!(describe(&now), ["offline_preview=12", "M0*", "M1*", "M2*", "M3*", "M4*"]);
        let mut drain = drain.expect("seven to go");
        assert_eq!(describe(&drain.take(4)), ["M5*", "M6*", "M7*", "M8*"]);
        assert!(!drain.is_done());
        assert_eq!(describe(&drain.take(200)), ["M9*", "M10*", "M11*", "offline=12"]);
        assert!(drain.is_done());

        let (now, drain) = Drain::start(VecDeque::new());
        assert_eq!(describe(&now), ["offline=0"]);
        assert!(drain.is_none());
        // A backlog the primer covers ends at once.
        let (now, drain) = Drain::start((0..2).map(|n| msg(&format!("S{n}"))).collect());
        assert_eq!(describe(&now), ["offline_preview=2", "S0", "S1", "offline=2"]);
        assert!(drain.is_none());
    }
}
