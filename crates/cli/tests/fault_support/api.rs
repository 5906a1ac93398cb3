//! The HTTP calls of the fault driver. None panics: any gateway may be down at any moment, so
//! every call answers what happened (an answer, or none) and the caller decides.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// What a call got back.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The status and the JSON body (`Null` when the body was not JSON).
    Answered(u16, Value),
    /// No answer: refused connection, cut connection, timeout.
    NoAnswer(String),
}

impl Reply {
    pub fn ok(&self) -> Option<&Value> {
        match self {
            Reply::Answered(s, v) if (200..300).contains(s) => Some(v),
            _ => None,
        }
    }

    /// The API error code of a refusal (`error.code`), for reports.
    pub fn describe(&self) -> String {
        match self {
            Reply::Answered(s, v) => {
                let code = v["error"]["code"].as_str().unwrap_or("");
                format!("{s} {code}")
            }
            Reply::NoAnswer(e) => format!("no answer: {e}"),
        }
    }
}

/// The client every world uses: short connect timeout (a killed process refuses at once).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

pub async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Reply {
    let mut req = http.request(method, url).bearer_auth(token).timeout(Duration::from_secs(15));
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            match res.bytes().await {
                Ok(bytes) => {
                    Reply::Answered(status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                }
                Err(e) => Reply::NoAnswer(format!("{status} with a cut body: {e}")),
            }
        }
        Err(e) => Reply::NoAnswer(e.to_string()),
    }
}

/// A call that must succeed: the JSON body, or what went wrong in words.
pub async fn must(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let r = call(http, method.clone(), url, token, body).await;
    r.ok().cloned().ok_or_else(|| format!("{method} {url}: {}", r.describe()))
}

/// GETs every page of a `{"items", "next_cursor"}` listing.
pub async fn all_pages(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if url.contains('?') { '&' } else { '?' };
        let page_url = match &cursor {
            Some(c) => format!("{url}{sep}cursor={c}"),
            None => url.to_string(),
        };
        let v = must(http, Method::GET, &page_url, token, None).await?;
        out.extend(v["items"].as_array().cloned().unwrap_or_default());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(out),
        }
    }
}

/// Every kept event of the key's tenant, in id order: `GET /v1/events` from `Last-Event-ID: 0`,
/// read until the stream has been quiet for `quiet` after the replay (call it once the
/// gateway is settled, so nothing new is being recorded).
pub async fn read_event_log(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    quiet: Duration,
) -> Result<Vec<Value>, String> {
    use futures::StreamExt;
    let res = http
        .get(format!("{base}/v1/events"))
        .bearer_auth(token)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .map_err(|e| format!("GET /v1/events: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("GET /v1/events: {}", res.status()));
    }
    let mut body = res.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(quiet, body.next()).await {
            Err(_) => break, // quiet: the replay is over
            Ok(None) => return Err("the event stream ended".into()),
            Ok(Some(Err(e))) => return Err(format!("the event stream broke: {e}")),
            Ok(Some(Ok(c))) => c,
        };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let data: String = String::from_utf8_lossy(&block)
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                events.push(v);
            }
        }
    }
    Ok(events)
}
