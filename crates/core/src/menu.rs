//! Numbered text menus: buttons and lists are unreliable on WhatsApp (worse in groups), so a
//! menu always goes out as text ("1. Pay\n2. Cancel"), and a later reply "2" is matched back
//! to its option.

use serde::{Deserialize, Serialize};

/// The most options a menu may have (WhatsApp's own lists stop at 10).
pub const MAX_OPTIONS: usize = 10;
/// The longest option title.
pub const MAX_TITLE_CHARS: usize = 72;
/// The longest option id (ids come back in `menu_reply.option_id`).
pub const MAX_OPTION_ID_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Menu {
    /// A line shown above the options (optional).
    pub text: Option<String>,
    pub options: Vec<MenuOption>,
}

impl Menu {
    /// Checks the menu: 1 to 10 options, non-empty unique ids of at most 256 characters,
    /// titles of 1 to 72 characters.
    pub fn check(&self) -> Result<(), String> {
        if self.options.is_empty() || self.options.len() > MAX_OPTIONS {
            return Err(format!("a menu needs 1 to {MAX_OPTIONS} options"));
        }
        let mut seen = std::collections::HashSet::new();
        for o in &self.options {
            if o.id.chars().nth(MAX_OPTION_ID_CHARS).is_some() {
                return Err(format!(
                    "menu option ids must be at most {MAX_OPTION_ID_CHARS} characters"
                ));
            }
            if o.id.trim().is_empty() || !seen.insert(o.id.as_str()) {
                return Err("menu option ids must be non-empty and unique".into());
            }
            let n = o.title.trim().chars().count();
            if n == 0 || n > MAX_TITLE_CHARS {
                return Err(format!(
                    "menu option titles must be 1 to {MAX_TITLE_CHARS} characters"
                ));
            }
        }
        Ok(())
    }

    /// The menu as text: its line, then one numbered line per option.
    pub fn render(&self) -> String {
        let mut lines = Vec::with_capacity(self.options.len() + 1);
        if let Some(t) = self.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            lines.push(t.to_string());
        }
        for (i, o) in self.options.iter().enumerate() {
            lines.push(format!("{}. {}", i + 1, o.title.trim()));
        }
        lines.join("\n")
    }

    /// The option a reply picks: "2", "2.", " 2 ", "2)" pick the second option; anything
    /// else (including a number out of range) picks none. Returns (1-based number, option).
    pub fn match_reply(&self, reply: &str) -> Option<(usize, &MenuOption)> {
        let r = reply.trim();
        let r = r.strip_suffix(['.', ')']).unwrap_or(r).trim();
        if r.is_empty() || r.len() > 2 || !r.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = r.parse().ok()?;
        let option = self.options.get(n.checked_sub(1)?)?;
        Some((n, option))
    }
}

/// The text a message sends: its own text, then the rendered menu, separated by a blank line.
pub fn message_body(text: Option<&str>, menu: Option<&Menu>) -> String {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    match (text, menu) {
        (Some(t), Some(m)) => format!("{t}\n\n{}", m.render()),
        (Some(t), None) => t.to_string(),
        (None, Some(m)) => m.render(),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn menu() -> Menu {
        Menu {
            text: Some("Choose:".into()),
            options: vec![
                MenuOption { id: "a".into(), title: "Pay".into() },
                MenuOption { id: "b".into(), title: "Cancel".into() },
            ],
        }
    }

    #[test]
    fn renders_as_numbered_text() {
        assert_eq!(menu().render(), "Choose:\n1. Pay\n2. Cancel");
        assert_eq!(message_body(Some("Hi"), Some(&menu())), "Hi\n\nChoose:\n1. Pay\n2. Cancel");
        assert_eq!(message_body(Some(" Hi "), None), "Hi");
    }

    #[test]
    fn replies_match_by_number_only() {
        let m = menu();
        for r in ["2", "2.", " 2 ", "2)"] {
            assert_eq!(m.match_reply(r).map(|(n, o)| (n, o.id.as_str())), Some((2, "b")), "{r}");
        }
        for r in ["0", "3", "two", "2 please", "", "12", "-1"] {
            assert!(m.match_reply(r).is_none(), "{r}");
        }
    }

    #[test]
    fn bad_menus_are_refused() {
        let mut m = menu();
        m.options[1].id = "a".into();
        assert!(m.check().is_err());
        let mut m = menu();
        m.options.clear();
        assert!(m.check().is_err());
        let mut m = menu();
        m.options[0].title = "x".repeat(73);
        assert!(m.check().is_err());
        let mut m = menu();
        m.options[0].id = "i".repeat(MAX_OPTION_ID_CHARS);
        assert!(m.check().is_ok());
        m.options[0].id = "i".repeat(100_000);
        let err = m.check().unwrap_err();
        assert!(err.contains("at most 256") && err.len() < 100, "{err}");
        assert!(menu().check().is_ok());
    }
}
