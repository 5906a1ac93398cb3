//! `bzapper cluster`: the gateway's nodes, their heartbeats and the numbers each holds
//! (`GET /v1/cluster`, admin token).

use chrono::Utc;
use clap::Args;
use serde::Deserialize;

use super::{age, print, print_json, short_time};
use crate::client::{Client, Conn};
use crate::table;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    conn: Conn,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
struct View {
    node_id: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    lease_seconds: Option<u64>,
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    url: String,
    started_at: String,
    heartbeat_at: String,
    live: bool,
    #[serde(default)]
    instances: Vec<String>,
}

pub async fn run(a: ClusterArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.conn)?;
    let v = client.get(&["v1", "cluster"]).await?;
    if a.json {
        return print_json(&v);
    }
    let view: View = serde_json::from_value(v)?;
    let now = Utc::now();
    let mut head = format!("answered by node {}", view.node_id);
    match (&view.mode, view.lease_seconds) {
        (Some(m), Some(l)) => head.push_str(&format!(" ({m}, lease {l} s)")),
        (Some(m), None) => head.push_str(&format!(" ({m})")),
        _ => {}
    }
    let rows: Vec<Vec<String>> = view
        .nodes
        .iter()
        .map(|n| {
            let id = if n.id == view.node_id { format!("{} *", n.id) } else { n.id.clone() };
            vec![
                id,
                if n.url.is_empty() { "-".into() } else { n.url.clone() },
                if n.live { "yes" } else { "no" }.into(),
                age(&n.heartbeat_at, now),
                short_time(&n.started_at),
                n.instances.len().to_string(),
                n.instances.join(","),
            ]
        })
        .collect();
    let header = ["NODE", "URL", "LIVE", "HEARTBEAT", "STARTED", "NUMBERS", "INSTANCES"];
    print(head)?;
    print(table::render(&header, &rows).trim_end())
}
