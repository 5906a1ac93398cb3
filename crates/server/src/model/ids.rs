//! Opaque random ids and secrets: a short type prefix and enough randomness that ids cannot
//! be guessed across tenants.

use base64::Engine;
use rand::RngCore;

/// Lowercase base32 (RFC 4648 letters, lowercased): ids stay readable and URL-safe.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `<prefix>_<20 lowercase base32 chars>` (100 bits).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    let tail: String = bytes.iter().map(|b| ALPHABET[(*b & 31) as usize] as char).collect();
    format!("{prefix}_{tail}")
}

/// 32 random bytes as unpadded base64url (43 chars).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `<prefix>_<12 base32 chars of milliseconds><13 random base32 chars>`: like [`new_id`] but
/// ordered by creation time, so that rows keyed by it are appended to the end of their
/// B-tree instead of landing on a random page (fewer pages written per insert).
pub fn new_ordered_id(prefix: &str) -> String {
    let ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    out.push('_');
    for i in (0..12).rev() {
        out.push(ALPHABET[((ms >> (i * 5)) & 31) as usize] as char);
    }
    let mut bytes = [0u8; 13];
    rand::thread_rng().fill_bytes(&mut bytes);
    out.extend(bytes.iter().map(|b| ALPHABET[(*b & 31) as usize] as char));
    out
}

/// A WhatsApp-style message id (`3EB0` + 20 upper-case hex digits: 12 of milliseconds, 8
/// random), fixed before a send. Time-ordered for the same reason as [`new_ordered_id`].
pub fn new_message_id() -> String {
    let ms = chrono::Utc::now().timestamp_millis().max(0) as u64 & 0xFFFF_FFFF_FFFF;
    let random = rand::thread_rng().next_u32();
    format!("3EB0{ms:012X}{random:08X}")
}

/// Declares a typed id: a `String` underneath, serialised as one (so the JSON is unchanged),
/// that cannot be passed where another kind of id is expected.
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

typed_id!(
    /// A tenant (`ten_…`).
    TenantId
);
typed_id!(
    /// An instance, one WhatsApp number (`ins_…`).
    InstanceId
);
typed_id!(
    /// An accepted outbound message (`msg_…`).
    MessageId
);
typed_id!(
    /// A campaign (`cmp_…`).
    CampaignId
);
typed_id!(
    /// A webhook (`whk_…`).
    WebhookId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_and_differ() {
        let a = new_id("ins");
        assert!(a.starts_with("ins_") && a.len() == 24);
        assert_ne!(a, new_id("ins"));
        assert_eq!(new_secret().len(), 43);
        assert_eq!(new_message_id().len(), 24);
        let (a, b) = (new_ordered_id("msg"), new_ordered_id("msg"));
        assert_eq!(a.len(), 4 + 25);
        assert_ne!(a, b);
    }

    #[test]
    fn a_typed_id_serialises_as_its_string() {
        let id = TenantId::new("ten_abc");
        assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!("ten_abc"));
        let back: TenantId = serde_json::from_value(serde_json::json!("ten_abc")).unwrap();
        assert_eq!(back, id);
        assert_eq!(&*id, "ten_abc");
    }
}
