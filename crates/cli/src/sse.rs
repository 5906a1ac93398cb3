//! A small Server-Sent Events parser (the WHATWG `text/event-stream` format: `id:`, `event:`,
//! `data:` lines, `:` comments, a blank line ends a frame). Written by hand rather than taken
//! from an SSE client crate: the format is a few dozen lines, the crates either bring their
//! own HTTP stack or wrap reqwest in more than we use, and owning the loop lets `events tail`
//! decide itself how to reconnect and resume with `Last-Event-ID`.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The `id:` field, when the frame had one.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent, as browsers do).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Feeds bytes in as they arrive, takes whole frames out.
#[derive(Default)]
pub struct Parser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// A `\r` ended the last chunk: a `\n` starting the next one belongs to it.
    after_cr: bool,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every frame that `chunk` completes, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &b in chunk {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.partial);
                    let line = String::from_utf8_lossy(&line);
                    if let Some(frame) = self.line(&line) {
                        out.push(frame);
                    }
                }
                _ => self.partial.push(b),
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<Frame> {
        if line.is_empty() {
            // A frame with no data is not dispatched (heartbeats, a lone `id:`), but its id
            // still counts, as in browsers.
            let data = self.data.take();
            let event = self.event.take();
            let id = self.id.clone();
            return data.map(|data| Frame {
                id,
                event: event.unwrap_or_else(|| "message".into()),
                data,
            });
        }
        if line.starts_with(':') {
            return None; // a comment: the gateway's heartbeat
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {} // `retry:` and unknown fields: our own reconnect policy applies
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let stream = b": heartbeat\n\nid: 7\nevent: instance.qr\ndata: {\"a\":\ndata: 1}\n\nid:8\r\ndata:x\r\n\r\n";
        for split in 0..stream.len() {
            let mut p = Parser::new();
            let mut frames = p.push(&stream[..split]);
            frames.extend(p.push(&stream[split..]));
            assert_eq!(
                frames,
                vec![
                    Frame {
                        id: Some("7".into()),
                        event: "instance.qr".into(),
                        data: "{\"a\":\n1}".into()
                    },
                    Frame { id: Some("8".into()), event: "message".into(), data: "x".into() },
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn the_last_id_carries_over_and_comments_dispatch_nothing() {
        let mut p = Parser::new();
        assert!(p.push(b":heartbeat\n\n:heartbeat\n\n").is_empty());
        let frames = p.push(b"id: 3\ndata: a\n\ndata: b\n\n");
        assert_eq!(frames[1].id.as_deref(), Some("3"));
        assert_eq!(frames[1].data, "b");
        // A frame not ended yet is not dispatched.
        assert!(p.push(b"data: c\n").is_empty());
        assert_eq!(p.push(b"\n").len(), 1);
    }
}
