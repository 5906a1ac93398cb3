//! Spintax: text with choices, `{Hi|Hello|Hey} {{name}}`, so that a bulk message does not go
//! out identical to every recipient. Pure: the choice comes from a seed the caller derives
//! from what names the recipient ([`seed`]), so the same recipient always gets the same text.
//!
//! The syntax:
//! - `{a|b|c}` is a group: one of its alternatives, picked uniformly. Alternatives may hold
//!   groups of their own (`{Hi|Hello {there|friend}}`) and may be empty (`{|!}`).
//! - `{{field}}` (no `{`, `}` or `|` between the double braces) is a template placeholder and
//!   is kept exactly as written, for the template to fill in afterwards.
//! - Braces with no `|` at their own level are kept as written: `{note}` stays `{note}`, so
//!   texts written before spintax read as before.
//! - `\{`, `\}`, `\|` and `\\` are a literal `{`, `}`, `|` and `\`; any other `\` is itself.
//!   Outside a group a `|` is plain text.
//! - A `{` that is never closed, or a `}` that closes nothing, is an error naming where it is.

/// The most groups a text may have, nested or not (a bound on the work a render does).
pub const MAX_GROUPS: usize = 1_000;
/// The deepest nesting.
pub const MAX_DEPTH: usize = 16;

/// A parsed spintax text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spintax {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// Literal text, with the character (1-based) of the source it starts at.
    Text { text: String, at: usize },
    /// One of these alternatives.
    Choice(Vec<Vec<Node>>),
}

/// Why a text is not valid spintax, and where (`at`: 1-based character of the source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {at})")]
pub struct SpintaxError {
    pub at: usize,
    pub message: String,
}

/// A piece of literal text of a parsed spintax, with the character (1-based) of the source
/// it starts at: every placeholder lies whole inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPiece<'a> {
    pub text: &'a str,
    pub at: usize,
}

impl Spintax {
    /// Parses `source` (see the module docs for the syntax).
    pub fn parse(source: &str) -> Result<Spintax, SpintaxError> {
        let chars: Vec<char> = source.chars().collect();
        let mut p = Parser { chars: &chars, pos: 0, groups: 0 };
        let nodes = p.sequence(0, None)?;
        Ok(Spintax { nodes })
    }

    /// Whether the text has any choice at all.
    pub fn has_choices(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n, Node::Choice(_)))
    }

    /// How many different texts it can give (saturating), counting alternatives as distinct.
    pub fn variants(&self) -> u64 {
        fn seq(nodes: &[Node]) -> u64 {
            nodes.iter().fold(1u64, |acc, n| match n {
                Node::Text { .. } => acc,
                Node::Choice(alts) => {
                    acc.saturating_mul(alts.iter().map(|a| seq(a)).fold(0, u64::saturating_add))
                }
            })
        }
        seq(&self.nodes)
    }

    /// Every piece of literal text, in source order (what a template reads its fields from).
    pub fn texts(&self) -> Vec<TextPiece<'_>> {
        fn walk<'a>(nodes: &'a [Node], out: &mut Vec<TextPiece<'a>>) {
            for n in nodes {
                match n {
                    Node::Text { text, at } => out.push(TextPiece { text, at: *at }),
                    Node::Choice(alts) => alts.iter().for_each(|a| walk(a, out)),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.nodes, &mut out);
        out
    }

    /// The text given by `seed`: each group's alternative drawn from a generator seeded with
    /// it, in source order. The same seed gives the same text.
    pub fn render(&self, seed: u64) -> String {
        let mut rng = SplitMix64(seed);
        let mut out = String::new();
        render(&self.nodes, &mut rng, &mut out);
        out
    }
}

fn render(nodes: &[Node], rng: &mut SplitMix64, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text { text, .. } => out.push_str(text),
            Node::Choice(alts) => {
                let pick = rng.below(alts.len() as u64) as usize;
                render(&alts[pick], rng, out);
            }
        }
    }
}

/// A stable seed from the parts that name a recipient (for a campaign: its id and the
/// recipient's index): FNV-1a over the parts, each followed by a separator. Stable across
/// builds and platforms, unlike the standard library's hashers.
pub fn seed(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// SplitMix64: a tiny generator whose sequence is fixed by its seed forever (a library's
/// generator may change between versions; a stored choice must not).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0), without modulo bias (Lemire's multiply-shift).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    groups: usize,
}

/// What ended a sequence inside a group.
enum End {
    Bar,
    Close,
}

impl Parser<'_> {
    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).copied()
    }

    /// A `{{field}}` placeholder starting here: its length in characters.
    fn placeholder_len(&self) -> Option<usize> {
        if self.peek(0) != Some('{') || self.peek(1) != Some('{') {
            return None;
        }
        let mut k = 2;
        loop {
            match self.peek(k)? {
                '}' if self.peek(k + 1) == Some('}') => return Some(k + 2),
                '{' | '}' | '|' => return None,
                _ => k += 1,
            }
        }
    }

    /// Parses until the end (`depth` 0) or the `|`/`}` that ends this alternative. At depth
    /// 0 returns at the end of the source; inside a group `end` learns what ended it.
    fn sequence(
        &mut self,
        depth: usize,
        mut end: Option<&mut Option<End>>,
    ) -> Result<Vec<Node>, SpintaxError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        let mut text_at = self.pos + 1;
        let flush = |nodes: &mut Vec<Node>, text: &mut String, at: usize| {
            if !text.is_empty() {
                nodes.push(Node::Text { text: std::mem::take(text), at });
            }
        };
        while let Some(c) = self.peek(0) {
            if text.is_empty() {
                text_at = self.pos + 1;
            }
            match c {
                '\\' => match self.peek(1) {
                    Some(e @ ('{' | '}' | '|' | '\\')) => {
                        text.push(e);
                        self.pos += 2;
                    }
                    _ => {
                        text.push('\\');
                        self.pos += 1;
                    }
                },
                '{' => {
                    if let Some(len) = self.placeholder_len() {
                        text.extend(&self.chars[self.pos..self.pos + len]);
                        self.pos += len;
                        continue;
                    }
                    let open_at = self.pos + 1;
                    if depth + 1 > MAX_DEPTH {
                        return Err(SpintaxError {
                            at: open_at,
                            message: format!("groups nest deeper than {MAX_DEPTH}"),
                        });
                    }
                    self.groups += 1;
                    if self.groups > MAX_GROUPS {
                        return Err(SpintaxError {
                            at: open_at,
                            message: format!("more than {MAX_GROUPS} groups"),
                        });
                    }
                    self.pos += 1;
                    let mut alts = Vec::new();
                    loop {
                        let mut ended = None;
                        let alt = self.sequence(depth + 1, Some(&mut ended))?;
                        alts.push(alt);
                        match ended {
                            Some(End::Bar) => continue,
                            Some(End::Close) => break,
                            None => {
                                return Err(SpintaxError {
                                    at: open_at,
                                    message: "this `{` is never closed by a `}`".into(),
                                })
                            }
                        }
                    }
                    if alts.len() > 1 {
                        flush(&mut nodes, &mut text, text_at);
                        nodes.push(Node::Choice(alts));
                    } else {
                        // No choice: the braces stay as written, around what they hold.
                        flush(&mut nodes, &mut text, text_at);
                        nodes.push(Node::Text { text: "{".into(), at: open_at });
                        nodes.extend(alts.pop().unwrap_or_default());
                        nodes.push(Node::Text { text: "}".into(), at: self.pos });
                    }
                }
                '|' if depth > 0 => {
                    self.pos += 1;
                    if let Some(e) = end.as_deref_mut() {
                        *e = Some(End::Bar);
                    }
                    flush(&mut nodes, &mut text, text_at);
                    return Ok(nodes);
                }
                '}' if depth > 0 => {
                    self.pos += 1;
                    if let Some(e) = end.as_deref_mut() {
                        *e = Some(End::Close);
                    }
                    flush(&mut nodes, &mut text, text_at);
                    return Ok(nodes);
                }
                '}' => {
                    return Err(SpintaxError {
                        at: self.pos + 1,
                        message: "this `}` closes no `{` (write `\\}` for a literal one)".into(),
                    })
                }
                c => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut nodes, &mut text, text_at);
        Ok(merge(nodes))
    }
}

/// Joins neighbouring texts (the braces of a group without choices and what they hold), so
/// that a placeholder written across them reads as one piece.
fn merge(nodes: Vec<Node>) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::with_capacity(nodes.len());
    for n in nodes {
        match (out.last_mut(), n) {
            (Some(Node::Text { text, .. }), Node::Text { text: more, .. }) => text.push_str(&more),
            (_, Node::Choice(alts)) => {
                out.push(Node::Choice(alts.into_iter().map(merge).collect()))
            }
            (_, n) => out.push(n),
        }
    }
    out
}

#[cfg(test)]
mod tests;
