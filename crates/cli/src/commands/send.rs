//! `bzapper send`: queue a text message (the pool rotates unless a number is named), print its
//! id, and with `--wait` follow it until it is sent or fails.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use super::{print, print_json};
use crate::client::{scalar, Client, Conn};

/// How often `--wait` looks at the message.
const POLL: Duration = Duration::from_millis(500);

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    conn: Conn,
    /// Recipient: a phone number (+5511999999999), a JID (…@s.whatsapp.net, …@lid) or a group
    /// (…@g.us).
    #[arg(long)]
    to: String,
    /// The message text.
    #[arg(long)]
    text: String,
    /// Send from this number (even while it warms up) instead of letting the pool rotate.
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
    /// Rotate among this pool's numbers (default `default`).
    #[arg(long)]
    pool: Option<String>,
    /// Mention this phone number or JID (repeat for several); write @<number> in the text
    /// where it should show.
    #[arg(long = "mention", value_name = "PHONE|JID")]
    mentions: Vec<String>,
    /// The same key within 24 h returns the first answer and sends nothing again.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Wait until the message is sent (exit 0) or fails (exit 1).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this many seconds (exit 1; the message stays queued).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    wait_timeout: u64,
    /// Print the API's JSON (the final message with --wait).
    #[arg(long)]
    json: bool,
}

/// Statuses after which nothing more happens to the message that `--wait` cares about.
const DONE: &[&str] = &["sent", "delivered", "read", "failed"];

pub async fn run(a: SendArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.conn)?;
    let mut body = json!({ "to": a.to, "text": a.text });
    if let Some(i) = &a.instance {
        body["instance_id"] = json!(i);
    }
    if let Some(p) = &a.pool {
        body["pool"] = json!(p);
    }
    if !a.mentions.is_empty() {
        body["mentions"] = json!(a.mentions);
    }
    let mut req = client.request(Method::POST, client.url(&["v1", "messages"]))?.json(&body);
    if let Some(k) = &a.idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let accepted = client.json(req).await?;
    let id = accepted["id"].as_str().map(str::to_string).unwrap_or_default();
    if !a.wait {
        return if a.json { print_json(&accepted) } else { print(&id) };
    }
    if !a.json {
        // The id first, so that a caller has it even when the wait fails.
        print(&id)?;
    }
    let deadline = Instant::now() + Duration::from_secs(a.wait_timeout);
    let message = loop {
        let m = client.get(&["v1", "messages", &id]).await?;
        if m["status"].as_str().is_some_and(|s| DONE.contains(&s)) {
            break m;
        }
        if Instant::now() >= deadline {
            bail!(
                "message {id} is still {} after {} s; it stays queued (GET /v1/messages/{id} \
                 tells its status later)",
                m["status"].as_str().unwrap_or("unknown"),
                a.wait_timeout
            );
        }
        tokio::time::sleep(POLL).await;
    };
    if a.json {
        print_json(&message)?;
    } else {
        let status = message["status"].as_str().unwrap_or_default();
        print(format!("{status} {}", field(&message, "instance_id")))?;
    }
    if message["status"] == "failed" {
        bail!("message {id} failed: {}", field(&message, "error"));
    }
    Ok(())
}

fn field(v: &Value, name: &str) -> String {
    match v.get(name) {
        None | Some(Value::Null) => "-".into(),
        Some(x) => scalar(x),
    }
}
