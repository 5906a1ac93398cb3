//! The guarded client against loopback servers: what it refuses never receives a request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header::LOCATION, StatusCode};
use axum::routing::any;

use super::*;

/// A server on `ip` that counts its requests and answers each with `status` (and a
/// `Location: location` when given). Returns its base URL and its counter.
async fn server(
    ip: &str,
    status: StatusCode,
    location: Option<String>,
) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(any(move || {
        let (hits, location) = (counted.clone(), location.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let mut r = axum::response::Response::new(axum::body::Body::from("secret"));
            *r.status_mut() = status;
            if let Some(l) = location {
                r.headers_mut().insert(LOCATION, l.parse().unwrap());
            }
            r
        }
    }));
    let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (base, hits)
}

fn guard(allow: &str) -> Guard {
    Guard::new(allow.parse().unwrap())
}

fn client(g: &Guard, redirects: Redirects) -> OutboundClient {
    g.client(redirects, |b| b.timeout(std::time::Duration::from_secs(5))).unwrap()
}

fn url(s: &str) -> url::Url {
    url::Url::parse(s).unwrap()
}

/// Sends a GET through `c`; `Err(true)` when the guard refused it, `Err(false)` for any other
/// failure.
async fn get(c: &OutboundClient, u: &str) -> Result<StatusCode, bool> {
    let req = c.get(&url(u)).map_err(|Blocked| true)?;
    req.send().await.map(|r| r.status()).map_err(|e| is_blocked(&e))
}

#[tokio::test]
async fn loopback_in_every_spelling_is_refused_before_any_request() {
    let (base, hits) = server("127.0.0.1", StatusCode::OK, None).await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let c = client(&Guard::default(), Redirects::Checked);
    for u in [
        format!("http://127.0.0.1:{port}/secret"),
        format!("http://2130706433:{port}/secret"),
        format!("http://0x7f000001:{port}/secret"),
        format!("http://0177.0.0.1:{port}/secret"),
        format!("http://127.1:{port}/secret"),
        format!("http://[::ffff:127.0.0.1]:{port}/secret"),
        format!("http://[::1]:{port}/secret"),
        format!("http://0.0.0.0:{port}/secret"),
        // A name that resolves to loopback: refused by the resolver.
        format!("http://localhost:{port}/secret"),
        format!("http://LocalHost:{port}/secret"),
    ] {
        assert_eq!(get(&c, &u).await, Err(true), "{u}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the loopback server");
}

#[tokio::test]
async fn metadata_and_private_addresses_are_refused() {
    let c = client(&Guard::default(), Redirects::Off);
    for u in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://[fe80::1]/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
    ] {
        assert_eq!(get(&c, u).await, Err(true), "{u}");
        assert!(c.post(u).is_err(), "{u}");
    }
    assert!(c.post("not a url").is_err());
    assert!(c.get(&url("ftp://example.com/x")).is_err());
}

#[tokio::test]
async fn an_allowed_cidr_host_or_address_lets_it_through() {
    let (base, hits) = server("127.0.0.1", StatusCode::OK, None).await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let c = client(&guard("127.0.0.0/8"), Redirects::Checked);
    assert_eq!(get(&c, &format!("{base}/x")).await, Ok(StatusCode::OK));
    assert_eq!(get(&c, &format!("http://2130706433:{port}/x")).await, Ok(StatusCode::OK));
    assert_eq!(get(&c, &format!("http://[::ffff:127.0.0.1]:{port}/x")).await, Ok(StatusCode::OK));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Allowed by name: every address the name has is reachable.
    let c = client(&guard("localhost"), Redirects::Checked);
    assert_eq!(get(&c, &format!("http://localhost:{port}/x")).await, Ok(StatusCode::OK));
    assert_eq!(get(&c, &format!("{base}/x")).await, Err(true), "the name, not its address");
    // Another range does not.
    let c = client(&guard("10.0.0.0/8,hooks.internal"), Redirects::Checked);
    assert_eq!(get(&c, &format!("{base}/x")).await, Err(true));
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_redirect_to_a_forbidden_address_is_refused_at_its_hop() {
    // 127.0.0.2 is allowed, 127.0.0.1 is not (on Linux the whole 127/8 is local).
    let (inside, inside_hits) = server("127.0.0.1", StatusCode::OK, None).await;
    let (outside, outside_hits) =
        server("127.0.0.2", StatusCode::FOUND, Some(format!("{inside}/secret"))).await;
    let c = client(&guard("127.0.0.2"), Redirects::Checked);
    assert_eq!(get(&c, &format!("{outside}/go")).await, Err(true));
    assert_eq!(outside_hits.load(Ordering::SeqCst), 1);
    assert_eq!(inside_hits.load(Ordering::SeqCst), 0, "the redirect was not followed");

    // To a name that resolves to loopback: refused by the resolver on that hop.
    let port = inside.rsplit(':').next().unwrap();
    let (via_name, _) =
        server("127.0.0.2", StatusCode::FOUND, Some(format!("http://localhost:{port}/s"))).await;
    assert_eq!(get(&c, &format!("{via_name}/go")).await, Err(true));
    assert_eq!(inside_hits.load(Ordering::SeqCst), 0);

    // With redirects off, the 3xx is the answer and its target is never asked.
    let c = client(&guard("127.0.0.0/8"), Redirects::Off);
    assert_eq!(get(&c, &format!("{outside}/go")).await, Ok(StatusCode::FOUND));
    assert_eq!(inside_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirects_stop_after_five_hops() {
    // A server that redirects to itself forever.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let target = format!("{base}/again");
    let app = axum::Router::new().fallback(any(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let target = target.clone();
        async move { (StatusCode::FOUND, [(LOCATION, target)]) }
    }));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let c = client(&guard("127.0.0.1"), Redirects::Checked);
    let err = c.get(&url(&base)).unwrap().send().await.unwrap_err();
    assert!(!is_blocked(&err), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1 + MAX_REDIRECTS);
}
