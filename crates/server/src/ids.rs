//! Opaque random ids and secrets: a short type prefix and enough randomness that ids cannot
//! be guessed across tenants.

use base64::Engine;
use rand::RngCore;

/// `<prefix>_<20 lowercase base32 chars>` (100 bits).
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
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

/// A WhatsApp-style message id (`3EB0` + 16 upper-case hex digits), fixed before a send.
pub fn new_message_id() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("3EB0{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_and_differ() {
        let a = new_id("ins");
        assert!(a.starts_with("ins_") && a.len() == 24);
        assert_ne!(a, new_id("ins"));
        assert_eq!(new_secret().len(), 43);
        assert_eq!(new_message_id().len(), 20);
    }
}
