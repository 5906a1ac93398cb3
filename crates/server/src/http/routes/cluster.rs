//! The cluster as this node sees it (admin token): every node with its last heartbeat and
//! the numbers it holds. A gateway on SQLite is one node holding every running number.

use axum::extract::State;
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app;
use crate::http::auth::Admin;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::state::AppState;
use crate::model::time::now;

#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    pub node_id: String,
    /// `cluster` (PostgreSQL, several nodes possible) or `single` (SQLite).
    pub mode: &'static str,
    /// How long a node holds a number without renewing (failover time), in seconds.
    pub lease_seconds: Option<u64>,
    /// Every node that has sent a heartbeat.
    pub nodes: Vec<NodeItem>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeItem {
    /// The node's id.
    pub id: String,
    /// Where the other nodes reach its API.
    pub url: String,
    /// When the node started.
    pub started_at: DateTime<Utc>,
    /// The node's last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Heartbeat within the lease time.
    pub live: bool,
    /// Instance ids whose connection it holds.
    pub instances: Vec<String>,
}

/// List the cluster's nodes
///
/// Admin token. The nodes of the cluster (PostgreSQL only; a single SQLite gateway is one node),
/// each with its URL, its last heartbeat, whether it is live and which numbers it holds.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = ClusterView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn view(_: Admin, State(state): State<AppState>) -> ApiResult<JsonOut<ClusterView>> {
    let view = match state.app.status.cluster().await? {
        app::status::ClusterView::Single { instances } => {
            let at = now();
            ClusterView {
                node_id: "single".into(),
                mode: "single",
                lease_seconds: None,
                nodes: vec![NodeItem {
                    id: "single".into(),
                    url: String::new(),
                    started_at: at,
                    heartbeat_at: at,
                    live: true,
                    instances,
                }],
            }
        }
        app::status::ClusterView::Cluster { node_id, lease_seconds, nodes } => ClusterView {
            node_id,
            mode: "cluster",
            lease_seconds: Some(lease_seconds),
            nodes: nodes
                .into_iter()
                .map(|n| NodeItem {
                    id: n.id,
                    url: n.url,
                    started_at: n.started_at,
                    heartbeat_at: n.heartbeat_at,
                    live: n.live,
                    instances: n.instances,
                })
                .collect(),
        },
    };
    Ok(JsonOut(view))
}
