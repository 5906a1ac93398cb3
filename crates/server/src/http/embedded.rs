//! A page embedded in the binary with its files, served with the same caching and security
//! headers wherever it is used (the dashboard, the API docs page): the files' version fills
//! the page's `?v=` links, the page is revalidated on every load (`no-cache` with an ETag),
//! and a file asked for with the current version is cached for a year (`immutable`).

use axum::body::Bytes;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;

/// The placeholder in a page replaced by its files' version.
pub const VERSION_MARK: &str = "__ASSET_VERSION__";

/// One embedded file.
pub struct EmbeddedFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// A page and its files, with the hashes computed once.
pub struct EmbeddedPage {
    files: &'static [EmbeddedFile],
    csp: &'static str,
    /// A hash of every file: the `?v=` of the page's links.
    pub version: String,
    /// The page with its version filled in.
    pub index: Bytes,
    index_etag: String,
    file_etags: Vec<String>,
}

impl EmbeddedPage {
    pub fn new(index_html: &str, files: &'static [EmbeddedFile], csp: &'static str) -> Self {
        let mut all = Sha256::new();
        for f in files {
            all.update(f.name.as_bytes());
            all.update([0]);
            all.update(f.body);
        }
        let version = hex(&all.finalize())[..16].to_string();
        let index = Bytes::from(index_html.replace(VERSION_MARK, &version));
        let index_etag = etag(&index);
        let file_etags = files.iter().map(|f| etag(f.body)).collect();
        EmbeddedPage { files, csp, version, index, index_etag, file_etags }
    }

    /// The page itself.
    pub fn page(&self, headers: &HeaderMap) -> Response {
        let index = self.index.clone();
        self.respond(headers, &self.index_etag, "text/html; charset=utf-8", "no-cache", index)
    }

    /// The file `name` (`query`: the request's query string, which may carry `v=`); an
    /// unknown name is a 404 in the API's error shape.
    pub fn file(&self, name: &str, query: Option<&str>, headers: &HeaderMap) -> Response {
        let Some(i) = self.files.iter().position(|f| f.name == name) else {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file")
                .into_response();
        };
        let f = &self.files[i];
        let current = query.is_some_and(|q| {
            q.split('&').any(|kv| kv.strip_prefix("v=") == Some(self.version.as_str()))
        });
        let cache = if current { "public, max-age=31536000, immutable" } else { "no-cache" };
        self.respond(
            headers,
            &self.file_etags[i],
            f.content_type,
            cache,
            Bytes::from_static(f.body),
        )
    }

    fn respond(
        &self,
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
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(self.csp));
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        res
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn etag(body: &[u8]) -> String {
    format!("\"{}\"", &hex(&Sha256::digest(body))[..32])
}

fn matches_etag(headers: &HeaderMap, tag: &str) -> bool {
    headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("W/\"abc\", \"def\""));
        assert!(matches_etag(&h, "\"abc\""));
        assert!(matches_etag(&h, "\"def\""));
        assert!(!matches_etag(&h, "\"xyz\""));
    }
}
