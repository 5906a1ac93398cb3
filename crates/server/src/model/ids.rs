//! Opaque random ids and secrets: a short type prefix and enough randomness that ids cannot
//! be guessed across tenants.

use base64::Engine;
use rand::RngCore;

/// Lowercase base32 (RFC 4648 letters, lowercased): ids stay readable and URL-safe.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
/// The same 32 characters in their byte order, for the time-ordered part of an ordered id:
/// with it, ids sort as they were made (with [`ALPHABET`], `z` would sort after `2`).
const SORTED_ALPHABET: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";

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

/// `<prefix>_<12 base32 chars of milliseconds><4 of a sequence><9 random base32 chars>`: like
/// [`new_id`] but ordered by creation time, so that rows keyed by it are appended to the end of
/// their B-tree instead of landing on a random page (fewer pages written per insert). Ids made
/// by this process within one millisecond follow each other too (the sequence): the send queue
/// is read in `(created_at, id)` order, so two messages accepted one after the other in the same
/// millisecond keep their order.
pub fn new_ordered_id(prefix: &str) -> String {
    let (ms, seq) = next_tick();
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    out.push('_');
    for i in (0..12).rev() {
        out.push(SORTED_ALPHABET[((ms >> (i * 5)) & 31) as usize] as char);
    }
    for i in (0..4).rev() {
        out.push(SORTED_ALPHABET[((seq >> (i * 5)) & 31) as usize] as char);
    }
    let mut bytes = [0u8; 9];
    rand::thread_rng().fill_bytes(&mut bytes);
    out.extend(bytes.iter().map(|b| ALPHABET[(*b & 31) as usize] as char));
    out
}

/// This process's next (millisecond, sequence within it): never the same twice and always
/// increasing, even if the wall clock steps back (it then keeps counting in the last
/// millisecond it saw, moving on to the next when 2^20 ids were made in one).
fn next_tick() -> (u64, u64) {
    static LAST: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    *last = match *last {
        (ms, _) if now > ms => (now, 0),
        (ms, seq) if seq + 1 < 1 << 20 => (ms, seq + 1),
        (ms, _) => (ms + 1, 0),
    };
    *last
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
    fn ordered_ids_made_one_after_the_other_sort_in_that_order() {
        let ids: Vec<String> = (0..10_000).map(|_| new_ordered_id("msg")).collect();
        // (`assert!`, not `assert_eq!`: the lists are long.)
        let in_order = ids.windows(2).all(|w| w[0] < w[1]);
        assert!(in_order, "many share a millisecond: the sequence orders them");
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
