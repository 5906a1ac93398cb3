//! The OpenAPI document of every route, generated from the handlers' annotations (utoipa) and
//! served at `/openapi.json`; `/docs` shows it in Swagger UI (`http/api_docs.rs`). Every
//! operation has a summary and a description, every field a description (the handlers' and
//! types' doc comments), every event type its payload and every error code its meaning:
//! `tests/api/api_docs.rs` walks the served document and names whatever lacks one.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::routes::{
    alerts, campaigns, cluster, events, health, instances, messages, metrics, not_implemented,
    pools, sim, tenants, webhooks,
};
use crate::http::routes::{
    campaign_csv, chats, contacts, groups, inbound_media, media, received, stats,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "bZapper", description = INFO),
    paths(
        health::healthz, health::readyz,
        tenants::create, tenants::list, tenants::delete, tenants::create_key, tenants::revoke_key,
        cluster::view,
        instances::create, instances::list, instances::get, instances::patch, instances::delete,
        instances::connect, instances::disconnect, instances::logout, instances::qr,
        instances::pair_code,
        pools::list, pools::put,
        messages::send, messages::get, messages::list,
        chats::list, chats::messages,
        inbound_media::get, received::read, groups::list, groups::get, contacts::check,
        campaigns::create, campaigns::list, campaigns::get_one, campaigns::pause,
        campaigns::resume, campaigns::cancel, campaign_csv::preview, campaign_csv::create,
        events::stream,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::retry,
        alerts::put, alerts::get, alerts::delete, alerts::deliveries, alerts::retry,
        media::upload, media::get, media::content, media::delete, media::peer_copy, media::peer_delete,
        metrics::prometheus, metrics::tenant, stats::series,
        not_implemented::forward, not_implemented::labels, not_implemented::calls,
        sim::scan, sim::drop_connection, sim::inbound, sim::call, sim::outbox, sim::restrict,
        sim::create_group, sim::set_contact, sim::get_reactions, sim::put_reactions, sim::set_age,
    ),
    // Every event type with its payload (`Event`: `{"type", "data"}`, one variant per type),
    // as SSE and webhooks deliver them inside `Envelope`.
    components(schemas(crate::events::Event)),
    modifiers(&BearerAuth, &RateLimited, &EventTypeTags, &ErrorCodes, &OptionalRefWords, &TaggedOperationIds),
    tags(
        (name = "health", description = "Probes"),
        (name = "tenants", description = "Tenants and API keys (admin token)"),
        (name = "cluster", description = "Nodes and the numbers each holds (admin token)"),
        (name = "instances", description = "WhatsApp numbers"),
        (name = "pools", description = "Pools and rotation"),
        (name = "messages", description = "Sending"),
        (name = "chats", description = "Conversations: each number's chats, and a chat's messages both ways"),
        (name = "campaigns", description = "Bulk sends with progress, pause, resume and cancel"),
        (name = "events", description = "Server-Sent Events"),
        (name = "webhooks", description = "Signed, durable event deliveries"),
        (name = "alerts", description = "A human message when a number drops, durable and retried"),
        (name = "groups", description = "A number's groups and their participants"),
        (name = "contacts", description = "Which phone numbers are on WhatsApp"),
        (name = "media", description = "Media files: uploaded once, streamed, kept for the retention"),
        (name = "metrics", description = "Prometheus and per-tenant figures"),
        (name = "stats", description = "Time series for charts: sends per number, health, queue depth"),
        (name = "sim", description = "Simulated network control (admin token, --sim only)"),
    )
)]
pub struct ApiDoc;

/// The document's introduction, shown at the top of `/docs`.
const INFO: &str = "A WhatsApp gateway for a pool of numbers: rotation, pacing, warming, \
health, typed drops.

**Auth.** Every route but the probes takes `Authorization: Bearer <token>`: the **admin \
token** manages tenants, the cluster and the simulator; a **tenant API key** (`bzk_…`) sees \
only its own tenant's instances, pools, messages, events, webhooks and media. Another tenant's \
id answers 404 like an unknown one. On this page, \"Authorize\" takes either token and \
\"Try it out\" calls this gateway with it.

**Errors.** Every non-2xx answer is `{\"error\": {\"code\", \"message\"}}`; `code` is a \
stable snake_case string, listed with its status and meaning under the `ErrorDetail` schema.

**Events.** `GET /v1/events` (Server-Sent Events) and webhooks deliver each event inside an \
`Envelope`; the `Event` schema lists every type with its payload.";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant API key (`bzk_<key id>_<secret>`, from `POST /v1/tenants` or \
                         `POST /v1/tenants/{id}/keys`) or the admin token \
                         (`BZAPPER_ADMIN_TOKEN`, or the `admin.token` file in the data directory). Server-Sent \
                         Events also take it as `?access_token=`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The `type` of each `Event` variant: utoipa documents it as a one-value enum with no words.
struct EventTypeTags;

impl Modify for EventTypeTags {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        let schemas = &mut openapi.components.get_or_insert_with(Default::default).schemas;
        let Some(RefOr::T(Schema::OneOf(event))) = schemas.get_mut("Event") else {
            return;
        };
        for variant in &mut event.items {
            let RefOr::T(Schema::Object(variant)) = variant else { continue };
            let Some(RefOr::T(Schema::Object(tag))) = variant.properties.get_mut("type") else {
                continue;
            };
            let kind = tag.enum_values.iter().flatten().find_map(|v| v.as_str().map(str::to_owned));
            if let Some(kind) = kind {
                tag.description = Some(format!("The event type: `{kind}`."));
            }
        }
    }
}

/// The reference's table of every error code (docs/api.md, "Every error code"), quoted whole
/// as the description of `ErrorDetail.code`: one list, kept where users read it, rather than a
/// second copy here that would drift from it.
struct ErrorCodes;

const API_REFERENCE: &str = include_str!("../../../../docs/api.md");

/// The table under the reference's "### Every error code" heading, up to the next heading or
/// rule; `None` if the reference no longer has it (a unit test catches that).
fn error_code_table(reference: &str) -> Option<String> {
    let (_, after) = reference.split_once("### Every error code\n")?;
    let table: Vec<&str> = after
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .collect();
    (table.len() > 2).then(|| table.join("\n"))
}

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        let schemas = &mut openapi.components.get_or_insert_with(Default::default).schemas;
        let Some(RefOr::T(Schema::Object(detail))) = schemas.get_mut("ErrorDetail") else {
            return;
        };
        let Some(RefOr::T(Schema::Object(code))) = detail.properties.get_mut("code") else {
            return;
        };
        let table = error_code_table(API_REFERENCE).unwrap_or_default();
        code.description = Some(format!(
            "A stable snake_case code: what went wrong, for programs (the message is for \
             people). Every code, its status and where it is answered:\n\n{table}"
        ));
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

/// An optional field of a named type (`Option<MenuInput>`) comes out of utoipa as
/// `oneOf: [{"type": "null"}, {"$ref", "description"}]`, its doc comment beside the `$ref`,
/// where Swagger UI and most tools do not show it. This lifts such a description onto the
/// field itself, like every other field's.
struct OptionalRefWords;

impl Modify for OptionalRefWords {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schemas = &mut openapi.components.get_or_insert_with(Default::default).schemas;
        for schema in schemas.values_mut() {
            lift_ref_words(schema);
        }
    }
}

fn lift_ref_words(schema: &mut utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) {
    use utoipa::openapi::schema::{ArrayItems, Schema};
    use utoipa::openapi::RefOr;
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(object) => object.properties.values_mut().for_each(lift_ref_words),
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                lift_ref_words(items);
            }
        }
        Schema::AllOf(all) => all.items.iter_mut().for_each(lift_ref_words),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(lift_ref_words),
        Schema::OneOf(one) => {
            if one.description.is_none() {
                let words = one.items.iter_mut().find_map(|item| match item {
                    RefOr::Ref(r) if !r.description.is_empty() => {
                        Some(std::mem::take(&mut r.description))
                    }
                    _ => None,
                });
                one.description = words;
            }
            one.items.iter_mut().for_each(lift_ref_words);
        }
        _ => {}
    }
}

/// utoipa names an operation after its handler function, and several resources have a `list`,
/// `get` or `create`: ids must be unique (Swagger UI's try-it-out ran the wrong operation, and
/// client generators name methods after them), so each is prefixed with its first tag, e.g.
/// `instances_list`.
struct TaggedOperationIds;

impl Modify for TaggedOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops =
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
                    *id = format!("{tag}_{id}");
                }
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
    fn the_error_codes_are_quoted_from_the_reference() {
        let table = error_code_table(API_REFERENCE).expect("docs/api.md lists every error code");
        for code in ["`not_found`", "`rate_limited`", "`invalid_request`", "`internal`"] {
            assert!(table.contains(code), "{code} is not in the table");
        }
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let code = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"];
        assert!(code["description"].as_str().unwrap().contains(&table));
    }

    #[test]
    fn an_optional_named_field_carries_its_words_itself() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let menu = &doc["components"]["schemas"]["SendMessage"]["properties"]["menu"];
        assert_eq!(menu["description"], "Sent as a numbered text menu.");
        let variants = menu["oneOf"].as_array().unwrap();
        assert!(variants.iter().all(|v| v.get("description").is_none()), "{menu}");
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                if let Some(first) = seen.insert(id.clone(), format!("{method} {path}")) {
                    panic!("operationId {id} is both {first} and {method} {path}");
                }
            }
        }
        assert!(seen.contains_key("instances_list") && seen.contains_key("campaigns_list"));
    }

    #[test]
    fn each_event_type_tag_says_its_type() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let variants = doc["components"]["schemas"]["Event"]["oneOf"].as_array().unwrap();
        for (v, kind) in variants.iter().zip(EVENT_TYPES) {
            let said = v["properties"]["type"]["description"].as_str().unwrap();
            assert_eq!(said, format!("The event type: `{kind}`."));
        }
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
