//! The web dashboard: a single page (`GET /`) and its static assets (`GET /assets/*`),
//! embedded in the binary, so the gateway serves its own UI with nothing to install and nothing
//! fetched at run or build time. The page is plain HTML, CSS and a few JavaScript modules (one
//! per view: `app.js` the numbers, `chats.js` the conversations, `campaigns.js`, `stats.js`
//! with `charts.js`; `views.js` the tabs); it signs in with a tenant API key the user types (kept in `sessionStorage`) and does
//! everything through the public API, so these routes need no auth and are not part of
//! `/openapi.json`.
//!
//! Caching: the page is revalidated on every load (`no-cache` with an ETag) and names its
//! assets with `?v=<version>`, a hash of every asset; an asset asked for with the current
//! version is cached for a year (`immutable`), so an upgraded gateway is never mixed with a
//! stale script. A strict Content-Security-Policy (`default-src 'self'`, no inline script or
//! style) makes an injected string inert even if one slipped past the page's escaping.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::http::extract::Path;
use crate::http::state::AppState;

/// The policy of every dashboard response. `img-src blob:` shows the QR code the page fetches
/// with its Authorization header; `connect-src 'self'` covers the API and the SSE stream.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");

/// The placeholder in `index.html` replaced by the asset version.
const VERSION_MARK: &str = "__ASSET_VERSION__";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/app.js"),
    },
    Asset {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/views.js"),
    },
    Asset {
        name: "campaigns.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/campaigns.js"),
    },
    Asset {
        name: "stats.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/stats.js"),
    },
    Asset {
        name: "chats.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/chats.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/charts.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../dashboard/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../dashboard/favicon.svg"),
    },
];

/// The hashes computed once: the asset version, the page with it filled in, and each ETag.
struct Built {
    version: String,
    index: Bytes,
    index_etag: String,
    asset_etags: Vec<String>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut all = Sha256::new();
        for a in ASSETS {
            all.update(a.name.as_bytes());
            all.update([0]);
            all.update(a.body);
        }
        let version = hex(&all.finalize())[..16].to_string();
        let index = Bytes::from(INDEX_HTML.replace(VERSION_MARK, &version));
        let index_etag = etag(&index);
        let asset_etags = ASSETS.iter().map(|a| etag(a.body)).collect();
        Built { version, index, index_etag, asset_etags }
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn etag(body: &[u8]) -> String {
    format!("\"{}\"", &hex(&Sha256::digest(body))[..32])
}

/// `GET /` and `GET /assets/{*path}`, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/assets/{*path}", get(asset))
}

pub(crate) fn matches_etag(headers: &HeaderMap, tag: &str) -> bool {
    headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*")
    })
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

/// The dashboard page.
pub async fn index(headers: HeaderMap) -> Response {
    let b = built();
    respond(&headers, &b.index_etag, "text/html; charset=utf-8", "no-cache", b.index.clone())
}

/// One embedded asset; an unknown name is a 404 in the API's error shape.
pub async fn asset(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let b = built();
    let Some(i) = ASSETS.iter().position(|a| a.name == path) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such asset").into_response();
    };
    let a = &ASSETS[i];
    let current = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv.strip_prefix("v=") == Some(b.version.as_str())));
    let cache = if current { "public, max-age=31536000, immutable" } else { "no-cache" };
    respond(&headers, &b.asset_etags[i], a.content_type, cache, Bytes::from_static(a.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_with_the_version() {
        let b = built();
        let index = std::str::from_utf8(&b.index).unwrap();
        assert!(!index.contains(VERSION_MARK));
        // charts.js is imported by stats.js (by path), not named by the page.
        for name in [
            "app.js",
            "views.js",
            "chats.js",
            "campaigns.js",
            "stats.js",
            "style.css",
            "favicon.svg",
        ] {
            let url = format!("/assets/{name}?v={}", b.version);
            assert!(index.contains(&url), "index.html does not load {url}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        // The CSP forbids them: an inline block would silently not run.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        assert!(!INDEX_HTML.contains(" onclick="));
    }

    #[test]
    fn etags_match_with_and_without_weak_prefix() {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("W/\"abc\", \"def\""));
        assert!(matches_etag(&h, "\"abc\""));
        assert!(matches_etag(&h, "\"def\""));
        assert!(!matches_etag(&h, "\"xyz\""));
    }
}
