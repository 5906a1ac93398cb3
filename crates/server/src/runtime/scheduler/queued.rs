//! A queued message as the dispatcher sees it: what places it, its contact (the recipient
//! unless a group) and that contact's history in the pool, read by `rule_inputs`.

use bzapper_core::sending::QueuedMessage;
use bzapper_store::{ContactHistory, QueuedRef};

/// The dispatcher's contact key for a message: its recipient, unless it is a group (the
/// per-contact rules and stickiness are about people).
pub(super) fn contact_key(r: &QueuedRef) -> Option<String> {
    (!r.to.ends_with("@g.us")).then(|| r.to.clone())
}

/// The dispatcher's view of a queued message; `hold_for` keeps a message that is not
/// client-forced with one number (a message in doubt after a crash).
pub(super) fn queued_message(
    r: &QueuedRef,
    hold_for: Option<String>,
    history: Option<ContactHistory>,
) -> QueuedMessage {
    let history = history.unwrap_or_default();
    QueuedMessage {
        id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        pool: r.pool.clone(),
        forced_instance: if r.forced { r.instance_id.clone() } else { hold_for },
        text_chars: r.text_chars as usize,
        contact: contact_key(r),
        sticky_to: history.sticky_to,
        known_to: history.known_to,
        // Pages read only due messages, and a scheduled one is admitted when due: the
        // dispatcher's own `not_before` is not needed on top.
        not_before_ms: None,
        expires_at_ms: r.expires_at_ms,
    }
}
