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

use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::http::embedded::{EmbeddedFile, EmbeddedPage};
use crate::http::extract::Path;
use crate::http::state::AppState;

/// The policy of every dashboard response. `img-src blob:` shows the QR code the page fetches
/// with its Authorization header; `connect-src 'self'` covers the API and the SSE stream.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");

const ASSETS: &[EmbeddedFile] = &[
    EmbeddedFile {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/app.js"),
    },
    EmbeddedFile {
        name: "views.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/views.js"),
    },
    EmbeddedFile {
        name: "campaigns.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/campaigns.js"),
    },
    EmbeddedFile {
        name: "stats.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/stats.js"),
    },
    EmbeddedFile {
        name: "chats.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/chats.js"),
    },
    EmbeddedFile {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../dashboard/charts.js"),
    },
    EmbeddedFile {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../dashboard/style.css"),
    },
    EmbeddedFile {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../dashboard/favicon.svg"),
    },
];

fn built() -> &'static EmbeddedPage {
    static BUILT: OnceLock<EmbeddedPage> = OnceLock::new();
    BUILT.get_or_init(|| EmbeddedPage::new(INDEX_HTML, ASSETS, CSP))
}

/// `GET /` and `GET /assets/{*path}`, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/assets/{*path}", get(asset))
}

/// The dashboard page.
pub async fn index(headers: HeaderMap) -> Response {
    built().page(&headers)
}

/// One embedded asset; an unknown name is a 404 in the API's error shape.
pub async fn asset(
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    built().file(&path, query.as_deref(), &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_with_the_version() {
        let b = built();
        let index = std::str::from_utf8(&b.index).unwrap();
        assert!(!index.contains(crate::http::embedded::VERSION_MARK));
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
}
