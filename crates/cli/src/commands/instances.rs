//! `bzapper instances …`: list, show, create, link (QR in the terminal), connect, disconnect,
//! log out and delete numbers.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{or_dash, print, print_json, short_time};
use crate::client::{Client, Conn};
use crate::qr::{self, Ink};
use crate::table;

/// How often `instances qr` looks at the number while it waits for the scan.
const POLL: Duration = Duration::from_secs(1);

#[derive(Args)]
pub struct InstancesArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: InstancesCommand,
}

#[derive(Subcommand)]
enum InstancesCommand {
    /// The numbers as a table: id, name, phone, pool, status, reason, health, sent today.
    #[command(visible_alias = "ls")]
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One number in detail.
    #[command(visible_alias = "show")]
    Get {
        /// Instance id.
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a number. It starts at once and waits for its QR code to be scanned; prints its id.
    Create(CreateArgs),
    /// Show the number's QR code in the terminal, redrawn as it rotates, until the number is
    /// linked (exit 0), stops waiting (exit 1) or --timeout passes (exit 1).
    Qr {
        /// Instance id.
        id: String,
        #[command(flatten)]
        qr: QrOptions,
    },
    /// Start the number (a QR code when it has no session).
    Connect {
        /// Instance id.
        id: String,
    },
    /// Stop the number and keep its session (reason `stopped`).
    Disconnect {
        /// Instance id.
        id: String,
    },
    /// Unlink the number and wipe its session (reason `logged_out`).
    Logout {
        /// Instance id.
        id: String,
    },
    /// Log the number out, wipe its session and delete it.
    Delete {
        /// Instance id.
        id: String,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// A name, unique within the tenant (1 to 64 characters).
    #[arg(long)]
    name: String,
    /// The pool it sends for (default `default`).
    #[arg(long)]
    pool: Option<String>,
    /// Days of warming after the first connection (0 to 60; the gateway's default is 5).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=60))]
    warming_days: Option<u32>,
    /// Proxy for its connection: socks5://user:pass@host:port or http://host:port.
    #[arg(long)]
    proxy: Option<String>,
    /// Then show its QR code and wait until it is linked, as `instances qr` does.
    #[arg(long)]
    qr: bool,
    #[command(flatten)]
    qr_options: QrOptions,
}

#[derive(Args, Clone)]
struct QrOptions {
    /// Give up waiting for the scan after this many seconds.
    #[arg(long, default_value_t = 180, value_name = "SECS")]
    timeout: u64,
    /// Print the current code once and exit, without waiting.
    #[arg(long)]
    once: bool,
    /// Draw the dark modules instead of the light ones when not drawing in colour (output not a
    /// terminal, or NO_COLOR set): for a light background.
    #[arg(long)]
    invert: bool,
}

/// The parts of the API's instance object the tables show.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Instance {
    id: String,
    name: String,
    pool: String,
    status: String,
    reason: Option<String>,
    detail: Option<String>,
    phone: Option<String>,
    jid: Option<String>,
    lid: Option<String>,
    warming: Warming,
    health: Health,
    proxy: Option<String>,
    stats: Stats,
    created_at: String,
    connected_at: Option<String>,
    /// Why it could not send now (`null`: it could); absent from older gateways.
    #[serde(default)]
    resting: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Warming {
    days: u32,
    until: Option<String>,
    active: bool,
    rewarm_until: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Health {
    score: u8,
    in_rotation: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Stats {
    sent_today: u64,
    received_today: u64,
}

#[derive(Deserialize)]
struct Qr {
    code: String,
    expires_at: DateTime<Utc>,
}

pub async fn run(args: InstancesArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.conn)?;
    match args.command {
        InstancesCommand::List { json } => list(&client, json).await,
        InstancesCommand::Get { id, json } => {
            let v = client.get(&["v1", "instances", &id]).await?;
            if json {
                return print_json(&v);
            }
            print(details(&serde_json::from_value(v)?))
        }
        InstancesCommand::Create(a) => create(&client, a).await,
        InstancesCommand::Qr { id, qr } => show_qr(&client, &id, &qr).await,
        InstancesCommand::Connect { id } => action(&client, &id, "connect").await,
        InstancesCommand::Disconnect { id } => action(&client, &id, "disconnect").await,
        InstancesCommand::Logout { id } => action(&client, &id, "logout").await,
        InstancesCommand::Delete { id } => {
            client.call(Method::DELETE, &["v1", "instances", &id], None).await?;
            print(format!("deleted {id}"))
        }
    }
}

async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let v = client.get(&["v1", "instances"]).await?;
    if json {
        return print_json(&v);
    }
    let items: Vec<Instance> = serde_json::from_value(v["items"].clone())?;
    if items.is_empty() {
        eprintln!("no instances yet; add one with `bzapper instances create --name NAME --qr`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.id.clone(),
                i.name.clone(),
                or_dash(i.phone.as_deref()),
                i.pool.clone(),
                i.status.clone(),
                or_dash(i.reason.as_deref()),
                health(&i.health),
                i.stats.sent_today.to_string(),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "PHONE", "POOL", "STATUS", "REASON", "HEALTH", "SENT TODAY"];
    print(table::render(&header, &rows).trim_end())
}

/// `92`, or `35 (out)` when the number is out of rotation.
fn health(h: &Health) -> String {
    if h.in_rotation {
        h.score.to_string()
    } else {
        format!("{} (out)", h.score)
    }
}

fn details(i: &Instance) -> String {
    let warming = match (&i.warming.until, i.warming.active) {
        (Some(until), true) => format!("{} days, until {}", i.warming.days, short_time(until)),
        (Some(until), false) => format!("{} days, done {}", i.warming.days, short_time(until)),
        (None, _) => format!("{} days, from the first connection", i.warming.days),
    };
    let warming = match &i.warming.rewarm_until {
        Some(until) => format!("{warming}; re-warming until {}", short_time(until)),
        None => warming,
    };
    let rotation = if i.health.in_rotation { "in rotation" } else { "out of rotation" };
    let rows = [
        ("id", i.id.clone()),
        ("name", i.name.clone()),
        ("pool", i.pool.clone()),
        ("status", i.status.clone()),
        ("reason", or_dash(i.reason.as_deref())),
        ("detail", or_dash(i.detail.as_deref())),
        ("phone", or_dash(i.phone.as_deref())),
        ("jid", or_dash(i.jid.as_deref())),
        ("lid", or_dash(i.lid.as_deref())),
        ("health", format!("{} ({rotation})", i.health.score)),
        ("warming", warming),
        ("resting", i.resting.clone().unwrap_or_else(|| "no (can send now)".into())),
        ("proxy", or_dash(i.proxy.as_deref())),
        ("today", format!("{} sent, {} received", i.stats.sent_today, i.stats.received_today)),
        ("created", short_time(&i.created_at)),
        ("connected", i.connected_at.as_deref().map(short_time).unwrap_or_else(|| "-".into())),
    ];
    let rows: Vec<Vec<String>> = rows.into_iter().map(|(k, v)| vec![format!("{k}:"), v]).collect();
    // No header: a two-column table whose first "row" is the id line.
    let text = table::render(&["", ""], &rows);
    text.lines().skip(1).collect::<Vec<_>>().join("\n")
}

async fn create(client: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let mut body = json!({ "name": a.name });
    if let Some(p) = &a.pool {
        body["pool"] = json!(p);
    }
    if let Some(d) = a.warming_days {
        body["warming_days"] = json!(d);
    }
    if let Some(p) = &a.proxy {
        body["proxy"] = json!(p);
    }
    let created: Instance =
        serde_json::from_value(client.post(&["v1", "instances"], &body).await?)?;
    // The id alone on stdout, for `ID=$(bzapper instances create …)`; the rest is for people.
    print(&created.id)?;
    if a.qr {
        return show_qr(client, &created.id, &a.qr_options).await;
    }
    eprintln!(
        "{} ({}) is {}; show its QR code with `bzapper instances qr {}`",
        created.name, created.id, created.status, created.id
    );
    Ok(())
}

async fn action(client: &Client, id: &str, what: &str) -> anyhow::Result<()> {
    let v = client.post(&["v1", "instances", id, what], &json!({})).await?;
    let i: Instance = serde_json::from_value(v)?;
    match &i.reason {
        Some(r) => print(format!("{}  {} ({r})", i.id, i.status)),
        None => print(format!("{}  {}", i.id, i.status)),
    }
}

/// How the code is drawn: black on white with ANSI colours on a terminal (scans on any theme),
/// plain blocks otherwise.
struct Drawing {
    colour: bool,
    clear: bool,
    ink: Ink,
}

impl Drawing {
    fn for_stdout(invert: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        let colour = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let ink = if colour || invert { Ink::Dark } else { Ink::Light };
        Drawing { colour, clear: tty, ink }
    }

    fn draw(&self, payload: &str) -> anyhow::Result<String> {
        let lines = qr::render(payload, self.ink).map_err(anyhow::Error::msg)?;
        let mut out = String::new();
        if self.clear {
            out.push_str("\x1b[H\x1b[2J");
        }
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if self.colour {
                // Black on bright white.
                out.push_str("\x1b[30;107m");
                out.push_str(line);
                out.push_str("\x1b[0m");
            } else {
                out.push_str(line);
            }
        }
        Ok(out)
    }
}

/// Shows the QR code and keeps it fresh until the number is linked. Polls the instance (and
/// fetches the code again when it expires) rather than following the event stream: the first
/// code may predate the stream, and polling needs no resume logic to be right.
async fn show_qr(client: &Client, id: &str, o: &QrOptions) -> anyhow::Result<()> {
    let drawing = Drawing::for_stdout(o.invert);
    if o.once {
        let qr: Qr = serde_json::from_value(client.get(&["v1", "instances", id, "qr"]).await?)?;
        print(drawing.draw(&qr.code)?)?;
        return print(format!("expires {}", short_time(&qr.expires_at.to_rfc3339())));
    }
    let deadline = Instant::now() + Duration::from_secs(o.timeout);
    let mut shown: Option<Qr> = None;
    let mut said_connecting = false;
    loop {
        let i: Instance = serde_json::from_value(client.get(&["v1", "instances", id]).await?)?;
        match i.status.as_str() {
            "connected" => {
                let who = i.phone.or(i.jid).unwrap_or_else(|| "its number".into());
                return print(format!("{} is connected as {who}", i.id));
            }
            "qr_pending" => {
                let stale = shown.as_ref().is_none_or(|q| Utc::now() >= q.expires_at);
                if stale {
                    match client.get(&["v1", "instances", id, "qr"]).await {
                        Ok(v) => {
                            let qr: Qr = serde_json::from_value(v)?;
                            if shown.as_ref().is_none_or(|s| s.code != qr.code) {
                                print(drawing.draw(&qr.code)?)?;
                                print(format!(
                                    "Scan it in WhatsApp: Settings → Linked devices → Link a \
                                     device.\n{} ({}) waits; this code expires {} and the next \
                                     one is drawn by itself. Ctrl-C to stop.",
                                    i.name,
                                    i.id,
                                    short_time(&qr.expires_at.to_rfc3339())
                                ))?;
                            }
                            shown = Some(qr);
                        }
                        // It left qr_pending between the two calls: the next look tells where.
                        Err(e) if e.code() == Some("not_pending") => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            "connecting" if !said_connecting => {
                said_connecting = true;
                print(format!("{} is connecting…", i.id))?;
            }
            "disconnected" => {
                let why = match (&i.reason, &i.detail) {
                    (Some(r), Some(d)) => format!("{r}: {d}"),
                    (Some(r), None) => r.clone(),
                    (None, Some(d)) => d.clone(),
                    (None, None) => "no reason given".into(),
                };
                bail!(
                    "{} is disconnected ({why}); `bzapper instances connect {}` starts it again",
                    i.id,
                    i.id
                );
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "{} was not linked within {} s; run `bzapper instances qr {}` to keep waiting",
                i.id,
                o.timeout,
                i.id
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
