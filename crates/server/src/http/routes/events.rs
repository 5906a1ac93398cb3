//! `GET /v1/events`: the tenant's events as Server-Sent Events, read from the event log and
//! then live, with `Last-Event-ID` resume (nothing skipped within the retention window),
//! `instance_id` and `types` filters (`instance.*` wildcards) and heartbeats.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use bzapper_store::Event;
use futures::stream::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::events::{Envelope, Filter};
use crate::http::auth::TenantOrQueryToken;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::Query;
use crate::http::state::AppState;

/// How many logged events one read of the store returns while catching up.
const PAGE: u32 = 500;
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsParams {
    /// Only this number's events.
    pub instance_id: Option<String>,
    /// Comma-separated types or `prefix.*` patterns, e.g. `instance.*,message.received`.
    pub types: Option<String>,
    /// The tenant API key, for clients that cannot set headers (EventSource).
    pub access_token: Option<String>,
    /// Resume after this event id (the `Last-Event-ID` header wins when both are given).
    pub last_event_id: Option<i64>,
}

fn last_event_id(headers: &HeaderMap, query: Option<i64>) -> ApiResult<Option<i64>> {
    match headers.get("last-event-id") {
        Some(v) => {
            v.to_str().ok().and_then(|s| s.trim().parse::<i64>().ok()).map(Some).ok_or_else(|| {
                ApiError::invalid("`Last-Event-ID` must be an event id this API gave")
            })
        }
        None => Ok(query),
    }
}

fn to_sse(e: &Event) -> SseEvent {
    let data = serde_json::to_string(&Envelope::from(e)).unwrap_or_default();
    SseEvent::default().id(e.id.to_string()).event(e.kind.clone()).data(data)
}

/// Stream events (Server-Sent Events)
///
/// The tenant's events, live, as `text/event-stream`: each with `id: <event id>`, `event: <type>`
/// and `data: <the Envelope JSON>`, and a `:heartbeat` comment every 15 s. With `Last-Event-ID` (or
/// `?last_event_id=`), first every kept event after that id, then live ones, with nothing skipped
/// or repeated. Filter with `instance_id` and `types` (`instance.*,message.received`). Browsers'
/// EventSource cannot set headers: the key may come as `?access_token=`. The stream ends at once
/// when its key is revoked or its tenant deleted. The `Event` schema lists every type and its
/// payload.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(EventsParams, ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses(
        (status = 200, description = "an SSE stream of event envelopes", content_type = "text/event-stream", body = Envelope),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`) or `quota_exceeded` (open streams per tenant)", body = ErrorBody),
    ))]
pub async fn stream(
    tenant: TenantOrQueryToken,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<EventsParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let filter = Filter::parse(p.instance_id, p.types.as_deref()).map_err(ApiError::invalid)?;
    let resume = last_event_id(&headers, p.last_event_id)?;
    // The tenant's place among its open streams (`--max-sse-streams-per-tenant`), held by the
    // stream and given back when it ends.
    let slot = state.app.streams.open(&tenant.tenant_id)?;
    // Subscribe before reading the log, so that nothing recorded in between is missed; the
    // ids tell duplicates apart.
    let feed = state.app.feed.clone();
    let mut live = feed.subscribe();
    let mut cursor = match resume {
        Some(id) => id,
        None => feed.latest_id(&tenant.tenant_id).await?,
    };
    let mut closing = state.closing.clone();
    // Listening from now: a revoke of the key (or the tenant's deletion) ends the stream at
    // once, before any event recorded after it.
    let revoked = state.app.revocations.until_revoked(&tenant.tenant_id, &tenant.key_id);
    let tenant_id = tenant.tenant_id;
    let stream = async_stream::stream! {
        let _slot = slot;
        // The log is the source: live events only ring the bell. Reading the log after each
        // bell returns every committed event after the cursor in id order, so an event that
        // was broadcast late (its recorder was slower) is never skipped.
        loop {
            loop {
                let page = match feed.after(&tenant_id, cursor, PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the event log for SSE failed");
                        return;
                    }
                };
                let n = page.len();
                for e in page {
                    cursor = e.id;
                    if filter.matches(&e) {
                        yield Ok(to_sse(&e));
                    }
                }
                if n < PAGE as usize {
                    break;
                }
            }
            loop {
                let received = tokio::select! {
                    r = live.recv() => r,
                    _ = closing.wait_for(|c| *c) => return,
                };
                match received {
                    Ok(e) if e.tenant_id == tenant_id.as_str() && e.id > cursor => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    };
    Ok(Sse::new(stream.take_until(revoked))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("heartbeat")))
}
