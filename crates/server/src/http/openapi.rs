//! The OpenAPI document of every route, generated from the handlers' annotations (utoipa) and
//! served at `/openapi.json`. No UI is bundled, so nothing is downloaded at build time.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::routes::{
    alerts, campaigns, cluster, events, health, instances, messages, metrics, not_implemented,
    pools, sim, tenants, webhooks,
};
use crate::http::routes::{contacts, groups, inbound_media, media};

#[derive(OpenApi)]
#[openapi(
    info(title = "bZapper", description = "A WhatsApp gateway for a pool of numbers: rotation, pacing, warming, health, typed drops."),
    paths(
        health::healthz, health::readyz,
        tenants::create, tenants::list, tenants::delete, tenants::create_key, tenants::revoke_key,
        cluster::view,
        instances::create, instances::list, instances::get, instances::patch, instances::delete,
        instances::connect, instances::disconnect, instances::logout, instances::qr,
        instances::pair_code,
        pools::list, pools::put,
        messages::send, messages::get, messages::list,
        inbound_media::get, groups::list, groups::get, contacts::check,
        campaigns::create, campaigns::list, campaigns::get_one, campaigns::pause,
        campaigns::resume, campaigns::cancel,
        events::stream,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::retry,
        alerts::put, alerts::get, alerts::delete,
        media::upload, media::get, media::content, media::delete, media::peer_copy, media::peer_delete,
        metrics::prometheus, metrics::tenant,
        not_implemented::forward, not_implemented::labels, not_implemented::calls,
        sim::scan, sim::drop_connection, sim::inbound, sim::outbox, sim::restrict,
        sim::create_group, sim::set_contact,
    ),
    // Every event type with its payload (`Event`: `{"type", "data"}`, one variant per type),
    // as SSE and webhooks deliver them inside `Envelope`.
    components(schemas(crate::events::Event)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Probes"),
        (name = "tenants", description = "Tenants and API keys (admin token)"),
        (name = "cluster", description = "Nodes and the numbers each holds (admin token)"),
        (name = "instances", description = "WhatsApp numbers"),
        (name = "pools", description = "Pools and rotation"),
        (name = "messages", description = "Sending"),
        (name = "campaigns", description = "Bulk sends with progress, pause, resume and cancel"),
        (name = "events", description = "Server-Sent Events"),
        (name = "webhooks", description = "Signed, durable event deliveries"),
        (name = "alerts", description = "A human message when a number drops"),
        (name = "groups", description = "A number's groups and their participants"),
        (name = "contacts", description = "Which phone numbers are on WhatsApp"),
        (name = "media", description = "Media files: uploaded once, streamed, kept for the retention"),
        (name = "metrics", description = "Prometheus and per-tenant figures"),
        (name = "sim", description = "Simulated network control (admin token, --sim only)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EVENT_TYPES;

    #[test]
    fn the_document_lists_every_event_type_with_its_payload() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let variants = schemas["Event"]["oneOf"].as_array().unwrap();
        let listed: Vec<&str> =
            variants.iter().map(|v| v["properties"]["type"]["enum"][0].as_str().unwrap()).collect();
        assert_eq!(listed, EVENT_TYPES);
        for v in variants {
            let payload = v["properties"]["data"]["$ref"].as_str().unwrap();
            let name = payload.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.get(name).is_some(), "{name} is referred to but not listed");
        }
    }
}
