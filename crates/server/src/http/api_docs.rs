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

use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::http::embedded::{EmbeddedFile, EmbeddedPage};
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

/// Swagger UI's files, as `build.rs` copied them into `OUT_DIR`.
macro_rules! swagger_ui_file {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

const FILES: &[EmbeddedFile] = &[
    EmbeddedFile {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        body: swagger_ui_file!("swagger-ui-bundle.js"),
    },
    EmbeddedFile {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: swagger_ui_file!("swagger-ui.css"),
    },
    EmbeddedFile {
        name: "favicon-32x32.png",
        content_type: "image/png",
        body: swagger_ui_file!("favicon-32x32.png"),
    },
    EmbeddedFile {
        name: "init.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../api-docs/init.js"),
    },
];

fn built() -> &'static EmbeddedPage {
    static BUILT: OnceLock<EmbeddedPage> = OnceLock::new();
    BUILT.get_or_init(|| EmbeddedPage::new(INDEX_HTML, FILES, CSP))
}

/// `GET /docs` (and `/docs/`) and `GET /docs/{file}`, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs", get(index))
        .route("/docs/", get(index))
        .route("/docs/{file}", get(file))
}

/// The docs page.
pub async fn index(headers: HeaderMap) -> Response {
    built().page(&headers)
}

/// One embedded file; an unknown name is a 404 in the API's error shape.
pub async fn file(
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    built().file(&name, query.as_deref(), &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_file_with_the_version() {
        let b = built();
        let index = std::str::from_utf8(&b.index).unwrap();
        assert!(!index.contains(crate::http::embedded::VERSION_MARK));
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
