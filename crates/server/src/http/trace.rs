//! The span each request is logged in (the trace layer's), with the secrets a query string
//! can carry (`?access_token=` on `GET /v1/events`) replaced by `REDACTED`: debug-level logs
//! and log collectors never see a tenant's key.

use axum::http::{Request, Uri};
use tracing::Span;

/// Query parameters whose values are never logged.
const SECRET_PARAMS: &[&str] = &["access_token"];

/// `tower_http::trace::TraceLayer::make_span_with`: what `DefaultMakeSpan` records (method,
/// URI, version, at DEBUG), the URI redacted.
pub fn request_span<B>(req: &Request<B>) -> Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redacted(req.uri()),
        version = ?req.version(),
    )
}

/// The URI with the value of every secret query parameter replaced.
pub fn redacted(uri: &Uri) -> String {
    let Some(query) = uri.query() else { return uri.to_string() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            let decoded = percent_encoding::percent_decode_str(&name.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            if SECRET_PARAMS.contains(&decoded.as_str()) {
                format!("{name}=REDACTED")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_are_redacted_in_every_spelling_and_the_rest_is_kept() {
        let cases = [
            (
                "/v1/events?access_token=bzk_secret&types=a.*",
                "/v1/events?access_token=REDACTED&types=a.*",
            ),
            (
                "/v1/events?types=x&access%5Ftoken=bzk_secret",
                "/v1/events?types=x&access%5Ftoken=REDACTED",
            ),
            ("/v1/events?access_token", "/v1/events?access_token=REDACTED"),
            (
                "/v1/events?a=1&access_token=s1&access_token=s2",
                "/v1/events?a=1&access_token=REDACTED&access_token=REDACTED",
            ),
            ("/v1/messages?limit=5", "/v1/messages?limit=5"),
            ("/healthz", "/healthz"),
        ];
        for (uri, want) in cases {
            let got = redacted(&uri.parse().unwrap());
            assert_eq!(got, want, "{uri}");
            assert!(!got.contains("bzk_secret") && !got.contains("s1"), "{got}");
        }
    }
}
