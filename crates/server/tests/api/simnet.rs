//! The gateway on a shared simulated network process, the way cluster nodes share WhatsApp.

use std::sync::Arc;

use bzapper_driver::sim::{SimConfig, SimNetwork};
use bzapper_server::DriverKind;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{config, id, TestApp, ADMIN};

#[tokio::test]
async fn two_gateways_share_one_simnet_process() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let net = Arc::new(SimNetwork::new(SimConfig::default()));
    tokio::spawn(bzapper_driver::sim::serve(listener, net.clone(), std::future::pending()));

    let mut gateways = Vec::new();
    for _ in 0..2 {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut c = config(dir.path());
        c.driver = DriverKind::SimRemote(url.clone());
        gateways.push(TestApp::spawn_with(dir, c).await);
    }
    let mut ids = Vec::new();
    for (n, app) in gateways.iter().enumerate() {
        let (_, key) = app.tenant("acme").await;
        let inst = app.connected_instance(&key, "n", &format!("+55119999902{n:02}")).await;
        assert_eq!(inst["status"], "connected");
        ids.push((id(&inst), key));
    }
    assert_eq!(net.attached_count(), 2, "both numbers hold a connection to the shared network");

    // A drop injected through one gateway's control API reaches that number only.
    let (app, (iid, key)) = (&gateways[0], &ids[0]);
    let (s, v) = app
        .post(&format!("/v1/sim/instances/{iid}/drop"), ADMIN, json!({"reason": "logged_out"}))
        .await;
    assert!(s.is_success(), "{v}");
    app.wait_status(key, iid, "disconnected").await;
    let (other, (oid, okey)) = (&gateways[1], &ids[1]);
    let (s, v) = other.get(&format!("/v1/instances/{oid}"), okey).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("connected")));
}
