//! The OpenAPI document of every route, generated from the handlers' annotations (utoipa) and
//! served at `/openapi.json`. No UI is bundled, so nothing is downloaded at build time.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::routes::{
    alerts, campaigns, cluster, events, health, instances, messages, metrics, not_implemented,
    pools, sim, tenants, webhooks,
};
use crate::http::routes::{contacts, groups, inbound_media, media, received};

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
        inbound_media::get, received::read, groups::list, groups::get, contacts::check,
        campaigns::create, campaigns::list, campaigns::get_one, campaigns::pause,
        campaigns::resume, campaigns::cancel,
        events::stream,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::retry,
        alerts::put, alerts::get, alerts::delete, alerts::deliveries, alerts::retry,
        media::upload, media::get, media::content, media::delete, media::peer_copy, media::peer_delete,
        metrics::prometheus, metrics::tenant,
        not_implemented::forward, not_implemented::labels, not_implemented::calls,
        sim::scan, sim::drop_connection, sim::inbound, sim::call, sim::outbox, sim::restrict,
        sim::create_group, sim::set_contact, sim::get_reactions, sim::put_reactions, sim::set_age,
    ),
    // Every event type with its payload (`Event`: `{"type", "data"}`, one variant per type),
    // as SSE and webhooks deliver them inside `Envelope`.
    components(schemas(crate::events::Event)),
    modifiers(&BearerAuth, &RateLimited),
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
        (name = "alerts", description = "A human message when a number drops, durable and retried"),
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

/// Every route a tenant key calls may answer 429 (`http/rate_limit.rs`): declared once here
/// rather than on each handler. Routes that also answer `quota_exceeded` declare their own 429.
struct RateLimited;

/// Tags of the routes only the admin token (or nobody) calls: never rate limited.
const NOT_RATE_LIMITED: [&str; 4] = ["health", "tenants", "cluster", "sim"];

impl Modify for RateLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
        let response = ResponseBuilder::new()
            .description(
                "`rate_limited`: this API key sent more requests a second than \
                 `--rate-limit` allows; `Retry-After` says when to try again",
            )
            .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The admin token's own routes outside those tags.
            if path == "/metrics" || path.starts_with("/v1/cluster") {
                continue;
            }
            let ops =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let tags = op.tags.as_deref().unwrap_or_default();
                if tags.iter().any(|t| NOT_RATE_LIMITED.contains(&t.as_str())) {
                    continue;
                }
                let responses = &mut op.responses.responses;
                responses.entry("429".into()).or_insert_with(|| RefOr::T(response.clone()));
            }
        }
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
    fn tenant_routes_declare_429_and_admin_routes_do_not() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = &doc["paths"];
        assert!(paths["/v1/messages"]["post"]["responses"]["429"].is_object());
        assert!(paths["/v1/instances"]["get"]["responses"]["429"].is_object());
        assert!(paths["/v1/tenants"]["post"]["responses"]["429"].is_null());
        let quota = paths["/v1/webhooks"]["post"]["responses"]["429"]["description"].as_str();
        assert!(quota.unwrap().contains("quota_exceeded"), "{quota:?}");
    }

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
