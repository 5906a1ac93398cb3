//! Sending: `POST /v1/messages` accepts a message into the durable queue (the 202 follows the
//! commit), `GET /v1/messages/{id}` and `GET /v1/messages` read them back.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json as JsonOut;
use base64::Engine;
use bzapper_core::menu::{message_body, Menu, MenuOption};
use bzapper_core::{validate, Jid, Status};
use bzapper_driver::MessageRef;
use bzapper_store::{MessageFilter, MessageRecord, MessageStatus, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{idempotency_key, Json, Query};
use crate::http::routes::message_content::{
    self, ContactInput, LocationInput, MediaInput, Pending, ReactionInput, RichInput,
};
use crate::http::state::AppState;
use crate::model::content::{Reaction, StoredContent};
use crate::model::ids::{new_message_id, new_ordered_id};
use crate::model::time::now;

/// The longest text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 16_384;
/// The most mentions in one message.
pub const MAX_MENTIONS: usize = 50;
/// How long an `Idempotency-Key` holds.
const IDEMPOTENCY_HOURS: i64 = 24;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuOptionInput {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuInput {
    /// A line above the options.
    pub text: Option<String>,
    #[schema(min_items = 1, max_items = 10)]
    pub options: Vec<MenuOptionInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// A phone number in any common notation, or a `@s.whatsapp.net`, `@lid` or `@g.us` JID.
    pub to: String,
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
    pub image: Option<MediaInput>,
    pub video: Option<MediaInput>,
    /// A voice note unless `voice` is `false`; "recording" is shown before it.
    pub audio: Option<MediaInput>,
    pub document: Option<MediaInput>,
    /// A WebP image of at most 1 MiB.
    pub sticker: Option<MediaInput>,
    pub location: Option<LocationInput>,
    pub contact: Option<ContactInput>,
    /// Sent from the number whose chat holds the message, to that chat.
    pub reaction: Option<ReactionInput>,
    /// Quote this message: the gateway id (`msg_…`) of a message sent here, or the
    /// `message_id` of a `message.received` event. The number whose chat holds it sends.
    pub reply_to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    /// `queued`.
    pub status: String,
    /// The forced number; `null` until a number of the pool takes the message.
    pub instance_id: Option<String>,
    /// The normalised recipient JID.
    pub to: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// `queued`, `sending`, `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    pub instance_id: Option<String>,
    pub pool: String,
    pub to: String,
    /// The text that goes out (a menu rendered as numbered text).
    pub text: String,
    pub mentions: Vec<String>,
    pub error: Option<String>,
    /// The WhatsApp message id, fixed when the message was accepted.
    pub whatsapp_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
        to: m.to.clone(),
        text: m.body.clone(),
        mentions: m.mentions.clone(),
        error: m.error.clone(),
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

fn accepted(m: &MessageRecord) -> Accepted {
    Accepted {
        id: m.id.clone(),
        status: "queued".into(),
        instance_id: m.forced.then(|| m.instance_id.clone()).flatten(),
        to: m.to.clone(),
        created_at: m.created_at,
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
    let rec = MessageRecord {
        id: new_ordered_id("msg"),
        tenant_id: tenant_id.to_string(),
        wa_id: new_message_id(),
        instance_id: body.instance_id.clone(),
        forced: body.instance_id.is_some(),
        pool: pool.clone().unwrap_or_else(|| "default".into()),
        to: to.to_string(),
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
    };
    Ok((rec, pool, checked.content, checked.pending))
}

/// Accepts a message: it is stored before the answer, then sent by the paced queue.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", security(("bearer" = [])),
    request_body = SendMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key within 24 h returns the first answer and sends nothing again")),
    responses(
        (status = 202, body = Accepted),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`no_number_available` or `instance_unavailable`"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn send(
    tenant: Tenant,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<SendMessage>,
) -> ApiResult<(StatusCode, JsonOut<Accepted>)> {
    let key = idempotency_key(&headers)?;
    if let Some(k) = &key {
        if let Some(first) = state.store.find_by_idempotency_key(&tenant.tenant_id, k).await? {
            if now() - first.created_at < Duration::hours(IDEMPOTENCY_HOURS) {
                return Ok((StatusCode::ACCEPTED, JsonOut(accepted(&first))));
            }
            state.store.release_idempotency_key(&tenant.tenant_id, k).await?;
        }
    }
    let (mut rec, pool, content, pending) = build(&tenant.tenant_id, body)?;
    rec.idempotency_key = key.clone();
    resolve(&state, &tenant.tenant_id, &mut rec, content, pending).await?;
    if let Some(iid) = rec.instance_id.clone() {
        let inst =
            state.store.get_instance(&tenant.tenant_id, &iid).await?.ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such instance")
            })?;
        if inst.state.status != Status::Connected {
            return Err(ApiError::conflict(
                "instance_unavailable",
                format!(
                    "the instance is {}{}; it can send once it is connected",
                    inst.state.status.as_str(),
                    inst.state.reason.map(|r| format!(" ({})", r.as_str())).unwrap_or_default()
                ),
            ));
        }
        rec.pool = pool.unwrap_or(inst.pool);
    } else if !state.scheduler.has_number_available(&tenant.tenant_id, &rec.pool).await {
        return Err(ApiError::conflict(
            "no_number_available",
            format!("pool `{}` has no connected, healthy number", rec.pool),
        ));
    }
    match state.store.insert_message(&rec).await {
        Ok(()) => {}
        // The same key raced in from another request: answer what that one stored.
        Err(StoreError::Conflict(_)) if key.is_some() => {
            let k = key.as_deref().unwrap_or_default();
            let first = state.store.find_by_idempotency_key(&tenant.tenant_id, k).await?;
            let first = first.ok_or_else(|| ApiError::internal("an idempotency key vanished"))?;
            return Ok((StatusCode::ACCEPTED, JsonOut(accepted(&first))));
        }
        Err(e) => return Err(e.into()),
    }
    let answer = accepted(&rec);
    state.scheduler.accept(rec).await;
    Ok((StatusCode::ACCEPTED, JsonOut(answer)))
}

fn unknown_message(id: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_message",
        format!("message `{id}` {why}"),
    )
}

/// Looks up what the accept path could not check alone: the upload a media message names,
/// the message a reaction targets or a reply quotes (which pins the number whose chat holds
/// it). Fills `rec.content`.
async fn resolve(
    state: &AppState,
    tenant_id: &str,
    rec: &mut MessageRecord,
    mut content: StoredContent,
    pending: Pending,
) -> ApiResult<()> {
    if let Some((id, kind)) = &pending.media_id {
        // Uploaded here, or on another node of the cluster (copied here then).
        let media = state.media.find(tenant_id, id).await.map_err(ApiError::internal)?;
        let Some(media) = media else {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_media",
                format!("no upload `{id}` (it may have expired); upload it with POST /v1/media"),
            ));
        };
        // Its size against the kind's cap and its bytes against the kind (413 or 422).
        state.media.check_kind(&media, *kind).await?;
    }
    let target_id = pending.reaction.as_ref().map(|r| r.0.clone()).or(pending.reply_to.clone());
    if let Some(target_id) = &target_id {
        let (target, holder) = find_target(state, tenant_id, target_id).await?;
        match &rec.instance_id {
            Some(given) if *given != holder => {
                return Err(unknown_message(
                    target_id,
                    &format!("is in a chat of instance `{holder}`, not `{given}`"),
                ))
            }
            _ => {
                rec.instance_id = Some(holder);
                rec.forced = true;
            }
        }
        match pending.reaction {
            Some((_, emoji)) => {
                // A reaction goes to the chat that holds the message.
                let chat = target.chat.to_non_device();
                if chat.to_string() != rec.to && !same_contact(state, &chat, &rec.to).await? {
                    return Err(unknown_message(target_id, &format!("is in chat `{chat}`")));
                }
                rec.to = chat.to_string();
                content.reaction = Some(Reaction { target, emoji });
            }
            None => content.reply_to = Some(target),
        }
    }
    rec.content = content.to_column();
    Ok(())
}

/// Whether `lid_chat` (a LID) and `to` (a phone JID) are the same contact.
async fn same_contact(state: &AppState, lid_chat: &Jid, to: &str) -> ApiResult<bool> {
    if !lid_chat.is_lid() {
        return Ok(false);
    }
    let phone = state.store.phone_for_lid(&lid_chat.to_string()).await?;
    Ok(phone.as_deref() == Some(to))
}

/// The message `id` names — one sent here (gateway or WhatsApp id) or one received — and the
/// number whose chat holds it.
async fn find_target(
    state: &AppState,
    tenant_id: &str,
    id: &str,
) -> ApiResult<(MessageRef, String)> {
    let mut sent = state.store.get_message(tenant_id, id).await?;
    if sent.is_none() {
        sent = state.store.find_message_by_wa_id_for_tenant(tenant_id, id).await?;
    }
    if let Some(m) = sent {
        let went_out = matches!(
            m.status,
            MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
        );
        let (true, Some(holder)) = (went_out, m.instance_id.clone()) else {
            return Err(unknown_message(id, &format!("is {}, not sent", m.status.as_str())));
        };
        let chat = Jid::parse(&m.to).map_err(ApiError::internal)?;
        let text = (!m.body.is_empty()).then(|| m.body.clone());
        return Ok((MessageRef { id: m.wa_id, chat, from_me: true, sender: None, text }, holder));
    }
    let Some(r) = state.store.find_inbound(tenant_id, id).await? else {
        return Err(unknown_message(id, "is not one this gateway sent or received"));
    };
    let chat = Jid::parse(&r.chat).map_err(ApiError::internal)?;
    let sender = match chat.is_group() {
        true => Some(Jid::parse(&r.sender).map_err(ApiError::internal)?),
        false => None,
    };
    let text = (!r.text.is_empty()).then(|| r.text.clone());
    Ok((MessageRef { id: r.wa_id, chat, from_me: false, sender, text }, r.instance_id))
}

/// One message.
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = MessageView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<JsonOut<MessageView>> {
    let m =
        state.store.get_message(&tenant.tenant_id, &id).await?.ok_or_else(ApiError::not_found)?;
    Ok(JsonOut(view(&m)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub instance_id: Option<String>,
    /// `queued`, `sending`, `sent`, `delivered`, `read` or `failed`.
    pub status: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
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

/// The tenant's messages, newest first.
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
                .ok_or_else(|| ApiError::invalid(format!("unknown status `{s}`")))?,
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
    let mut items = state.store.list_messages(&tenant.tenant_id, &filter).await?;
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
