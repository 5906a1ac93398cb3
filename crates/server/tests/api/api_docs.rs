//! The API docs: `/docs` serves Swagger UI over `/openapi.json` (page, files, headers), and the
//! served document describes everything: a route, parameter or field added without words
//! fails `every_operation_parameter_and_field_is_described`, which names each one.

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::TestApp;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "options", "head", "trace"];

/// Everything in an OpenAPI document that lacks words, one line each: an operation without a
/// summary or description, a parameter without a description, and a property without a
/// description, in `components.schemas` and in schemas written inline in operations.
fn undescribed(doc: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    let no_words = |v: &Value, key: &str| v[key].as_str().is_none_or(|s| s.trim().is_empty());
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            let op = &item[method];
            if op.is_null() {
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            for key in ["summary", "description"] {
                if no_words(op, key) {
                    missing.push(format!("operation {at}: no {key}"));
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if no_words(p, "description") {
                    missing.push(format!(
                        "operation {at}: parameter `{}` has no description",
                        p["name"].as_str().unwrap_or("?")
                    ));
                }
            }
            let mut bodies = vec![(format!("{at} request body"), &op["requestBody"])];
            for (status, res) in op["responses"].as_object().into_iter().flatten() {
                bodies.push((format!("{at} response {status}"), res));
            }
            for (where_, body) in bodies {
                for (ctype, content) in body["content"].as_object().into_iter().flatten() {
                    let place = format!("{where_} ({ctype})");
                    properties_without_words(&content["schema"], &place, &mut missing);
                }
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        properties_without_words(schema, &format!("schema {name}"), &mut missing);
    }
    missing
}

/// Walks a schema (its properties, items, variants and map values) and names each property
/// without a description as `place.property`.
fn properties_without_words(schema: &Value, place: &str, missing: &mut Vec<String>) {
    for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
        if prop["description"].as_str().is_none_or(|s| s.trim().is_empty()) {
            missing.push(format!("{place}.{name}: no description"));
        }
        properties_without_words(prop, &format!("{place}.{name}"), missing);
    }
    properties_without_words_in(&schema["items"], &format!("{place}[]"), missing);
    properties_without_words_in(&schema["additionalProperties"], &format!("{place}{{}}"), missing);
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, variant) in schema[key].as_array().into_iter().flatten().enumerate() {
            properties_without_words(variant, &format!("{place}.{key}[{i}]"), missing);
        }
    }
}

fn properties_without_words_in(schema: &Value, place: &str, missing: &mut Vec<String>) {
    if schema.is_object() {
        properties_without_words(schema, place, missing);
    }
}

#[test]
fn the_walk_finds_what_lacks_words() {
    let doc = json!({
        "paths": {"/v1/things/{id}": {"get": {
            "summary": "Get a thing",
            "parameters": [{"name": "id", "in": "path"}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"inline": {"type": "string"}}}
            }}}}
        }}},
        "components": {"schemas": {"Thing": {"type": "object", "properties": {
            "said": {"type": "string", "description": "words"},
            "bare": {"$ref": "#/components/schemas/Other"},
            "list": {"type": "array", "description": "x", "items": {"type": "object",
                "properties": {"deep": {"type": "integer"}}}},
            "either": {"oneOf": [{"type": "null"}, {"type": "object",
                "properties": {"variant": {"type": "string"}}}], "description": "y"},
        }}}}
    });
    assert_eq!(
        undescribed(&doc),
        [
            "operation GET /v1/things/{id}: no description",
            "operation GET /v1/things/{id}: parameter `id` has no description",
            "GET /v1/things/{id} response 200 (application/json).inline: no description",
            "schema Thing.bare: no description",
            "schema Thing.either.oneOf[1].variant: no description",
            "schema Thing.list[].deep: no description",
        ]
    );
}

#[tokio::test]
async fn every_operation_parameter_and_field_is_described() {
    let app = TestApp::spawn().await;
    let (s, doc) = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let missing = undescribed(&doc);
    assert!(
        missing.is_empty(),
        "/openapi.json lacks {} descriptions. An operation's summary is the first line of its \
         handler's doc comment and its description the paragraphs after a blank line; a \
         parameter's is `description = \"…\"` in `params(...)` (or a doc comment on the field \
         of its `IntoParams` struct); a property's is the doc comment on the struct field.\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[tokio::test]
async fn the_docs_page_is_served_with_its_files_and_no_auth() {
    let app = TestApp::spawn().await;
    for path in ["/docs", "/docs/"] {
        let res = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers().clone();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[CACHE_CONTROL], "no-cache");
        let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "try-it-out calls this gateway: {csp}");
        let html = res.text().await.unwrap();
        assert!(html.contains("<title>bZapper API</title>"));
        assert!(html.contains("href=\"/openapi.json\""), "{html}");
    }

    // Every file the page loads answers with its type, cached for good at this version.
    let html = app.http.get(format!("{}/docs", app.base)).send().await.unwrap().text().await;
    let html = html.unwrap();
    let files: Vec<&str> =
        html.split(['"', '\'']).filter(|s| s.starts_with("/docs/") && s.contains("?v=")).collect();
    assert_eq!(files.len(), 4, "{html}");
    for url in files {
        let res = app.http.get(format!("{}{url}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        let ctype = res.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable", "{url}");
        let body = res.bytes().await.unwrap();
        let name = url.trim_start_matches("/docs/").split('?').next().unwrap();
        match name {
            "swagger-ui-bundle.js" => {
                assert_eq!(ctype, "text/javascript; charset=utf-8");
                assert!(body.len() > 1_000_000, "{} bytes", body.len());
            }
            "init.js" => {
                assert_eq!(ctype, "text/javascript; charset=utf-8");
                let js = std::str::from_utf8(&body).unwrap();
                assert!(js.contains("url: \"/openapi.json\""), "{js}");
            }
            "swagger-ui.css" => assert_eq!(ctype, "text/css; charset=utf-8"),
            "favicon-32x32.png" => {
                assert_eq!(ctype, "image/png");
                assert!(body.starts_with(b"\x89PNG"));
            }
            other => panic!("the page loads an unexpected file {other}"),
        }
    }

    // An unknown file is a 404 in the error shape; a token changes nothing.
    let (s, v) = app.call(reqwest::Method::GET, "/docs/nope.js", None, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let res = app.http.get(format!("{}/docs", app.base)).bearer_auth("nonsense").send().await;
    assert_eq!(res.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn the_document_declares_the_bearer_scheme_and_not_the_page() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    assert!(scheme["description"].as_str().unwrap().contains("admin token"));
    // Every operation but the probes asks for it, so "Authorize" applies to try-it-out.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let probe = path == "/healthz" || path == "/readyz";
            assert_eq!(op["security"].is_array(), !probe, "{method} {path}");
        }
        assert!(!path.starts_with("/docs"), "openapi.json lists {path}");
    }
}
