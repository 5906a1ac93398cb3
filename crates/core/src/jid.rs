//! Checked WhatsApp addresses: phone numbers in E.164 and JIDs (`user[:device]@server`), with
//! the servers as an enum the way whatsmeow's `types/jid.go` has them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::validate::shown;

/// The longest JID accepted (a group's `<creator>-<timestamp>@g.us` is about 40); longer
/// input is refused before it is looked at.
pub const MAX_JID_CHARS: usize = 128;
/// The longest phone-number input accepted (15 digits with generous punctuation).
pub const MAX_PHONE_INPUT_CHARS: usize = 40;

/// Each carries the input as [`shown`] (at most 64 characters): an error never echoes an
/// unbounded input back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    #[error("`{0}` is not a phone number (E.164, 8 to 15 digits) or a WhatsApp JID")]
    Invalid(String),
    #[error("`{0}` uses the unsupported WhatsApp server `{1}`")]
    UnsupportedServer(String, String),
}

/// A phone number in E.164 form, stored as its digits (no `+`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    /// Accepts the common notations: `+55 (11) 99999-9999`, `5511999999999`,
    /// `0055 11 99999 9999`. Spaces, dashes, dots and parentheses are ignored.
    pub fn parse(input: &str) -> Result<Self, JidError> {
        let bad = || JidError::Invalid(shown(input));
        if input.chars().nth(MAX_PHONE_INPUT_CHARS).is_some() {
            return Err(bad());
        }
        let trimmed = input.trim();
        let rest = if let Some(r) = trimmed.strip_prefix('+') {
            r
        } else if let Some(r) = trimmed.strip_prefix("00") {
            r
        } else {
            trimmed
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(bad()),
            }
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(bad());
        }
        Ok(Phone(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    /// `+<digits>`, the form docs/api.md shows.
    pub fn e164(&self) -> String {
        format!("+{}", self.0)
    }

    /// The phone-number JID of this number.
    pub fn jid(&self) -> Jid {
        Jid { user: self.0.clone(), device: None, server: Server::User }
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

/// The WhatsApp server part of a JID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    /// `s.whatsapp.net`: a phone number.
    User,
    /// `lid`: a hidden identifier that stands for a phone number.
    Lid,
    /// `g.us`: a group.
    Group,
}

impl Server {
    pub fn as_str(self) -> &'static str {
        match self {
            Server::User => "s.whatsapp.net",
            Server::Lid => "lid",
            Server::Group => "g.us",
        }
    }
}

/// A WhatsApp address. The device part is kept when given (`user:device@server`) and dropped
/// by [`Jid::to_non_device`], which is what chats and mentions compare on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    user: String,
    device: Option<u16>,
    server: Server,
}

impl Jid {
    pub fn parse(input: &str) -> Result<Self, JidError> {
        let bad = || JidError::Invalid(shown(input));
        if input.chars().nth(MAX_JID_CHARS).is_some() {
            return Err(bad());
        }
        let s = input.trim();
        let (left, server) = s.split_once('@').ok_or_else(bad)?;
        let server = match server {
            "s.whatsapp.net" | "c.us" => Server::User,
            "lid" => Server::Lid,
            "g.us" => Server::Group,
            other => return Err(JidError::UnsupportedServer(shown(input), shown(other))),
        };
        let (user, device) = match left.split_once(':') {
            Some((u, d)) => (u, Some(d.parse::<u16>().map_err(|_| bad())?)),
            None => (left, None),
        };
        let valid_user = match server {
            // Old group ids are `<creator>-<timestamp>`.
            Server::Group => {
                !user.is_empty()
                    && user.chars().all(|c| c.is_ascii_digit() || c == '-')
                    && !user.starts_with('-')
                    && !user.ends_with('-')
            }
            _ => !user.is_empty() && user.len() <= 20 && user.chars().all(|c| c.is_ascii_digit()),
        };
        if !valid_user || (server == Server::Group && device.is_some()) {
            return Err(bad());
        }
        Ok(Jid { user: user.to_string(), device, server })
    }

    /// A message recipient: a JID, or a phone number in any common notation.
    pub fn parse_recipient(input: &str) -> Result<Self, JidError> {
        if input.contains('@') {
            Ok(Self::parse(input)?.to_non_device())
        } else {
            Ok(Phone::parse(input)?.jid())
        }
    }

    pub fn lid(user: impl Into<String>) -> Self {
        Jid { user: user.into(), device: None, server: Server::Lid }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn server(&self) -> Server {
        self.server
    }

    pub fn device(&self) -> Option<u16> {
        self.device
    }

    pub fn is_group(&self) -> bool {
        self.server == Server::Group
    }

    pub fn is_lid(&self) -> bool {
        self.server == Server::Lid
    }

    pub fn to_non_device(&self) -> Self {
        Jid { user: self.user.clone(), device: None, server: self.server }
    }

    /// The phone number of a phone-number JID.
    pub fn phone(&self) -> Option<Phone> {
        (self.server == Server::User).then(|| Phone(self.user.clone()))
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.device {
            Some(d) => write!(f, "{}:{}@{}", self.user, d, self.server.as_str()),
            None => write!(f, "{}@{}", self.user, self.server.as_str()),
        }
    }
}

impl FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Phone::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Jid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Jid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Jid::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_refused_and_errors_echo_at_most_a_short_prefix() {
        let group = format!("{}@g.us", "1".repeat(MAX_JID_CHARS - 5));
        assert!(Jid::parse(&group).is_ok());
        let long = format!("{}@g.us", "1".repeat(100_000));
        let err = Jid::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 200 && err.contains('…'), "{err}");
        let err = Jid::parse(&format!("1@{}", "x".repeat(10_000))).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
        let err = Phone::parse(&"9".repeat(10_000)).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
        assert!(Phone::parse(&format!("+55 11 99999 9999{}", " ".repeat(40))).is_err());
    }

    #[test]
    fn phones_in_common_notations_normalise_to_e164() {
        for input in [
            "+5511999999999",
            "5511999999999",
            "+55 (11) 99999-9999",
            "0055 11 99999 9999",
            " +55.11.99999.9999 ",
        ] {
            let p = Phone::parse(input).unwrap();
            assert_eq!(p.e164(), "+5511999999999", "{input}");
            assert_eq!(p.jid().to_string(), "5511999999999@s.whatsapp.net");
        }
    }

    #[test]
    fn bad_phones_are_refused() {
        for input in ["", "+", "12345", "+1234567890123456", "abc", "+55 11 9999x", "011999"] {
            assert!(Phone::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn jids_parse_and_print() {
        for (input, out) in [
            ("5511999999999@s.whatsapp.net", "5511999999999@s.whatsapp.net"),
            ("5511999999999:12@s.whatsapp.net", "5511999999999:12@s.whatsapp.net"),
            ("5511999999999@c.us", "5511999999999@s.whatsapp.net"),
            ("123456789012345@lid", "123456789012345@lid"),
            ("120363012345678901@g.us", "120363012345678901@g.us"),
            ("5511999999999-1600000000@g.us", "5511999999999-1600000000@g.us"),
        ] {
            assert_eq!(Jid::parse(input).unwrap().to_string(), out);
        }
    }

    #[test]
    fn bad_jids_are_refused() {
        for input in [
            "@s.whatsapp.net",
            "abc@s.whatsapp.net",
            "123@example.com",
            "123:x@s.whatsapp.net",
            "-12@g.us",
            "12:3@g.us",
            "123@",
        ] {
            assert!(Jid::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn recipients_drop_the_device_and_accept_phones() {
        let j = Jid::parse_recipient("5511999999999:3@s.whatsapp.net").unwrap();
        assert_eq!(j.to_string(), "5511999999999@s.whatsapp.net");
        assert_eq!(j.phone().unwrap().e164(), "+5511999999999");
        let j = Jid::parse_recipient("+55 11 99999-9999").unwrap();
        assert_eq!(j.server(), Server::User);
        assert!(Jid::parse_recipient("hello").is_err());
        assert!(Jid::parse_recipient("1@lid").unwrap().is_lid());
    }
}
