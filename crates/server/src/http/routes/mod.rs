//! The HTTP routes, one module per resource, and the router that joins them.

pub mod alerts;
pub mod campaign_csv;
pub mod campaigns;
pub mod chats;
pub mod cluster;
pub mod contacts;
pub mod delivery_options;
pub mod events;
pub mod groups;
pub mod health;
pub mod inbound_media;
pub mod instances;
pub mod media;
pub mod message_content;
pub mod messages;
pub mod metrics;
pub mod not_implemented;
pub mod pools;
pub mod quiet_hours;
pub mod received;
pub mod sim;
pub mod stats;
pub mod tenants;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put, MethodRouter};
use axum::Router;

use crate::http::error::ApiError;
use crate::http::forward;
use crate::http::state::AppState;

/// Every route. The calls that act on a number's live connection are wrapped in
/// [`forward::to_holder`] here, where they are declared: on a node of several they run on the
/// node holding the number (see `http/forward.rs`).
pub fn router(state: &AppState) -> Router<AppState> {
    let holder = axum::middleware::from_fn_with_state(state.clone(), forward::to_holder);
    let on_holder = |m: MethodRouter<AppState>| m.route_layer(holder.clone());
    Router::new()
        .merge(crate::http::dashboard::routes())
        .merge(crate::http::api_docs::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(crate::http::openapi::serve))
        .route("/metrics", get(metrics::prometheus))
        .route("/v1/metrics", get(metrics::tenant))
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route("/v1/cluster", get(cluster::view))
        .route(
            "/v1/cluster/media/{tenant_id}/{id}",
            get(media::peer_copy).delete(media::peer_delete),
        )
        .route("/v1/tenants/{id}", axum::routing::delete(tenants::delete))
        .route("/v1/tenants/{id}/keys", post(tenants::create_key))
        .route("/v1/tenants/{id}/keys/{key_id}", axum::routing::delete(tenants::revoke_key))
        .route("/v1/instances", post(instances::create).get(instances::list))
        .route(
            "/v1/instances/{id}",
            get(instances::get).merge(on_holder(patch(instances::patch).delete(instances::delete))),
        )
        .route("/v1/instances/{id}/connect", on_holder(post(instances::connect)))
        .route("/v1/instances/{id}/disconnect", on_holder(post(instances::disconnect)))
        .route("/v1/instances/{id}/logout", on_holder(post(instances::logout)))
        .route("/v1/instances/{id}/qr", on_holder(get(instances::qr)))
        .route("/v1/instances/{id}/pair-code", on_holder(post(instances::pair_code)))
        .route("/v1/instances/{id}/groups", on_holder(get(groups::list)))
        .route("/v1/instances/{id}/groups/{jid}", on_holder(get(groups::get)))
        .route("/v1/instances/{id}/media/{message_id}", on_holder(get(inbound_media::get)))
        .route("/v1/instances/{id}/messages/{message_id}/read", on_holder(post(received::read)))
        .route("/v1/contacts/check", post(contacts::check))
        .route("/v1/events", get(events::stream))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/webhooks/{id}", get(webhooks::get).delete(webhooks::delete))
        .route("/v1/webhooks/{id}/secret", post(webhooks::rotate_secret))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/{id}/deliveries/{delivery_id}/retry", post(webhooks::retry))
        // Uploads lift the API's small body limit: the handler applies the media cap.
        .route("/v1/media", post(media::upload).layer(DefaultBodyLimit::disable()))
        .route("/v1/media/{id}", get(media::get).delete(media::delete))
        .route("/v1/media/{id}/content", get(media::content))
        .route("/v1/alerts", put(alerts::put).get(alerts::get).delete(alerts::delete))
        .route("/v1/alerts/deliveries", get(alerts::deliveries))
        .route("/v1/alerts/deliveries/{id}/retry", post(alerts::retry))
        .route("/v1/pools", get(pools::list))
        .route("/v1/pools/{name}", put(pools::put))
        .route("/v1/messages", post(messages::send).get(messages::list))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/chats", get(chats::list))
        .route("/v1/chats/{jid}/messages", get(chats::messages))
        .merge(campaigns::routes())
        .merge(campaign_csv::routes())
        .route("/v1/stats/series", get(stats::series))
        .route("/v1/messages/forward", post(not_implemented::forward))
        .route("/v1/labels", post(not_implemented::labels))
        .route("/v1/calls", post(not_implemented::calls))
        .route("/v1/sim/instances/{id}/scan", post(sim::scan))
        .route("/v1/sim/instances/{id}/drop", post(sim::drop_connection))
        .route("/v1/sim/instances/{id}/inbound", post(sim::inbound))
        .route("/v1/sim/instances/{id}/outbox", get(sim::outbox))
        .route("/v1/sim/instances/{id}/call", post(sim::call))
        .route("/v1/sim/instances/{id}/restrict", post(sim::restrict))
        .route("/v1/sim/groups", post(sim::create_group))
        .route("/v1/sim/contacts", post(sim::set_contact))
        .route("/v1/sim/reactions", get(sim::get_reactions).put(sim::put_reactions))
        .route("/v1/sim/instances/{id}/age", post(sim::set_age))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
