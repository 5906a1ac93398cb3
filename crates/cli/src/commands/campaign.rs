//! `bzapper campaign`: run a campaign from a CSV file (create it, follow it with a progress bar,
//! print a per-number summary), and look at, pause, resume, cancel or list campaigns
//! (`/v1/campaigns`, see `docs/campaigns.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Local, Utc};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{print, print_json, short_time};
use crate::client::{Client, ClientError, Conn};
use crate::progress::Progress;
use crate::table;

/// How often a running campaign is looked at.
const POLL: Duration = Duration::from_secs(1);
/// Without a terminal, a progress line at most this often (and when the campaign ends).
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Polls in a row that may fail to reach the gateway (a restart) before giving up.
const MAX_POLL_FAILURES: u32 = 30;
/// The API's limit on a campaign's name.
const MAX_NAME_CHARS: usize = 64;

#[derive(Args)]
pub struct CampaignArgs {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    command: CampaignCommand,
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Send a template to every row of a CSV file, follow the campaign with a progress line,
    /// and print what each number carried.
    Run(RunArgs),
    /// One campaign: status, totals, per-number counts, finish estimate.
    #[command(visible_alias = "get")]
    Status {
        /// Campaign id.
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop queueing the campaign's messages (the few already queued still go out).
    Pause {
        /// Campaign id.
        id: String,
    },
    /// Go on with a paused campaign.
    Resume {
        /// Campaign id.
        id: String,
    },
    /// End the campaign: what was not sent yet never will be.
    Cancel {
        /// Campaign id.
        id: String,
    },
    /// The campaigns, newest first.
    #[command(visible_alias = "ls")]
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The CSV file: a header row, then one row per recipient. One column is the phone number;
    /// every other column is a field the template can use.
    file: PathBuf,
    /// The message, with `{{column}}` placeholders filled from each row.
    #[arg(long)]
    template: String,
    /// The campaign's name (default: the file's name).
    #[arg(long)]
    name: Option<String>,
    /// The pool whose numbers send it (default `default`).
    #[arg(long)]
    pool: Option<String>,
    /// The column with the phone number (default `phone`, else `to`).
    #[arg(long, value_name = "COLUMN")]
    phone_column: Option<String>,
    /// Send only inside --window in this IANA time zone (e.g. America/Sao_Paulo).
    #[arg(long, value_name = "TZ", requires = "window")]
    timezone: Option<String>,
    /// Send only between these local times, e.g. 09:00-18:00 (needs --timezone).
    #[arg(long, value_name = "HH:MM-HH:MM", requires = "timezone", value_parser = parse_window)]
    window: Option<(String, String)>,
    /// With --window: only on these days, e.g. mon,tue,wed,thu,fri (default every day).
    #[arg(long, value_delimiter = ',', requires = "window")]
    days: Vec<String>,
    /// Create the campaign, print its id and exit without following it.
    #[arg(long)]
    no_wait: bool,
    /// Print the API's JSON (the final campaign) instead of the summary.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: CampaignArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.conn)?;
    match a.command {
        CampaignCommand::Run(r) => run_csv(&client, r).await,
        CampaignCommand::Status { id, json } => {
            let v = client.get(&["v1", "campaigns", &id]).await?;
            if json {
                return print_json(&v);
            }
            print(summary(&serde_json::from_value(v)?))
        }
        CampaignCommand::Pause { id } => act(&client, &id, "pause").await,
        CampaignCommand::Resume { id } => act(&client, &id, "resume").await,
        CampaignCommand::Cancel { id } => act(&client, &id, "cancel").await,
        CampaignCommand::List { json } => list(&client, json).await,
    }
}

// ---------------------------------------------------------------------------------------------
// What the API answers.

#[derive(Deserialize)]
struct Campaign {
    id: String,
    name: String,
    status: String,
    #[serde(default)]
    pool: String,
    totals: Totals,
    #[serde(default)]
    numbers: Vec<NumberTotals>,
    estimated_finish_at: Option<DateTime<Utc>>,
    #[serde(default)]
    window: Option<WindowView>,
    #[serde(default)]
    created_at: String,
}

#[derive(Deserialize, Default, Clone, PartialEq, Eq)]
#[serde(default)]
struct Totals {
    recipients: u64,
    pending: u64,
    queued: u64,
    sending: u64,
    sent: u64,
    delivered: u64,
    read: u64,
    failed: u64,
    skipped: u64,
    canceled: u64,
}

impl Totals {
    /// Went out: sent, delivered or read.
    fn out(&self) -> u64 {
        self.sent + self.delivered + self.read
    }

    /// Done with, one way or another.
    fn done(&self) -> u64 {
        self.out() + self.failed + self.skipped + self.canceled
    }
}

#[derive(Deserialize)]
struct NumberTotals {
    instance_id: String,
    #[serde(default)]
    sent: u64,
    #[serde(default)]
    delivered: u64,
    #[serde(default)]
    read: u64,
    #[serde(default)]
    failed: u64,
}

#[derive(Deserialize)]
struct WindowView {
    #[serde(default)]
    opens_at: Option<DateTime<Utc>>,
}

fn ended(status: &str) -> bool {
    matches!(status, "finished" | "canceled")
}

// ---------------------------------------------------------------------------------------------
// `campaign run`.

async fn run_csv(client: &Client, a: RunArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", a.file.display()))?;
    let recipients = recipients(&text, a.phone_column.as_deref())
        .with_context(|| format!("{}", a.file.display()))?;
    let name = a.name.clone().unwrap_or_else(|| default_name(&a.file));
    let mut body = json!({ "name": name, "template": a.template, "recipients": recipients });
    if let Some(p) = &a.pool {
        body["pool"] = json!(p);
    }
    if let (Some(tz), Some((start, end))) = (&a.timezone, &a.window) {
        let mut schedule = json!({ "timezone": tz, "start": start, "end": end });
        if !a.days.is_empty() {
            schedule["days"] = json!(a.days);
        }
        body["schedule"] = schedule;
    }
    // The key is the hash of the file and of everything else sent, so that running the same
    // command again (after a timeout, a Ctrl-C, a crash) follows the campaign it created the
    // first time instead of sending everything twice.
    let key = idempotency_key(&text, &body);
    let req = client
        .request(Method::POST, client.url(&["v1", "campaigns"]))?
        .header("Idempotency-Key", &key)
        .json(&body);
    let created: Campaign = serde_json::from_value(client.json(req).await?)?;
    let id = created.id.clone();
    if a.no_wait {
        return print(&id);
    }
    if !a.json {
        print(format!("campaign {id}"))?;
    }
    eprintln!(
        "following campaign {id} ({} recipients); Ctrl-C stops following, the campaign goes on \
         on the gateway (`bzapper campaign status {id}`, `bzapper campaign cancel {id}`)",
        created.totals.recipients
    );
    let finished = tokio::select! {
        r = follow(client, &id) => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "\nstopped following; campaign {id} goes on on the gateway \
                 (`bzapper campaign status {id}`, `bzapper campaign cancel {id}`)"
            );
            std::process::exit(130);
        }
    };
    if a.json {
        return print_json(&finished);
    }
    print(summary(&serde_json::from_value(finished)?))
}

/// Polls the campaign until it is finished or canceled, showing progress on stderr (a bar on
/// a terminal, plain lines otherwise); returns its last view.
async fn follow(client: &Client, id: &str) -> anyhow::Result<Value> {
    let mut progress = Progress::on_stderr(PLAIN_EVERY);
    let mut failures = 0;
    loop {
        let v = match client.get(&["v1", "campaigns", id]).await {
            Ok(v) => {
                failures = 0;
                v
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Transport { .. }))
                if failures < MAX_POLL_FAILURES =>
            {
                failures += 1;
                if failures == 1 {
                    progress.note(&format!("{e}; trying again"));
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let c: Campaign = serde_json::from_value(v.clone())?;
        let done = ended(&c.status);
        let message = progress_message(&c, Local::now().date_naive());
        progress.show(c.totals.done(), c.totals.recipients, message, done);
        if done {
            return Ok(v);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `12/40 sent  2 failed  eta 14:05`, beside a bar of the share of recipients done with (out,
/// failed, skipped or canceled).
fn progress_message(c: &Campaign, today: chrono::NaiveDate) -> String {
    let t = &c.totals;
    let mut line = format!("{}/{} sent  {} failed", t.out(), t.recipients, t.failed);
    if t.skipped > 0 {
        line.push_str(&format!("  {} skipped", t.skipped));
    }
    match c.status.as_str() {
        "running" => match c.estimated_finish_at {
            Some(at) => line.push_str(&format!("  eta {}", local_time(at, today))),
            None => line.push_str("  eta - (no number can send)"),
        },
        "scheduled" => {
            line.push_str("  outside its window");
            if let Some(at) = c.window.as_ref().and_then(|w| w.opens_at) {
                line.push_str(&format!(", opens {}", local_time(at, today)));
            }
        }
        other => line.push_str(&format!("  {other}")),
    }
    line
}

/// `14:05` today, `11-27 14:05` another day, in this machine's time zone.
fn local_time(at: DateTime<Utc>, today: chrono::NaiveDate) -> String {
    let local = at.with_timezone(&Local);
    if local.date_naive() == today {
        local.format("%H:%M").to_string()
    } else {
        local.format("%m-%d %H:%M").to_string()
    }
}

/// The totals and a table of what each number carried.
fn summary(c: &Campaign) -> String {
    let t = &c.totals;
    let mut out = format!("campaign {} \"{}\": {}", c.id, c.name, c.status);
    if !c.pool.is_empty() {
        out.push_str(&format!(" (pool {})", c.pool));
    }
    out.push('\n');
    out.push_str(&format!(
        "recipients {}  pending {}  queued {}  sending {}  sent {}  delivered {}  read {}  \
         failed {}  skipped {}  canceled {}\n",
        t.recipients,
        t.pending,
        t.queued,
        t.sending,
        t.sent,
        t.delivered,
        t.read,
        t.failed,
        t.skipped,
        t.canceled
    ));
    if c.status == "running" {
        if let Some(at) = c.estimated_finish_at {
            out.push_str(&format!("estimated finish {}\n", short_time(&at.to_rfc3339())));
        }
    }
    if c.numbers.is_empty() {
        out.push_str("no number has sent anything yet");
        return out;
    }
    let rows: Vec<Vec<String>> = c
        .numbers
        .iter()
        .map(|n| {
            vec![
                n.instance_id.clone(),
                n.sent.to_string(),
                n.delivered.to_string(),
                n.read.to_string(),
                n.failed.to_string(),
            ]
        })
        .collect();
    out.push_str(&table::render(&["INSTANCE", "SENT", "DELIVERED", "READ", "FAILED"], &rows));
    out.trim_end().to_string()
}

/// The file's name without its extension, cut to what the API takes.
fn default_name(file: &Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = stem.trim();
    let stem = if stem.is_empty() { "campaign" } else { stem };
    stem.chars().take(MAX_NAME_CHARS).collect()
}

/// `09:00-18:00` → (`09:00`, `18:00`); the gateway checks the times themselves.
fn parse_window(s: &str) -> Result<(String, String), String> {
    match s.split_once('-') {
        Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
            Ok((a.trim().to_string(), b.trim().to_string()))
        }
        _ => Err(format!("`{s}` is not a window like 09:00-18:00")),
    }
}

/// `csv-` and the hex SHA-256 of the file's text and of the request (name, template, pool,
/// schedule and the recipients read from the file).
fn idempotency_key(text: &str, body: &Value) -> String {
    let mut input = Vec::with_capacity(text.len() * 2 + 64);
    input.extend_from_slice(text.as_bytes());
    input.push(0);
    input.extend_from_slice(body.to_string().as_bytes());
    let digest = bzapper_server::auth::sha256(&input);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("csv-{hex}")
}

// ---------------------------------------------------------------------------------------------
// The CSV file.

/// The recipients of a CSV file as the API takes them: `{to, fields}` per data row, with every
/// column but the phone's as a field (named by its header). Read by `bzapper_core::recipients_csv`.
fn recipients(text: &str, phone_column: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let rows = bzapper_core::recipients_csv::recipients(text, phone_column)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let fields: Map<String, Value> =
                r.fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            json!({ "to": r.to, "fields": fields })
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The other subcommands.

async fn act(client: &Client, id: &str, what: &str) -> anyhow::Result<()> {
    let v = client.post(&["v1", "campaigns", id, what], &json!({})).await?;
    let c: Campaign = serde_json::from_value(v)?;
    print(format!("{} {}", c.id, c.status))
}

async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let v = client.get(&["v1", "campaigns"]).await?;
    if json {
        return print_json(&v);
    }
    let items: Vec<Campaign> = serde_json::from_value(v["items"].clone())?;
    if items.is_empty() {
        eprintln!("no campaigns yet; start one with `bzapper campaign run FILE.csv --template …`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|c| {
            let t = &c.totals;
            vec![
                c.id.clone(),
                c.name.clone(),
                c.status.clone(),
                format!("{}/{}", t.out(), t.recipients),
                t.failed.to_string(),
                short_time(&c.created_at),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "STATUS", "SENT", "FAILED", "CREATED"];
    print(table::render(&header, &rows).trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::plain_line;

    #[test]
    fn rows_become_recipients_and_bad_rows_are_named() {
        let v = recipients("name,TO,code\nAna,+5511988887777,7\n", None).unwrap();
        assert_eq!(
            v,
            vec![json!({"to": "+5511988887777", "fields": {"name": "Ana", "code": "7"}})]
        );
        let v = recipients("tel,name\n123456789,Bo\n", Some("tel")).unwrap();
        assert_eq!(v[0]["to"], "123456789");
        let e = recipients("phone,name\n1234567890,Ana\n1234567891,Bo,extra\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 3: 3 columns, but the header has 2"), "{e}");
        let e = recipients("name\nAna\n", None).unwrap_err().to_string();
        assert!(e.contains("no `phone` or `to` column"), "{e}");
        let e = recipients("phone,name\n", None).unwrap_err().to_string();
        assert!(e.contains("no row follows"), "{e}");
        let e = recipients("phone,name\n ,Ana\n", None).unwrap_err().to_string();
        assert!(e.starts_with("line 2: no phone number"), "{e}");
    }

    #[test]
    fn progress_shows_the_share_done_and_the_finish() {
        let c = Campaign {
            id: "cmp_1".into(),
            name: "n".into(),
            status: "canceled".into(),
            pool: "default".into(),
            totals: Totals {
                recipients: 40,
                sent: 10,
                read: 2,
                failed: 2,
                pending: 26,
                ..Default::default()
            },
            numbers: vec![],
            estimated_finish_at: None,
            window: None,
            created_at: String::new(),
        };
        let today = Local::now().date_naive();
        let message = progress_message(&c, today);
        assert_eq!(message, "12/40 sent  2 failed  canceled");
        // Without a terminal (a terminal gets the same bar, see `progress`).
        assert_eq!(
            plain_line(c.totals.done(), c.totals.recipients, &message),
            "[#######-------------] 12/40 sent  2 failed  canceled"
        );
        let at = Utc::now();
        let running = Campaign {
            status: "running".into(),
            estimated_finish_at: Some(at),
            totals: Totals { skipped: 1, ..c.totals.clone() },
            ..c
        };
        let eta = local_time(at, today);
        assert_eq!(
            progress_message(&running, today),
            format!("12/40 sent  2 failed  1 skipped  eta {eta}")
        );
        assert_eq!(parse_window("09:00-18:00").unwrap(), ("09:00".into(), "18:00".into()));
        assert!(parse_window("9am").is_err());
        assert_eq!(default_name(Path::new("/x/march promo.csv")), "march promo");
    }
}
