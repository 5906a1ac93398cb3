//! Why the number that sends a message was chosen, as the message record keeps it
//! (`chosen_by`).

/// Why the number that sends a message was chosen, stored on the message (`chosen_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenBy {
    /// The contact's conversation is with this number (sticky sender).
    Sticky,
    /// The pool's rotation picked it.
    Rotation,
    /// The client named it (`instance_id`), or the message must go out from it.
    Forced,
    /// It has the recipient's country calling code.
    Geo,
}

impl ChosenBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ChosenBy::Sticky => "sticky",
            ChosenBy::Rotation => "rotation",
            ChosenBy::Forced => "forced",
            ChosenBy::Geo => "geo",
        }
    }
}
