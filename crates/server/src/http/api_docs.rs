//! The API docs page: Swagger UI at `GET /docs` over the served `/openapi.json`, with
//! "Authorize" taking a bearer token (a tenant API key or the admin token) for try-it-out
//! against this same gateway. Its files are embedded in the binary: Swagger UI's own, copied at
//! build time from the release the `utoipa-swagger-ui-vendored` crate carries (see `build.rs`),
//! and our page and initializer (`api-docs/`); nothing is fetched at run or build time.
//!
//! No auth: the page shows only the public OpenAPI document; every call it makes carries the
//! token the user typed. Caching is the dashboard's: the page is revalidated on every load and
//! names its files with `?v=<hash of them all>`, which are then cached for a year.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::http::dashboard::{etag, hex, matches_etag};
use crate::http::error::ApiError;
use crate::http::extract::Path;
use crate::http::state::AppState;

/// The dashboard's policy, with what Swagger UI needs: `img-src data:` for the icons its
/// stylesheet inlines. Swagger UI sets styles through the DOM (allowed), never inline markup,
/// and the page's script is a file, so neither `unsafe-inline` nor `unsafe-eval` is needed
/// (the browser test, `tests/browser/docs.mjs`, fails on any CSP violation).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../api-docs/index.html");

/// The placeholder in `index.html` replaced by the files' version.
const VERSION_MARK: &str = "__ASSET_VERSION__";

struct File {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Swagger UI's files, as `build.rs` copied them into `OUT_DIR`.
macro_rules! swagger_ui_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

const FILES: &[File] = &[
    File {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        body: swagger_ui_file!("swagger-ui-bundle.js"),
    },
    File {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: swagger_ui_file!("swagger-ui.css"),
    },
    File {
        name: "favicon-32x32.png",
        content_type: "image/png",
        body: swagger_ui_file!("favicon-32x32.png"),
    },
    File {
        name: "init.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../api-docs/init.js"),
    },
];

/// The hashes computed once: the files' version, the page with it filled in, and each ETag.
struct Built {
    version: String,
    index: Bytes,
    index_etag: String,
    file_etags: Vec<String>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut all = Sha256::new();
        for f in FILES {
            all.update(f.name.as_bytes());
            all.update([0]);
            all.update(f.body);
        }
        let version = hex(&all.finalize())[..16].to_string();
        let index = Bytes::from(INDEX_HTML.replace(VERSION_MARK, &version));
        let index_etag = etag(&index);
        let file_etags = FILES.iter().map(|f| etag(f.body)).collect();
        Built { version, index, index_etag, file_etags }
    })
}

/// `GET /docs` (and `/docs/`) and `GET /docs/{file}`, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs", get(index))
        .route("/docs/", get(index))
        .route("/docs/{file}", get(file))
}

fn respond(
    headers: &HeaderMap,
    tag: &str,
    content_type: &'static str,
    cache: &'static str,
    body: Bytes,
) -> Response {
    let mut res = if matches_etag(headers, tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(ETAG, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// The docs page.
pub async fn index(headers: HeaderMap) -> Response {
    let b = built();
    respond(&headers, &b.index_etag, "text/html; charset=utf-8", "no-cache", b.index.clone())
}

/// One embedded file; an unknown name is a 404 in the API's error shape.
pub async fn file(
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let b = built();
    let Some(i) = FILES.iter().position(|f| f.name == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response();
    };
    let f = &FILES[i];
    let current = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv.strip_prefix("v=") == Some(b.version.as_str())));
    let cache = if current { "public, max-age=31536000, immutable" } else { "no-cache" };
    respond(&headers, &b.file_etags[i], f.content_type, cache, Bytes::from_static(f.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_file_with_the_version() {
        let b = built();
        let index = std::str::from_utf8(&b.index).unwrap();
        assert!(!index.contains(VERSION_MARK));
        for f in FILES {
            let url = format!("/docs/{}?v={}", f.name, b.version);
            assert!(index.contains(&url), "index.html does not load {url}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        // The CSP forbids them: an inline block would silently not run.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
    }

    #[test]
    fn the_initializer_loads_the_served_document() {
        let init = std::str::from_utf8(FILES.iter().find(|f| f.name == "init.js").unwrap().body);
        assert!(init.unwrap().contains("url: \"/openapi.json\""));
    }

    #[test]
    fn swagger_ui_is_embedded_whole() {
        let bundle = FILES.iter().find(|f| f.name == "swagger-ui-bundle.js").unwrap();
        assert!(bundle.body.len() > 1_000_000, "{} bytes", bundle.body.len());
        assert!(std::str::from_utf8(bundle.body).unwrap().contains("SwaggerUIBundle"));
    }
}
