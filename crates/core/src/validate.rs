//! Checks on names and numbers clients send, each with the sentence the API answers with.

/// The longest name of a tenant, instance or pool.
pub const MAX_NAME_CHARS: usize = 64;
/// The longest warming period a client may set.
pub const MAX_WARMING_DAYS: i64 = 60;

/// The longest reply a number sends to a caller after rejecting the call.
pub const MAX_CALL_REPLY_CHARS: usize = 4096;

/// The most characters of a client's input an error message repeats.
pub const MAX_SHOWN_CHARS: usize = 64;

/// A client's input as an error message may repeat it: at most [`MAX_SHOWN_CHARS`]
/// characters (then `…`), control characters replaced, so that an error never echoes an
/// unbounded (or log-forging) input back.
pub fn shown(input: &str) -> String {
    let mut out: String = input
        .chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if input.chars().nth(MAX_SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// A display name: 1 to 64 characters after trimming, no control characters.
pub fn name(field: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(format!("`{field}` must be at most {MAX_NAME_CHARS} characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(format!("`{field}` must not contain control characters"));
    }
    Ok(v.to_string())
}

/// A pool name: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub fn pool_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_CHARS
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(value.to_string())
    } else {
        Err("`pool` must be 1 to 64 characters of a-z, 0-9, '-' and '_'".into())
    }
}

pub fn warming_days(value: i64) -> Result<u32, String> {
    if (0..=MAX_WARMING_DAYS).contains(&value) {
        Ok(value as u32)
    } else {
        Err(format!("`warming_days` must be between 0 and {MAX_WARMING_DAYS}"))
    }
}

/// The reply to a rejected call: not blank, at most [`MAX_CALL_REPLY_CHARS`] characters. Kept
/// as written (a message's line breaks and spacing are the operator's).
pub fn call_reply(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("`reject_call_message` must not be blank (null sends no reply)".into());
    }
    if value.chars().count() > MAX_CALL_REPLY_CHARS {
        return Err(format!(
            "`reject_call_message` must be at most {MAX_CALL_REPLY_CHARS} characters"
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_replies() {
        assert_eq!(
            call_reply(" Não atendemos ligações.\nEscreva! ").unwrap(),
            " Não atendemos ligações.\nEscreva! "
        );
        assert!(call_reply(" \n ").is_err());
        assert!(call_reply(&"é".repeat(MAX_CALL_REPLY_CHARS)).is_ok());
        assert!(call_reply(&"é".repeat(MAX_CALL_REPLY_CHARS + 1)).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(name("name", "  sales-1 ").unwrap(), "sales-1");
        assert!(name("name", "   ").is_err());
        assert!(name("name", &"x".repeat(65)).is_err());
        assert!(name("name", &"é".repeat(64)).is_ok());
        assert!(name("name", "a\nb").is_err());
    }

    #[test]
    fn shown_input_is_short_and_has_no_control_characters() {
        assert_eq!(shown("abc"), "abc");
        assert_eq!(shown(&"x".repeat(64)), "x".repeat(64));
        let long = shown(&"é".repeat(10_000));
        assert_eq!(long.chars().count(), 65);
        assert!(long.ends_with('…'));
        assert_eq!(shown("a\nb\u{1b}"), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn pools_and_warming_days() {
        assert!(pool_name("default").is_ok());
        assert!(pool_name("Sales").is_err());
        assert!(pool_name("").is_err());
        assert_eq!(warming_days(5), Ok(5));
        assert!(warming_days(-1).is_err());
        assert!(warming_days(61).is_err());
    }
}
