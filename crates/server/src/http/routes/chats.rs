//! Conversations: `GET /v1/chats` (the chats of the tenant's numbers, newest first) and
//! `GET /v1/chats/{jid}/messages` (one chat's messages, received and sent together, newest
//! first). Both are cursor-paged; a cursor is opaque to clients (base64url of the position
//! the page ended at).

use axum::extract::State;
use axum::Json as JsonOut;
use base64::Engine;
use bzapper_core::validate::shown;
use bzapper_core::Jid;
use bzapper_driver::InboundMedia;
use bzapper_store::{ChatEntry, ChatEntryPosition, ChatPosition, InboundRecord, MessageRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::chats::ChatSummary;
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Path, Query};
use crate::http::state::AppState;
use crate::model::content::StoredContent;
use crate::model::ids::InstanceId;

/// Page sizes.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChatParams {
    /// Only this number's chats (messages); every number of the tenant when absent.
    pub instance_id: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One chat: a number's conversation with a contact or a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatView {
    /// The number the chat is on.
    pub instance_id: String,
    /// The contact's phone JID (also when the contact writes by LID, once the LID's phone is
    /// known), the group's JID, or the contact's LID while its phone is unknown. What
    /// `GET /v1/chats/{jid}/messages` takes.
    pub jid: String,
    /// `direct` or `group`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The contact's number, E.164 with `+`, when known (direct chats).
    pub phone: Option<String>,
    /// The contact's LID (`<n>@lid`), when known (direct chats).
    pub lid: Option<String>,
    /// The name the contact gave itself, from its latest message that carried one.
    pub push_name: Option<String>,
    /// A group's subject, when its number is connected to tell it; `null` for direct chats.
    pub subject: Option<String>,
    /// Received messages (reactions aside) after the last one marked read
    /// (`POST /v1/instances/{id}/messages/{message_id}/read`) or the number's last message to
    /// the chat.
    pub unread_count: u64,
    /// When the newest message either way was received or accepted.
    pub last_message_at: DateTime<Utc>,
    /// The newest message either way, as in `GET /v1/chats/{jid}/messages`.
    pub last_message: Option<ChatMessageView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatList {
    /// Newest first.
    pub items: Vec<ChatView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Who wrote a received message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatSender {
    /// The phone JID when known, else as the network addressed the sender (a LID).
    pub jid: String,
    /// E.164 with `+`, when known.
    pub phone: Option<String>,
    /// The sender's LID, when known.
    pub lid: Option<String>,
    /// The name the sender gave itself, when its message carried one.
    pub push_name: Option<String>,
}

/// A message's media file.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMedia {
    /// `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: String,
    /// Where the file is read: received, `/v1/instances/{id}/media/{message_id}` (a path on
    /// this gateway); sent, `/v1/media/{media_id}/content` for an upload or the URL it was
    /// sent from.
    pub url: Option<String>,
    /// The upload it was sent from (sent messages).
    pub media_id: Option<String>,
    /// The MIME type, when known (received messages).
    pub mime: Option<String>,
    /// The file's name, when the message gave one (documents).
    pub file_name: Option<String>,
}

/// A reaction: to which message, with what.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatReaction {
    /// The `whatsapp_id` of the message reacted to.
    pub whatsapp_id: String,
    /// Empty when the reaction was removed.
    pub emoji: String,
}

/// One message of a chat, received or sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessageView {
    /// Sent: the gateway's message id (as `GET /v1/messages/{id}` takes). Received: the
    /// WhatsApp id (as `message.received`'s `message_id`).
    pub id: String,
    /// `in` (received) or `out` (sent).
    pub direction: &'static str,
    /// The number that received or sent it; `null` for a sent message still waiting in its
    /// pool's queue.
    pub instance_id: Option<String>,
    /// The WhatsApp message id (what `reply_to` and `reaction.whatsapp_id` name).
    pub whatsapp_id: String,
    /// Received: when it was sent to the number. Sent: when it was accepted.
    pub at: DateTime<Utc>,
    /// `text`, `image`, `video`, `audio`, `document`, `sticker`, `location`, `contact` or
    /// `reaction`.
    pub kind: String,
    /// The text or caption (a reaction's is empty).
    pub text: String,
    /// Who wrote it (received messages; `null` for sent ones).
    pub sender: Option<ChatSender>,
    /// Sent messages: `queued`, `sending`, `sent`, `delivered`, `read`, `failed` or
    /// `expired`; `null` for received ones.
    pub status: Option<String>,
    /// Why a sent message failed.
    pub error: Option<String>,
    /// The media file, when it is one.
    pub media: Option<ChatMedia>,
    /// The `whatsapp_id` of the message this one quotes.
    pub reply_to: Option<String>,
    /// When it is a reaction: to which message, with what.
    pub reaction: Option<ChatReaction>,
    /// Sent messages: the content as `GET /v1/messages/{id}` shows it (media source,
    /// location, contact card, reaction, quote).
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatMessageList {
    /// Newest first.
    pub items: Vec<ChatMessageView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn phone_of(jid: &str) -> Option<String> {
    Jid::parse(jid)
        .ok()
        .filter(|j| !j.is_lid() && !j.is_group())
        .and_then(|j| j.phone())
        .map(|p| p.e164())
}

/// Characters escaped in a URL path segment (a WhatsApp id is usually plain hex).
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

fn received_view(r: &InboundRecord) -> ChatMessageView {
    let media =
        r.media.as_ref().and_then(|v| serde_json::from_value::<InboundMedia>(v.clone()).ok());
    let media = media.map(|m| ChatMedia {
        kind: m.media_kind.as_str().to_string(),
        url: Some(format!(
            "/v1/instances/{}/media/{}",
            r.instance_id,
            percent_encoding::utf8_percent_encode(&r.wa_id, PATH_SEGMENT)
        )),
        media_id: None,
        mime: Some(m.mime),
        file_name: m.file_name,
    });
    let is_reaction = r.kind == "reaction";
    ChatMessageView {
        id: r.wa_id.clone(),
        direction: "in",
        instance_id: Some(r.instance_id.clone()),
        whatsapp_id: r.wa_id.clone(),
        at: r.received_at,
        kind: r.kind.clone(),
        text: if is_reaction { String::new() } else { r.text.clone() },
        sender: Some(ChatSender {
            jid: r.sender_jid.clone(),
            phone: phone_of(&r.sender_jid),
            lid: r.sender_lid.clone(),
            push_name: r.push_name.clone(),
        }),
        status: None,
        error: None,
        media,
        reply_to: if is_reaction { None } else { r.reply_to.clone() },
        reaction: match (is_reaction, &r.reply_to) {
            (true, Some(target)) => {
                Some(ChatReaction { whatsapp_id: target.clone(), emoji: r.text.clone() })
            }
            _ => None,
        },
        content: None,
    }
}

fn sent_view(m: &MessageRecord) -> ChatMessageView {
    let content = StoredContent::from_column(m.content.as_ref()).unwrap_or_default();
    let media = content.media.as_ref().map(|s| ChatMedia {
        kind: s.kind.as_str().to_string(),
        url: match (&s.media_id, &s.url) {
            (Some(id), _) => Some(format!("/v1/media/{id}/content")),
            (None, url) => url.clone(),
        },
        media_id: s.media_id.clone(),
        mime: None,
        file_name: s.file_name.clone(),
    });
    ChatMessageView {
        id: m.id.clone(),
        direction: "out",
        instance_id: m.instance_id.clone(),
        whatsapp_id: m.wa_id.clone(),
        at: m.created_at,
        kind: content.kind().to_string(),
        text: m.body.clone(),
        sender: None,
        status: Some(m.status.as_str().to_string()),
        error: m.error.clone(),
        media,
        reply_to: content.reply_to.as_ref().map(|r| r.id.clone()),
        reaction: content
            .reaction
            .as_ref()
            .map(|r| ChatReaction { whatsapp_id: r.target.id.clone(), emoji: r.emoji.clone() }),
        content: m.content.clone(),
    }
}

fn entry_view(e: &ChatEntry) -> ChatMessageView {
    match e {
        ChatEntry::Received(r) => received_view(r),
        ChatEntry::Sent(m) => sent_view(m),
    }
}

fn chat_view(s: ChatSummary) -> ChatView {
    let c = s.chat;
    let group = c.jid.ends_with("@g.us");
    ChatView {
        kind: if group { "group" } else { "direct" },
        phone: phone_of(&c.jid),
        lid: if group { None } else { c.lid.clone() },
        push_name: c.push_name.clone(),
        subject: s.subject,
        unread_count: c.unread,
        last_message_at: c.last_at,
        last_message: s.last_message.as_ref().map(entry_view),
        instance_id: c.instance_id,
        jid: c.jid,
    }
}

/// Cursors: base64url of a small JSON array naming the position.
fn encode(v: serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode(c: &str) -> Option<Vec<serde_json::Value>> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    serde_json::from_slice(&raw).ok()
}

fn millis(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v.as_i64()?)
}

fn chat_cursor(p: &ChatPosition) -> String {
    encode(serde_json::json!([p.last_at.timestamp_millis(), p.instance_id, p.jid]))
}

fn parse_chat_cursor(c: &str) -> Option<ChatPosition> {
    match decode(c)?.as_slice() {
        [at, i, j] => Some(ChatPosition {
            last_at: millis(at)?,
            instance_id: i.as_str()?.to_string(),
            jid: j.as_str()?.to_string(),
        }),
        _ => None,
    }
}

fn entry_cursor(p: &ChatEntryPosition) -> String {
    encode(match p {
        ChatEntryPosition::Sent { at, id } => serde_json::json!(["out", at.timestamp_millis(), id]),
        ChatEntryPosition::Received { at, instance_id, wa_id } => {
            serde_json::json!(["in", at.timestamp_millis(), instance_id, wa_id])
        }
    })
}

fn parse_entry_cursor(c: &str) -> Option<ChatEntryPosition> {
    match decode(c)?.as_slice() {
        [d, at, id] if d == "out" => {
            Some(ChatEntryPosition::Sent { at: millis(at)?, id: id.as_str()?.to_string() })
        }
        [d, at, i, w] if d == "in" => Some(ChatEntryPosition::Received {
            at: millis(at)?,
            instance_id: i.as_str()?.to_string(),
            wa_id: w.as_str()?.to_string(),
        }),
        _ => None,
    }
}

fn bad_cursor() -> ApiError {
    ApiError::invalid("`cursor` is not one this API gave")
}

fn limit(p: &ChatParams) -> ApiResult<u32> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("`limit` must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}

/// The chats of the tenant's numbers, newest first.
///
/// One item per number and chat (a contact or a group), ordered by its newest message, with
/// that message, the count of received messages not yet read, and who the chat is with: the
/// contact's phone, LID and push name, or the group's subject. `instance_id` narrows the list
/// to one number. Paged by `cursor` (the previous page's `next_cursor`).
#[utoipa::path(get, path = "/v1/chats", tag = "chats", security(("bearer" = [])),
    params(ChatParams),
    responses(
        (status = 200, body = ChatList, description = "The chats, newest message first, each with its newest message and unread count"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`instance_id` names no instance of the tenant"),
        (status = 422, body = ErrorBody, description = "a bad `limit` or `cursor`"),
    ))]
pub async fn list(
    tenant: Tenant,
    State(state): State<AppState>,
    Query(p): Query<ChatParams>,
) -> ApiResult<JsonOut<ChatList>> {
    let limit = limit(&p)?;
    let after =
        p.cursor.as_deref().map(|c| parse_chat_cursor(c).ok_or_else(bad_cursor)).transpose()?;
    let instance_id = p.instance_id.map(InstanceId::from);
    let page = state
        .app
        .chats
        .list(&tenant.tenant_id, instance_id.as_ref(), after.as_ref(), limit)
        .await?;
    Ok(JsonOut(ChatList {
        items: page.items.into_iter().map(chat_view).collect(),
        next_cursor: page.next.as_ref().map(chat_cursor),
    }))
}

/// One chat's messages, received and sent together, newest first.
///
/// Received messages (with sender, media link, quoted message and reactions) and sent ones
/// (with their status) of one chat, merged newest first and paged by `cursor`. The chat is
/// named by the contact's phone JID even when the contact wrote by LID; without
/// `instance_id` the messages of every number of the tenant with that contact come together.
#[utoipa::path(get, path = "/v1/chats/{jid}/messages", tag = "chats", security(("bearer" = [])),
    params(
        ("jid" = String, Path, description = "the chat: the contact's phone JID (`<n>@s.whatsapp.net`, also for a contact that writes by LID), its number (`+5511…` or digits), its LID while the phone is unknown, or a group JID (`<id>@g.us`); `@` may be sent as `%40`"),
        ChatParams,
    ),
    responses(
        (status = 200, body = ChatMessageList, description = "The chat's messages, newest first (empty when the tenant has no such chat)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`instance_id` names no instance of the tenant"),
        (status = 422, body = ErrorBody, description = "a bad `jid`, `limit` or `cursor`"),
    ))]
pub async fn messages(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(jid): Path<String>,
    Query(p): Query<ChatParams>,
) -> ApiResult<JsonOut<ChatMessageList>> {
    let limit = limit(&p)?;
    let chat = Jid::parse_recipient(jid.trim())
        .map_err(|e| ApiError::invalid(format!("`{}` is not a chat: {e}", shown(&jid))))?;
    let before =
        p.cursor.as_deref().map(|c| parse_entry_cursor(c).ok_or_else(bad_cursor)).transpose()?;
    let instance_id = p.instance_id.map(InstanceId::from);
    let page = state
        .app
        .chats
        .messages(&tenant.tenant_id, &chat, instance_id.as_ref(), before.as_ref(), limit)
        .await?;
    Ok(JsonOut(ChatMessageList {
        items: page.items.iter().map(entry_view).collect(),
        next_cursor: page.next.as_ref().map(entry_cursor),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let chat = ChatPosition { last_at: at, instance_id: "ins_1".into(), jid: "1@g.us".into() };
        assert_eq!(parse_chat_cursor(&chat_cursor(&chat)), Some(chat));
        let sent = ChatEntryPosition::Sent { at, id: "msg_1".into() };
        assert_eq!(parse_entry_cursor(&entry_cursor(&sent)), Some(sent));
        let got =
            ChatEntryPosition::Received { at, instance_id: "ins_1".into(), wa_id: "3EB0".into() };
        assert_eq!(parse_entry_cursor(&entry_cursor(&got)), Some(got));
        for bad in
            ["bad!", "", &encode(serde_json::json!(["x", 1, "a"])), &encode(serde_json::json!({}))]
        {
            assert_eq!(parse_entry_cursor(bad), None);
            assert_eq!(parse_chat_cursor(bad), None);
        }
    }
}
