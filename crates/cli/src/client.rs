//! The HTTP client the `bzapper` client subcommands share: base URL and token, JSON calls, and
//! errors that say what went wrong (the API's own error body, or which URL could not be reached).

use std::fmt;
use std::time::Duration;

use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;

/// How long an ordinary call may take; the event stream has no such limit.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gateway is and how to authenticate, shared by every client subcommand.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "BZAPPER_URL",
        default_value = "http://127.0.0.1:8080",
        global = true,
        value_name = "URL",
        help_heading = "Gateway"
    )]
    pub url: String,
    /// A tenant API key (the admin token for `cluster`).
    #[arg(
        long,
        env = "BZAPPER_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN",
        help_heading = "Gateway"
    )]
    pub token: Option<String>,
}

/// Everything a call can fail with.
#[derive(Debug)]
pub enum ClientError {
    /// The gateway answered with a non-2xx status.
    Api(ApiError),
    /// Nothing answered at the URL (refused, unknown host, TLS or connect timeout).
    Unreachable { url: String, cause: String },
    /// The connection broke or timed out, or the answer was not what the API promises.
    Transport { what: String, cause: String },
    /// `--url` is not an http(s) URL.
    BadUrl(String),
    /// No `--token` and no `BZAPPER_TOKEN`.
    NoToken,
}

/// A non-2xx answer, from the docs/api.md error body `{"error": {"code", "message", ...}}` when the
/// gateway sent one.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The request, as `GET /v1/instances/x`.
    pub request: String,
    pub code: Option<String>,
    pub message: String,
    /// Any other fields of the error object, shown as `key=value`.
    pub extra: Vec<(String, String)>,
}

impl ClientError {
    /// The API error code (`not_found`, `not_pending`, ...) when the gateway answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api(e) => e.code.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Api(e) => {
                match &e.code {
                    Some(code) => write!(f, "{code}: {}", e.message)?,
                    None => write!(f, "{}", e.message)?,
                }
                for (k, v) in &e.extra {
                    write!(f, " ({k}={v})")?;
                }
                write!(f, " [HTTP {} from {}]", e.status.as_u16(), e.request)
            }
            ClientError::Unreachable { url, cause } => write!(
                f,
                "could not reach the gateway at {url}: {cause}. Is `bzapper serve` running \
                 there? Point --url (or BZAPPER_URL) at it"
            ),
            ClientError::Transport { what, cause } => write!(f, "{what}: {cause}"),
            ClientError::BadUrl(url) => {
                write!(f, "`{url}` is not a gateway URL; pass one like http://127.0.0.1:8080")
            }
            ClientError::NoToken => write!(
                f,
                "no token: pass --token or set BZAPPER_TOKEN (a tenant API key; the admin token \
                 for `bzapper cluster`)"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A client for one gateway.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    pub fn new(conn: &Conn) -> Result<Self> {
        let base = Url::parse(&conn.url).map_err(|_| ClientError::BadUrl(conn.url.clone()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::BadUrl(conn.url.clone()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("bzapper-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                what: "the HTTP client could not start".into(),
                cause: root_cause(&e),
            })?;
        Ok(Client { http, base, token: conn.token.clone().filter(|t| !t.is_empty()) })
    }

    /// `base` joined with `segments`, each percent-encoded as one path segment (ids are
    /// opaque), keeping any path prefix the base has (a gateway behind a reverse proxy).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("checked in new").pop_if_empty().extend(segments);
        url
    }

    /// The base URL as given, for messages.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// A request with the token, to `url`.
    pub fn request(&self, method: Method, url: Url) -> Result<RequestBuilder> {
        let token = self.token.as_deref().ok_or(ClientError::NoToken)?;
        Ok(self.http.request(method, url).bearer_auth(token))
    }

    /// Sends `req` and returns the response when it is a 2xx; any other status becomes
    /// [`ClientError::Api`]. No overall timeout: the caller sets one when it wants one.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let (client, req) = req.build_split();
        let req = req.map_err(|e| ClientError::Transport {
            what: "the request could not be built".into(),
            cause: root_cause(&e),
        })?;
        let label = format!("{} {}", req.method(), req.url().path());
        let res = client.execute(req).await.map_err(|e| self.transport_error(&label, &e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        Err(ClientError::Api(parse_error(status, label, &body)))
    }

    /// A JSON call: `body` (when given) as the request, the answer parsed as JSON (`null` for
    /// an empty 2xx answer such as 204).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut req = self.request(method, self.url(segments))?;
        if let Some(b) = body {
            req = req.json(b);
        }
        self.json(req).await
    }

    /// Sends `req` (with the ordinary timeout) and parses the 2xx answer as JSON (`null` when
    /// empty).
    pub async fn json(&self, req: RequestBuilder) -> Result<Value> {
        let req = req.timeout(CALL_TIMEOUT).header(reqwest::header::ACCEPT, "application/json");
        let res = self.send(req).await?;
        let label = format!("the answer from {}", res.url().path());
        let bytes = res.bytes().await.map_err(|e| ClientError::Transport {
            what: format!("reading {label} failed"),
            cause: root_cause(&e),
        })?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport {
            what: format!("{label} is not JSON"),
            cause: e.to_string(),
        })
    }

    pub async fn get(&self, segments: &[&str]) -> Result<Value> {
        self.call(Method::GET, segments, None).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value> {
        self.call(Method::POST, segments, Some(body)).await
    }

    pub fn transport_error(&self, label: &str, e: &reqwest::Error) -> ClientError {
        if e.is_connect() {
            ClientError::Unreachable { url: self.base().to_string(), cause: root_cause(e) }
        } else if e.is_timeout() {
            ClientError::Transport {
                what: format!("{label} to {} timed out", self.base()),
                cause: root_cause(e),
            }
        } else {
            ClientError::Transport {
                what: format!("{label} to {} failed", self.base()),
                cause: root_cause(e),
            }
        }
    }
}

/// The error body, or failing that the status and the start of whatever the body was (a proxy's
/// HTML page, say).
fn parse_error(status: StatusCode, request: String, body: &str) -> ApiError {
    let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_object).cloned());
    match parsed {
        Some(obj) => {
            let code = obj.get("code").and_then(Value::as_str).map(str::to_string);
            let message = obj
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the gateway gave no message")
                .to_string();
            let extra = obj
                .iter()
                .filter(|(k, _)| *k != "code" && *k != "message")
                .map(|(k, v)| (k.clone(), scalar(v)))
                .collect();
            ApiError { status, request, code, message, extra }
        }
        None => {
            let text: String = body.trim().chars().take(200).collect();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_lowercase()
            } else {
                text
            };
            ApiError { status, request, code: None, message, extra: Vec::new() }
        }
    }
}

/// A JSON value as text: strings bare, everything else as JSON.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The innermost cause of an error, e.g. "Connection refused (os error 111)", which is what a
/// person needs; reqwest's own message is only "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<Client> {
        Client::new(&Conn { url: url.into(), token: Some("t".into()) })
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_ids() {
        let c = client("http://h:1/gw/").unwrap();
        assert_eq!(
            c.url(&["v1", "instances", "a/b c"]).as_str(),
            "http://h:1/gw/v1/instances/a%2Fb%20c"
        );
        let c = client("http://h:1").unwrap();
        assert_eq!(c.url(&["v1", "cluster"]).as_str(), "http://h:1/v1/cluster");
        assert!(matches!(client("localhost:8080"), Err(ClientError::BadUrl(_))));
        assert!(matches!(client("nonsense"), Err(ClientError::BadUrl(_))));
    }

    #[test]
    fn error_bodies_are_shown_with_their_code_and_extra_fields() {
        let e = parse_error(
            StatusCode::CONFLICT,
            "POST /v1/messages".into(),
            r#"{"error":{"code":"no_number_available","message":"no number","pool":"vip"}}"#,
        );
        let shown = ClientError::Api(e).to_string();
        assert_eq!(
            shown,
            "no_number_available: no number (pool=vip) [HTTP 409 from POST /v1/messages]"
        );
        let e = parse_error(StatusCode::BAD_GATEWAY, "GET /v1/x".into(), "<html>bad</html>");
        assert_eq!(e.code, None);
        assert_eq!(e.message, "<html>bad</html>");
        let e = parse_error(StatusCode::BAD_GATEWAY, "GET /v1/x".into(), "");
        assert_eq!(e.message, "bad gateway");
    }
}
