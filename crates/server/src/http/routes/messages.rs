//! Sending: `POST /v1/messages` accepts a message into the durable queue (the 202 follows the
//! commit), `GET /v1/messages/{id}` and `GET /v1/messages` read them back.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json as JsonOut;
use base64::Engine;
use bzapper_core::menu::{message_body, Menu, MenuOption};
use bzapper_core::validate::shown;
use bzapper_core::{validate, Jid};
use bzapper_store::{MessageFilter, MessageRecord, MessageStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::messages::{NewMessage, Pending, Receipt};
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{idempotency_key, Json, Path, Query};
use crate::http::routes::delivery_options::DeliveryOptions;
use crate::http::routes::message_content::{
    self, ContactInput, LocationInput, MediaInput, ReactionInput, RichInput,
};
use crate::http::state::AppState;
use crate::model::content::StoredContent;
use crate::model::ids::{new_message_id, new_ordered_id, MessageId};
use crate::model::time::now;

/// The longest text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 16_384;
/// The most mentions in one message.
pub const MAX_MENTIONS: usize = 50;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuOptionInput {
    /// Your id for the option, reported back in `menu_reply.option_id` (unique, at most 256
    /// characters).
    pub id: String,
    /// The option's text (1 to 72 characters).
    pub title: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuInput {
    /// A line above the options.
    pub text: Option<String>,
    /// 1 to 10 options, sent as lines "1. …", "2. …".
    #[schema(min_items = 1, max_items = 10)]
    pub options: Vec<MenuOptionInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// A phone number in any common notation, or a `@s.whatsapp.net`, `@lid` or `@g.us` JID.
    pub to: String,
    /// The text (at most 16,384 characters); the caption of a media message (at most 1,024).
    pub text: Option<String>,
    /// Sent as a numbered text menu.
    pub menu: Option<MenuInput>,
    /// Alias of `menu`.
    pub buttons: Option<MenuInput>,
    /// Alias of `menu`.
    pub list: Option<MenuInput>,
    /// Phones or JIDs to mention.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Send from this number (even while warming); otherwise the pool rotates.
    pub instance_id: Option<String>,
    /// The pool to rotate over (default `default`).
    pub pool: Option<String>,
    /// An image: a `url` or an uploaded `media_id`, with an optional `caption` (or `text`).
    pub image: Option<MediaInput>,
    /// A video: a `url` or an uploaded `media_id`, with an optional `caption` (or `text`).
    pub video: Option<MediaInput>,
    /// A voice note unless `voice` is `false`; "recording" is shown before it.
    pub audio: Option<MediaInput>,
    /// A document: a `url` or an uploaded `media_id`, with an optional `file_name` and
    /// `caption`.
    pub document: Option<MediaInput>,
    /// A WebP image of at most 1 MiB.
    pub sticker: Option<MediaInput>,
    /// A location pin.
    pub location: Option<LocationInput>,
    /// A contact card (vCard).
    pub contact: Option<ContactInput>,
    /// Sent from the number whose chat holds the message, to that chat.
    pub reaction: Option<ReactionInput>,
    /// Quote this message: the gateway id (`msg_…`) of a message sent here, or the
    /// `message_id` of a `message.received` event. The number whose chat holds it sends.
    pub reply_to: Option<String>,
    /// Not sent within this many seconds after it falls due (1 to 2,592,000, i.e. 30 days):
    /// it becomes `expired` instead, never sent late.
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<i64>,
    /// RFC 3339: not sent before this moment (at most a year ahead; a past moment means now).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub send_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The message's id (`msg_…`).
    pub id: String,
    /// `queued`.
    pub status: String,
    /// The forced number; `null` until a number of the pool takes the message.
    pub instance_id: Option<String>,
    /// The normalised recipient JID.
    pub to: String,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// Not sent before this moment; `null` when it may go out at once.
    pub send_at: Option<DateTime<Utc>>,
    /// Not sent at or after this moment (`expired` instead); `null` without `ttl_seconds`.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// The message's id (`msg_…`).
    pub id: String,
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed` or `expired`.
    pub status: String,
    /// The number that sends (or sent) it; `null` while no number has it.
    pub instance_id: Option<String>,
    /// The pool it was sent through.
    pub pool: String,
    /// The normalised recipient JID.
    pub to: String,
    /// The text that goes out (a menu rendered as numbered text).
    pub text: String,
    /// The mentioned JIDs.
    pub mentions: Vec<String>,
    /// Why it failed: `not_on_whatsapp` when the recipient was found not to be on WhatsApp
    /// before a first contact (nothing was sent), otherwise the cause in words.
    pub error: Option<String>,
    /// Not sent before this moment; `null` when it may go out at once.
    pub send_at: Option<DateTime<Utc>>,
    /// Not sent at or after this moment (`expired` instead); `null` without `ttl_seconds`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Why its number was chosen: `sticky`, `rotation`, `forced` or `geo`; `null` while queued.
    pub chosen_by: Option<String>,
    /// The WhatsApp message id, fixed when the message was accepted.
    pub whatsapp_id: String,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
    /// When it went out; `null` until then.
    pub sent_at: Option<DateTime<Utc>>,
    /// The campaign this message belongs to, if any.
    pub campaign_id: Option<String>,
    /// `text`, `image`, `video`, `audio`, `document`, `sticker`, `location`, `contact` or
    /// `reaction`.
    pub kind: String,
    /// The media source, location, contact card, reaction or quoted message, when any.
    #[schema(value_type = Option<Object>)]
    pub content: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// The messages of this page, newest first.
    pub items: Vec<MessageView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn view(m: &MessageRecord) -> MessageView {
    MessageView {
        id: m.id.clone(),
        status: m.status.as_str().into(),
        instance_id: m.instance_id.clone(),
        pool: m.pool.clone(),
        to: m.to.to_string(),
        text: m.body.clone(),
        mentions: m.mentions.clone(),
        error: m.error.clone(),
        send_at: m.send_at,
        expires_at: m.expires_at,
        chosen_by: m.chosen_by.clone(),
        whatsapp_id: m.wa_id.clone(),
        created_at: m.created_at,
        updated_at: m.updated_at,
        sent_at: m.sent_at,
        campaign_id: m.campaign_id.clone(),
        kind: StoredContent::from_column(m.content.as_ref())
            .map(|c| c.kind())
            .unwrap_or("text")
            .to_string(),
        content: m.content.clone(),
    }
}

fn accepted(r: Receipt) -> Accepted {
    Accepted {
        id: r.id,
        status: "queued".into(),
        instance_id: r.forced_instance,
        to: r.to.to_string(),
        created_at: r.created_at,
        send_at: r.send_at,
        expires_at: r.expires_at,
    }
}

fn invalid_recipient(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_recipient", format!("{what}: {e}"))
}

/// Checks a send request and turns it into what is stored; nothing is stored here. What needs
/// a look-up (an upload, a quoted or reacted-to message) comes back as [`Pending`].
fn build(
    tenant_id: &str,
    body: SendMessage,
) -> ApiResult<(MessageRecord, Option<String>, StoredContent, Pending)> {
    let to = Jid::parse_recipient(&body.to).map_err(|e| invalid_recipient("`to`", e))?;
    let menus = [body.menu, body.buttons, body.list];
    let mut menus = menus.into_iter().flatten();
    let menu = menus.next();
    if menus.next().is_some() {
        return Err(ApiError::invalid("give only one of `menu`, `buttons` and `list`"));
    }
    let menu = menu.map(|m| Menu {
        text: m.text,
        options: m.options.into_iter().map(|o| MenuOption { id: o.id, title: o.title }).collect(),
    });
    if let Some(m) = &menu {
        m.check().map_err(ApiError::invalid)?;
    }
    let rich = RichInput {
        image: body.image,
        video: body.video,
        audio: body.audio,
        document: body.document,
        sticker: body.sticker,
        location: body.location,
        contact: body.contact,
        reaction: body.reaction,
        reply_to: body.reply_to,
    };
    let has_text = body.text.as_deref().is_some_and(|t| !t.is_empty()) || menu.is_some();
    let checked = message_content::check(rich, has_text, !body.mentions.is_empty())?;
    // A quote alone does not make a message rich: it still needs words.
    let is_rich = checked.content != StoredContent::default() || checked.pending.reaction.is_some();
    if menu.is_some() && is_rich {
        return Err(ApiError::invalid(
            "a `menu` is a text; it cannot go with a media file, a location, a contact or a \
             reaction",
        ));
    }
    let body_text = match &checked.caption {
        Some(c) => c.clone(),
        None => message_body(body.text.as_deref(), menu.as_ref()),
    };
    if body_text.is_empty() && !is_rich {
        return Err(ApiError::invalid(
            "`text` (or a `menu`, a media file, a `location`, a `contact` or a `reaction`) is \
             required",
        ));
    }
    if body_text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid(format!(
            "the text is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    if body.mentions.len() > MAX_MENTIONS {
        return Err(ApiError::invalid(format!("at most {MAX_MENTIONS} mentions")));
    }
    let mut mentions = Vec::with_capacity(body.mentions.len());
    for m in &body.mentions {
        let j = Jid::parse_recipient(m).map_err(|e| invalid_recipient("a mention", e))?;
        if j.is_group() {
            return Err(invalid_recipient("a mention", format!("`{m}` is a group")));
        }
        mentions.push(j.to_string());
    }
    let pool = match &body.pool {
        Some(p) => Some(validate::pool_name(p).map_err(ApiError::invalid)?),
        None => None,
    };
    let at = now();
    let options = DeliveryOptions::check("", body.ttl_seconds, body.send_at.as_deref(), at)?;
    let rec = MessageRecord {
        id: new_ordered_id("msg"),
        tenant_id: tenant_id.to_string(),
        wa_id: new_message_id(),
        instance_id: body.instance_id.clone(),
        forced: body.instance_id.is_some(),
        pool: pool.clone().unwrap_or_else(|| "default".into()),
        to,
        body: body_text,
        mentions,
        menu: menu.map(|m| serde_json::to_value(m).unwrap_or_default()),
        status: MessageStatus::Queued,
        error: None,
        idempotency_key: None,
        created_at: at,
        updated_at: at,
        sent_at: None,
        campaign_id: None,
        content: None,
        send_at: options.send_at,
        expires_at: options.expires_at(at),
        chosen_by: None,
    };
    Ok((rec, pool, checked.content, checked.pending))
}

/// Send a message
///
/// Accepts a message: it is stored before the 202 answer, then sent by the paced, rotating queue
/// (typing shown, human-like gaps, caps, warming, health). The content is a `text` (with an
/// optional `menu`), or one of `image`, `video`, `audio`, `document`, `sticker` (with an optional
/// caption), `location`, `contact` or `reaction`; `reply_to` quotes a message. Without
/// `instance_id` the pool's rotation picks the number; with it, that number sends (even while
/// warming). The same `Idempotency-Key` within 24 h answers the first message and sends nothing
/// again. 409 `no_number_available` when the pool has no connected, healthy number; 409
/// `instance_unavailable` when the forced number is not connected; 422 `invalid_recipient` for a
/// `to` that is not a phone or JID. The outcome arrives as `message.status` events.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", security(("bearer" = [])),
    request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key within 24 h returns the first answer and sends nothing again")),
    responses(
        (status = 202, body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`no_number_available` or `instance_unavailable`"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`quota_exceeded`: queued messages per tenant or per pool (`Retry-After`); or `rate_limited` (`Retry-After`)"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn send(
    tenant: Tenant,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<SendMessage>,
) -> ApiResult<(StatusCode, JsonOut<Accepted>)> {
    let idempotency_key = idempotency_key(&headers)?;
    let (record, pool, content, pending) = build(&tenant.tenant_id, body)?;
    let new = NewMessage { record, pool, content, pending, idempotency_key };
    let receipt = state.app.messages.accept(&tenant.tenant_id, new).await?;
    Ok((StatusCode::ACCEPTED, JsonOut(accepted(receipt))))
}

/// Get a message
///
/// One message with its status (`queued`, `sending`, `sent`, `delivered`, `read`, `failed`,
/// `expired`), the number that sent it, why that number was chosen, and its times.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = MessageView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<MessageId>,
) -> ApiResult<JsonOut<MessageView>> {
    let m = state.app.messages.get(&tenant.tenant_id, &id).await?;
    Ok(JsonOut(view(&m)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this number's messages.
    pub instance_id: Option<String>,
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed` or `expired`.
    pub status: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

fn encode_cursor(m: &MessageRecord) -> String {
    let raw = format!("{}:{}", m.created_at.timestamp_millis(), m.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (at, id) = raw.split_once(':')?;
    Some((at.parse().ok()?, id.to_string()))
}

/// List messages
///
/// The tenant's messages, newest first, optionally of one number (`instance_id`). Paged with
/// `limit` and `cursor` (the `next_cursor` of the previous page).
#[utoipa::path(get, path = "/v1/messages", tag = "messages", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = MessageList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    tenant: Tenant,
    State(state): State<AppState>,
    Query(p): Query<ListParams>,
) -> ApiResult<JsonOut<MessageList>> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("`limit` must be between 1 and 500"));
    }
    let status = match p.status.as_deref() {
        Some(s) => Some(
            MessageStatus::parse(s)
                .ok_or_else(|| ApiError::invalid(format!("unknown status `{}`", shown(s))))?,
        ),
        None => None,
    };
    let before = match p.cursor.as_deref() {
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| ApiError::invalid("`cursor` is not one this API gave"))?,
        ),
        None => None,
    };
    let filter = MessageFilter { instance_id: p.instance_id, status, limit: limit + 1, before };
    let mut items = state.app.messages.list(&tenant.tenant_id, &filter).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(encode_cursor)
    } else {
        None
    };
    Ok(JsonOut(MessageList { items: items.iter().map(view).collect(), next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor("bad!"), None);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("123:msg_x");
        assert_eq!(decode_cursor(&raw), Some((123, "msg_x".into())));
    }
}
