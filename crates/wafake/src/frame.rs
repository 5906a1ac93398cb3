//! Byte-level framing on the server side of the socket: the client's prologue
//! (`[ED\0\1 <len:3> <routing>] WA\x06<dict>`), the 3-byte length frames, and after the
//! handshake the AES-GCM transport with one counter per direction, carrying binary nodes
//! (`wacore_binary` marshal / unpack + unmarshal).

use anyhow::{anyhow, bail, Context, Result};
use wacore_binary::consts::WA_CONN_HEADER;
use wacore_binary::Node;
use wacore_noise::framing::FrameDecoder;
use wacore_noise::NoiseCipher;

/// Splits the client's byte stream into frames, skipping the prologue first.
#[derive(Default)]
pub struct Deframer {
    prologue_done: bool,
    head: Vec<u8>,
    frames: FrameDecoder,
}

impl Deframer {
    /// Feeds bytes read from the socket.
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        if self.prologue_done {
            self.frames.feed(data);
            return Ok(());
        }
        self.head.extend_from_slice(data);
        let mut at = 0;
        if self.head.starts_with(b"ED\x00\x01") {
            if self.head.len() < 7 {
                return Ok(());
            }
            let len = (usize::from(self.head[4]) << 16)
                | (usize::from(self.head[5]) << 8)
                | usize::from(self.head[6]);
            at = 7 + len;
        } else if self.head.len() < 4 && b"ED\x00\x01".starts_with(&self.head) {
            return Ok(());
        }
        if self.head.len() < at + WA_CONN_HEADER.len() {
            return Ok(());
        }
        if self.head[at..at + 2] != WA_CONN_HEADER[..2] {
            bail!("the client did not open with the WA prologue");
        }
        at += WA_CONN_HEADER.len();
        self.prologue_done = true;
        let rest = self.head.split_off(at);
        self.head = Vec::new();
        self.frames.feed(&rest);
        Ok(())
    }

    /// The next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        if !self.prologue_done {
            return None;
        }
        self.frames.decode_frame().map(|f| f.to_vec())
    }
}

/// Wraps a payload in a 3-byte length frame (the server sends no prologue).
pub fn frame(payload: &[u8]) -> Result<Vec<u8>> {
    wacore_noise::framing::encode_frame(payload, None)
}

/// The transport ciphers of a finished handshake, seen from the server.
pub struct Transport {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl Transport {
    /// `read` decrypts what the client sends, `write` encrypts what the server sends.
    pub fn new(read: NoiseCipher, write: NoiseCipher) -> Self {
        Self { read, write, read_counter: 0, write_counter: 0 }
    }

    /// Encrypts and frames one node.
    pub fn seal(&mut self, node: &Node) -> Result<Vec<u8>> {
        let plain = wacore_binary::marshal(node).context("marshal node")?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plain)
            .map_err(|e| anyhow!("encrypt frame: {e}"))?;
        self.write_counter = self.write_counter.wrapping_add(1);
        frame(&sealed)
    }

    /// Decrypts one frame's payload into a node.
    pub fn open(&mut self, mut payload: Vec<u8>) -> Result<Node> {
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut payload)
            .map_err(|e| anyhow!("decrypt frame: {e}"))?;
        self.read_counter = self.read_counter.wrapping_add(1);
        let unpacked = wacore_binary::util::unpack(&payload).context("unpack node")?;
        let node = wacore_binary::marshal::unmarshal_ref(&unpacked).context("unmarshal node")?;
        Ok(node.to_owned())
    }
}

/// A node in its wire form (unencrypted), to keep it compactly; `None` if it cannot be
/// marshalled.
pub(crate) fn encode_node(node: &Node) -> Option<Box<[u8]>> {
    wacore_binary::marshal(node).ok().map(Vec::into_boxed_slice)
}

/// A node back from [`encode_node`]'s form.
pub(crate) fn decode_node(wire: &[u8]) -> Option<Node> {
    let unpacked = wacore_binary::util::unpack(wire).ok()?;
    Some(wacore_binary::marshal::unmarshal_ref(&unpacked).ok()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_round_trips_through_its_wire_form() {
        use wacore_binary::builder::NodeBuilder;
        let key = |id: u8| {
            NodeBuilder::new("key")
                .children([
                    NodeBuilder::new("id").bytes(vec![0, 0, id]).build(),
                    NodeBuilder::new("value").bytes(vec![id; 32]).build(),
                ])
                .build()
        };
        let node = NodeBuilder::new("iq")
            .attr("xmlns", "encrypt")
            .attr("type", "set")
            .children([NodeBuilder::new("list").children((1..=3).map(key)).build()])
            .build();
        let wire = encode_node(&node).unwrap();
        assert_eq!(decode_node(&wire).unwrap(), node);
    }

    #[test]
    fn prologue_is_skipped_with_and_without_edge_routing() {
        for prefix in [Vec::new(), b"ED\x00\x01\x00\x00\x02ab".to_vec()] {
            let mut bytes = prefix.clone();
            bytes.extend_from_slice(&WA_CONN_HEADER);
            bytes.extend_from_slice(&frame(b"hello").unwrap());
            bytes.extend_from_slice(&frame(b"world").unwrap());
            let mut d = Deframer::default();
            // One byte at a time: the split must not matter.
            for b in &bytes {
                d.feed(std::slice::from_ref(b)).unwrap();
            }
            assert_eq!(d.next_frame().as_deref(), Some(&b"hello"[..]));
            assert_eq!(d.next_frame().as_deref(), Some(&b"world"[..]));
            assert_eq!(d.next_frame(), None);
        }
    }

    #[test]
    fn a_foreign_prologue_is_refused() {
        let mut d = Deframer::default();
        assert!(d.feed(b"GET / HTTP").is_err());
    }
}
