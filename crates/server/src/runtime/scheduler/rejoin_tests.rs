//! A node killed and started again under its id as soon as the id is free: the sends its dead
//! run had claimed from the shared queue go out. Found by the seeded fault test
//! (crates/cli/tests/fault.rs), which saw them stay `queued` for ever: the id being live again,
//! every node took them for a live node's claims, the restarted node too (it never had them in
//! memory). Needs `BZAPPER_TEST_DATABASE_URL`.

use std::time::Duration;

use bzapper_store::{ClusterStore, MessageStore, NodeInfo};

use crate::cluster::test_support::{join, Schema};
use crate::cluster::Cluster;
use crate::runtime::test_support::{add_tenant, text_message};

#[tokio::test]
async fn a_node_started_again_under_its_id_frees_what_its_dead_run_had_claimed() {
    let Some(schema) = Schema::new().await else { return };
    let ttl = Duration::from_secs(15);
    let (first, store) = join(&schema, "node-a", ttl).await;
    add_tenant(store.as_ref(), "t1").await;
    let m = text_message("t1", "5511988880301", "claimed by the run that dies");
    store.insert_message(&m).await.unwrap();
    let pools = [("t1".to_string(), "default".to_string())];
    let claimed = store.claim_messages("node-a", ttl, &[], &pools, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // node-a dies (no leave): its heartbeat ages past the lease time...
    sqlx::query("UPDATE nodes SET heartbeat_at = heartbeat_at - 60000 WHERE id = 'node-a'")
        .execute(&schema.raw)
        .await
        .unwrap();
    // ... and it starts again under the same id, before any other node took its claims.
    let again = NodeInfo {
        id: "node-a".into(),
        url: "http://node-a.test:8080".into(),
        started_at: chrono::Utc::now() + chrono::Duration::seconds(1),
    };
    let _restarted = Cluster::join(schema.store().await, again, ttl).await.unwrap();
    let (_b, b_store) = join(&schema, "node-b", ttl).await;
    let taken = b_store.claim_messages("node-b", ttl, &[], &pools, 10).await.unwrap();
    assert_eq!(taken.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [m.id.as_str()]);
    drop(first);
}
