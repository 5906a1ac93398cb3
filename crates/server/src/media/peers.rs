//! Uploads held by another node. In a cluster an upload is stored on the node that received
//! it; a node that misses one (a send accepted, or claimed, elsewhere) asks the other live
//! nodes for it, one after another, at `GET /v1/cluster/media/{tenant_id}/{id}` with the
//! admin token. The first that has it streams it back, with its record in the
//! [`RECORD_HEADER`] header; the copy is streamed to disk under the same id and record (so it
//! expires when the original does), its size and SHA-256 checked on the way. A peer that
//! does not answer in time, or answers wrongly, is skipped.
//!
//! A tenant's `DELETE` is passed on the same way: the node asked deletes its own file, then
//! asks every other live node to delete its copy at `DELETE /v1/cluster/media/{tenant_id}/{id}`
//! (which deletes only there, never passing it on). A peer that does not answer keeps its
//! copy until the retention ends.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;

use axum::body::Bytes;
use futures::stream::BoxStream;

use super::error::MediaError;
use super::record::StoredMedia;
use crate::cluster::{Cluster, FORWARDED_BY};
use secrecy::{ExposeSecret, SecretString};

/// A peer's answer body, streamed into the local store.
pub(super) type Body = BoxStream<'static, reqwest::Result<Bytes>>;

/// Where a copy from a peer is written (the local media store): the record it must match
/// and the bytes, checked on the way.
#[async_trait::async_trait]
pub(super) trait CopySink: Sync {
    async fn put_copy(&self, record: &StoredMedia, body: Body) -> Result<StoredMedia, MediaError>;
}

/// The header the peer route carries the file's record in: its `StoredMedia` JSON, base64url
/// without padding.
pub const RECORD_HEADER: &str = "x-bzapper-media";
/// Connecting to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// From the request to the answer's headers (the peer only reads a small file to answer).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How this node reaches the others.
pub(super) struct Peers {
    cluster: Arc<Cluster>,
    admin_token: SecretString,
    http: reqwest::Client,
}

impl Peers {
    pub(super) fn new(cluster: Arc<Cluster>, admin_token: SecretString) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bZapper/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Peers { cluster, admin_token, http })
    }
}

/// The record as the peer route sends it.
pub fn encode_record(m: &StoredMedia) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(m).expect("a StoredMedia serializes"))
}

/// The record from the header; `None` when it is not one.
pub fn decode_record(header: &str) -> Option<StoredMedia> {
    let json = URL_SAFE_NO_PAD.decode(header.trim()).ok()?;
    serde_json::from_slice(&json).ok()
}

/// Asks the other live nodes for the tenant's upload `id`; a copy stored here when one has
/// it, `None` when none does (or none answered).
///
/// `transfer_timeout` bounds a whole copy; `sink` takes the copy into the local store.
pub(super) async fn find(
    peers: &Peers,
    tenant_id: &str,
    id: &str,
    transfer_timeout: Duration,
    sink: &dyn CopySink,
) -> Option<StoredMedia> {
    let c = &peers.cluster;
    let nodes = match c.store.nodes(c.ttl, c.ttl).await {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::warn!(media = %id, error = %e, "listing the nodes to find an upload failed");
            return None;
        }
    };
    for node in nodes.iter().filter(|n| n.live && n.id != c.node_id()) {
        match copy_from(peers, &node.url, tenant_id, id, transfer_timeout, sink).await {
            Ok(Some(m)) => {
                tracing::info!(media = %id, node = %node.id, size = m.size, "upload copied from a peer");
                return Some(m);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(media = %id, node = %node.id, error = %e, "asking a peer for an upload failed");
            }
        }
    }
    None
}

/// Asks every other live node, all at once, to delete its copy of the tenant's upload `id`;
/// whether any of them had it. A node that fails to answer is logged and skipped.
pub(super) async fn delete(peers: &Peers, tenant_id: &str, id: &str) -> bool {
    let c = &peers.cluster;
    let nodes = match c.store.nodes(c.ttl, c.ttl).await {
        Ok(nodes) => nodes,
        Err(e) => {
            tracing::warn!(media = %id, error = %e, "listing the nodes to delete an upload failed");
            return false;
        }
    };
    let asks = nodes.iter().filter(|n| n.live && n.id != c.node_id()).map(|node| async move {
        match delete_on(peers, &node.url, tenant_id, id).await {
            Ok(had) => {
                if had {
                    tracing::info!(media = %id, node = %node.id, "upload deleted on a peer");
                }
                had
            }
            Err(e) => {
                tracing::warn!(media = %id, node = %node.id, error = %e, "a peer could not be asked to delete an upload; its copy stays until the retention ends");
                false
            }
        }
    });
    futures::future::join_all(asks).await.contains(&true)
}

/// Deletes the upload on the node at `base`: whether it had it.
async fn delete_on(peers: &Peers, base: &str, tenant_id: &str, id: &str) -> Result<bool, String> {
    let url = format!("{}/v1/cluster/media/{tenant_id}/{id}", base.trim_end_matches('/'));
    let res = peers
        .http
        .delete(&url)
        .bearer_auth(peers.admin_token.expose_secret())
        .header(FORWARDED_BY, peers.cluster.node_id())
        .timeout(ANSWER_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    deleted(res.status())
}

/// What a peer's answer to a delete says: it had the file (2xx), it did not (404), or the ask
/// failed.
fn deleted(status: reqwest::StatusCode) -> Result<bool, String> {
    if status.is_success() {
        Ok(true)
    } else if status == reqwest::StatusCode::NOT_FOUND {
        Ok(false)
    } else {
        Err(format!("answered HTTP {status}"))
    }
}

/// The upload from the node at `base`: `Ok(None)` when it does not hold it.
async fn copy_from(
    peers: &Peers,
    base: &str,
    tenant_id: &str,
    id: &str,
    transfer_timeout: Duration,
    sink: &dyn CopySink,
) -> Result<Option<StoredMedia>, String> {
    let url = format!("{}/v1/cluster/media/{tenant_id}/{id}", base.trim_end_matches('/'));
    let req = peers
        .http
        .get(&url)
        .bearer_auth(peers.admin_token.expose_secret())
        .header(FORWARDED_BY, peers.cluster.node_id())
        // The whole transfer, body included, like a URL download.
        .timeout(transfer_timeout.max(ANSWER_TIMEOUT));
    let res = match tokio::time::timeout(ANSWER_TIMEOUT, req.send()).await {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())),
    };
    if res.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !res.status().is_success() {
        return Err(format!("answered HTTP {}", res.status()));
    }
    let record = res
        .headers()
        .get(RECORD_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(decode_record)
        .ok_or_else(|| format!("the answer has no valid {RECORD_HEADER} header"))?;
    if record.tenant_id != tenant_id || record.id != id {
        return Err(format!("the answer is the record of {}/{}", record.tenant_id, record.id));
    }
    if record.expires_at <= Utc::now() {
        return Ok(None);
    }
    sink.put_copy(&record, Box::pin(res.bytes_stream())).await.map(Some).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_header_round_trips_and_rejects_garbage() {
        let at = Utc::now();
        let m = StoredMedia {
            id: "med_1".into(),
            tenant_id: "ten_1".into(),
            mime: "image/png".into(),
            size: 42,
            sha256: "ab".repeat(32),
            file_name: Some("é x.png".into()),
            created_at: at,
            expires_at: at + chrono::Duration::days(1),
        };
        let h = encode_record(&m);
        assert!(h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{h}");
        assert_eq!(decode_record(&h), Some(m));
        assert_eq!(decode_record("not base64!"), None);
        assert_eq!(decode_record(&URL_SAFE_NO_PAD.encode(b"{\"id\":1}")), None);
    }

    #[test]
    fn a_peers_answer_to_a_delete_says_whether_it_had_the_file() {
        use reqwest::StatusCode as S;
        assert_eq!(deleted(S::NO_CONTENT), Ok(true));
        assert_eq!(deleted(S::OK), Ok(true));
        assert_eq!(deleted(S::NOT_FOUND), Ok(false));
        assert!(deleted(S::FORBIDDEN).is_err());
        assert!(deleted(S::INTERNAL_SERVER_ERROR).is_err());
    }
}
