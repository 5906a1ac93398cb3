//! `bzapper events tail`: follow the tenant's event stream (`GET /v1/events`, Server-Sent
//! Events), one line per event or the raw JSON envelope, reconnecting by itself and resuming
//! after the last event seen with `Last-Event-ID`, so nothing is skipped or printed twice.

use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::header::ACCEPT;
use reqwest::Method;
use serde_json::Value;

use super::{print, short_time};
use crate::client::{scalar, Client, ClientError, Conn};
use crate::sse::{Frame, Parser};

/// The gateway sends a heartbeat every 15 s: this long without a byte means the connection is
/// dead even if the socket does not know it yet.
const IDLE: Duration = Duration::from_secs(45);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct EventsArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Follow the events live, one line each, until Ctrl-C (or --count events).
    Tail(TailArgs),
}

#[derive(Args)]
struct TailArgs {
    /// Only this number's events.
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
    /// Comma-separated types or `prefix.*` patterns, e.g. `instance.*,message.received`.
    #[arg(long, value_name = "TYPES")]
    types: Option<String>,
    /// Print each event's JSON envelope on one line instead.
    #[arg(long)]
    json: bool,
    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Start after this event id instead of now (`0`: every event still kept).
    #[arg(long, value_name = "EVENT_ID")]
    since: Option<u64>,
}

pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.conn)?;
    match args.command {
        EventsCommand::Tail(t) => tail(&client, t).await,
    }
}

async fn tail(client: &Client, t: TailArgs) -> anyhow::Result<()> {
    if t.count == Some(0) {
        return Ok(());
    }
    let mut last_id: Option<String> = t.since.map(|s| s.to_string());
    let mut printed = 0u64;
    let mut backoff = FIRST_BACKOFF;
    let mut connected_once = false;
    loop {
        let mut req = client
            .request(Method::GET, client.url(&["v1", "events"]))?
            .header(ACCEPT, "text/event-stream");
        if let Some(i) = &t.instance {
            req = req.query(&[("instance_id", i)]);
        }
        if let Some(types) = &t.types {
            req = req.query(&[("types", types)]);
        }
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id);
        }
        let why = match client.send(req).await {
            Ok(mut res) => {
                match (&last_id, connected_once) {
                    (_, false) => {
                        eprintln!("following {}/v1/events (Ctrl-C to stop)", client.base())
                    }
                    (Some(id), true) => eprintln!("reconnected; resuming after event {id}"),
                    (None, true) => eprintln!("reconnected"),
                }
                connected_once = true;
                backoff = FIRST_BACKOFF;
                let mut parser = Parser::new();
                loop {
                    let chunk = match tokio::time::timeout(IDLE, res.chunk()).await {
                        Err(_) => break format!("nothing heard for {} s", IDLE.as_secs()),
                        Ok(Err(e)) => {
                            break client.transport_error("the event stream", &e).to_string()
                        }
                        Ok(Ok(None)) => break "the gateway closed the stream".to_string(),
                        Ok(Ok(Some(chunk))) => chunk,
                    };
                    for frame in parser.push(&chunk) {
                        if frame.id.is_some() {
                            last_id.clone_from(&frame.id);
                        }
                        print(if t.json { frame.data.clone() } else { line(&frame) })?;
                        printed += 1;
                        if t.count.is_some_and(|n| printed >= n) {
                            return Ok(());
                        }
                    }
                }
            }
            // A refusal (bad token, unknown type) will not change by retrying; nor is there
            // anything to resume when the very first connection fails.
            Err(ClientError::Api(e)) if e.status.is_client_error() => {
                return Err(ClientError::Api(e).into())
            }
            Err(e) if !connected_once => return Err(e.into()),
            Err(ClientError::Unreachable { url, cause }) => format!("{url}: {cause}"),
            Err(e) => e.to_string(),
        };
        eprintln!("event stream interrupted ({why}); reconnecting in {} ms", backoff.as_millis());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One event as a line: id, time, type, instance, and a summary of its data.
fn line(frame: &Frame) -> String {
    let Ok(e) = serde_json::from_str::<Value>(&frame.data) else {
        return format!("{}  {}", frame.event, frame.data);
    };
    let kind = e["type"].as_str().unwrap_or(&frame.event);
    let summary = summary(kind, &e["data"]);
    format!(
        "{}  {}  {kind}  {}  {summary}",
        e["id"].as_str().unwrap_or("-"),
        e["created_at"].as_str().map(short_time).unwrap_or_default(),
        e["instance_id"].as_str().unwrap_or("-"),
    )
    .trim_end()
    .to_string()
}

/// The data of an event in a few words: `key=value` pairs, the interesting ones first, with
/// message text and the QR payload shortened.
fn summary(kind: &str, data: &Value) -> String {
    if kind == "message.received" {
        let from = data["sender"]["phone"]
            .as_str()
            .or(data["sender"]["jid"].as_str())
            .unwrap_or("someone");
        let mut s = format!("from {from}");
        if data["chat"]["type"] == "group" {
            s.push_str(&format!(" in {}", data["chat"]["jid"].as_str().unwrap_or("a group")));
        }
        if let Some(option) = data["menu_reply"]["option"].as_u64() {
            s.push_str(&format!(" (menu option {option})"));
        }
        if data["mentions_me"] == true {
            s.push_str(" (mentions me)");
        }
        s.push_str(&format!(": {:?}", data["text"].as_str().unwrap_or("")));
        return s;
    }
    let Some(obj) = data.as_object() else { return scalar(data) };
    const FIRST: &[&str] = &["status", "reason", "message_id", "score", "in_rotation", "phone"];
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()));
    keys.into_iter()
        .filter(|k| *k != "instance_id")
        .filter_map(|k| {
            let v = &obj[k.as_str()];
            let shown = match (k.as_str(), v) {
                (_, Value::Null) => return None,
                // The raw QR payload is long and meaningless to a person.
                ("code", Value::String(c)) => {
                    format!("{}…", c.chars().take(12).collect::<String>())
                }
                ("expires_at", Value::String(t)) => short_time(t),
                (_, Value::String(s)) if s.contains(char::is_whitespace) || s.is_empty() => {
                    format!("{s:?}")
                }
                _ => scalar(v),
            };
            Some(format!("{k}={shown}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(v: Value) -> Frame {
        Frame { id: Some("9".into()), event: "x".into(), data: v.to_string() }
    }

    #[test]
    fn events_read_as_one_line() {
        let connected = frame(json!({
            "id": "9", "type": "instance.connected", "tenant_id": "ten_1", "instance_id": "ins_1",
            "created_at": "2026-11-26T14:00:00.5Z",
            "data": {"status": "connected", "reason": null, "detail": null, "phone": "+5511999999999",
                     "jid": "5511999999999@s.whatsapp.net", "lid": "1@lid"}
        }));
        assert_eq!(
            line(&connected),
            "9  2026-11-26 14:00:00Z  instance.connected  ins_1  status=connected \
             phone=+5511999999999 jid=5511999999999@s.whatsapp.net lid=1@lid"
        );
        let failed = json!({"message_id": "msg_1", "status": "failed", "instance_id": "ins_1",
                            "error": "not on whatsapp"});
        assert_eq!(
            summary("message.status", &failed),
            "status=failed message_id=msg_1 error=\"not on whatsapp\""
        );
        let received = json!({"chat": {"jid": "1@g.us", "type": "group"},
                              "sender": {"phone": "+551188", "jid": "551188@s.whatsapp.net"},
                              "text": "hi \"you\"", "mentions_me": true});
        assert_eq!(
            summary("message.received", &received),
            "from +551188 in 1@g.us (mentions me): \"hi \\\"you\\\"\""
        );
        let qr =
            json!({"code": "2@abcdefghijklmnopqrstuvwxyz", "expires_at": "2026-11-26T14:01:00Z"});
        assert_eq!(
            summary("instance.qr", &qr),
            "code=2@abcdefghij… expires_at=2026-11-26 14:01:00Z"
        );
    }
}
