//! The dashboard's static files: the page with its Content-Security-Policy, the assets with
//! their content types and caching, 404 for an unknown asset, and none of it in /openapi.json.

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

use crate::helpers::TestApp;

/// The `?v=` version the page puts on its asset URLs.
fn asset_version(html: &str) -> String {
    let at =
        html.find("/assets/app.js?v=").expect("the page loads app.js") + "/assets/app.js?v=".len();
    html[at..].chars().take_while(char::is_ascii_alphanumeric).collect()
}

#[tokio::test]
async fn the_page_is_served_at_the_root_with_a_strict_csp() {
    let app = TestApp::spawn().await;
    let res = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h[CACHE_CONTROL], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let etag = h[ETAG].to_str().unwrap().to_string();
    let html = res.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"), "{}", &html[..60]);
    assert!(html.contains("<title>bZapper</title>"));
    assert!(!html.contains("__ASSET_VERSION__"));
    assert_eq!(asset_version(&html).len(), 16, "{html}");

    // Revalidation answers 304 with no body.
    let res =
        app.http.get(format!("{}/", app.base)).header(IF_NONE_MATCH, &etag).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert!(res.bytes().await.unwrap().is_empty());

    // No auth is needed, and a token does not change anything.
    let res = app.http.get(format!("{}/", app.base)).bearer_auth("nonsense").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_assets_are_served_with_their_content_types() {
    let app = TestApp::spawn().await;
    let html = app.http.get(format!("{}/", app.base)).send().await.unwrap().text().await.unwrap();
    let v = asset_version(&html);
    for (name, ctype, needle) in [
        ("app.js", "text/javascript; charset=utf-8", "EventSource"),
        ("style.css", "text/css; charset=utf-8", "prefers-color-scheme"),
        ("favicon.svg", "image/svg+xml", "<svg"),
    ] {
        // With the current version: cached for good.
        let res = app.http.get(format!("{}/assets/{name}?v={v}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(res.headers()[CONTENT_TYPE], ctype, "{name}");
        assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable", "{name}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(res.headers().contains_key(CONTENT_SECURITY_POLICY));
        let etag = res.headers()[ETAG].clone();
        let body = res.text().await.unwrap();
        assert!(body.contains(needle), "{name} lacks {needle}");
        assert!(html.contains(&format!("/assets/{name}?v={v}")), "the page does not load {name}");

        // Without it (or with an old one): revalidated each time, by ETag.
        let res = app.http.get(format!("{}/assets/{name}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CACHE_CONTROL], "no-cache");
        let res = app
            .http
            .get(format!("{}/assets/{name}?v=0000", app.base))
            .header(IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{name}");
    }

    // HEAD works like GET without a body.
    let res = app.http.head(format!("{}/assets/app.js", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
}

#[tokio::test]
async fn an_unknown_asset_is_404_in_the_api_error_shape() {
    let app = TestApp::spawn().await;
    for path in [
        "/assets/nope.js",
        "/assets/",
        "/assets/app.js/x",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e%2fCargo.toml",
        "/index.html",
    ] {
        let (s, v) = app.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{path}: {v}");
    }
    // The page and assets are read-only.
    let (s, v) = app.call(reqwest::Method::POST, "/", None, None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
}

#[tokio::test]
async fn the_dashboard_is_not_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let (s, doc) = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/v1/instances"), "the document lists the API");
    for p in paths.keys() {
        assert!(p != "/" && !p.starts_with("/assets"), "openapi.json lists {p}");
    }
}
