//! The websocket and the media client through real loopback proxies (see `fakes`): each proxy
//! records the target it was asked for, and the names asked for (`*.invalid`) cannot resolve
//! here, so a dial that works at all proves the proxy did the lookup.

use std::time::Duration;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use bzapper_core::ProxyUrl;
use whatsapp_rust::async_channel::Receiver;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::http::{HttpClient, HttpRequest};
use whatsapp_rust::transport::{TransportEvent, TransportFactory};

use super::fakes::{http_proxy, http_server, silent_proxy, socks5_proxy, ws_echo_server};
use super::{http_client, DialTransportFactory};

/// A name only the fake proxies resolve (`.invalid` never resolves, RFC 6761).
const WA_URL: &str = "ws://web.whatsapp.invalid/ws/chat";
const WA_TARGET: &str = "web.whatsapp.invalid:80";

async fn next_event(events: &Receiver<TransportEvent>) -> TransportEvent {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("a transport event within 5 s")
        .expect("the event channel stays open")
}

/// Dials with `factory`, expects `Connected`, and checks a message comes back from the echo
/// server unchanged.
async fn round_trip(factory: &DialTransportFactory, message: &'static [u8]) {
    let (transport, events) = factory.create_transport().await.expect("the dial succeeds");
    assert!(matches!(next_event(&events).await, TransportEvent::Connected));
    transport.send(Bytes::from_static(message)).await.unwrap();
    match next_event(&events).await {
        TransportEvent::DataReceived(data) => assert_eq!(&data[..], message),
        other => panic!("expected the echo, got {other:?}"),
    }
    transport.disconnect().await;
}

fn proxy(url: &str) -> ProxyUrl {
    ProxyUrl::parse(url).unwrap()
}

#[tokio::test]
async fn socks5_proxy_carries_the_websocket() {
    let (ws_addr, upgrades) = ws_echo_server().await;
    // The password has URL-special characters: the proxy must get them decoded.
    let socks = socks5_proxy("alice", "s3:cr@t", ws_addr).await;
    let url = format!("socks5://alice:s3%3Acr%40t@127.0.0.1:{}", socks.addr.port());
    let factory = DialTransportFactory::new(Some(proxy(&url))).with_url(WA_URL);

    round_trip(&factory, b"hello through socks").await;

    let log = socks.log();
    assert_eq!(log.targets, [WA_TARGET], "the host name went to the proxy, unresolved");
    let upgrades = upgrades.lock().unwrap();
    assert_eq!(upgrades.len(), 1);
    assert!(
        upgrades[0].to_ascii_lowercase().contains("origin: https://web.whatsapp.com\r\n"),
        "the upgrade keeps WhatsApp Web's Origin: {}",
        upgrades[0]
    );
}

#[tokio::test]
async fn http_connect_proxy_carries_the_websocket() {
    let (ws_addr, _) = ws_echo_server().await;
    let basic = format!("Basic {}", BASE64_STANDARD.encode("bob:pa ss"));
    let connect = http_proxy(Some(basic.clone()), ws_addr).await;
    let url = format!("http://bob:pa%20ss@127.0.0.1:{}", connect.addr.port());
    let factory = DialTransportFactory::new(Some(proxy(&url))).with_url(WA_URL);

    round_trip(&factory, b"hello through connect").await;

    let log = connect.log();
    assert_eq!(log.targets, [WA_TARGET]);
    assert_eq!(log.authorizations, [Some(basic)]);
}

#[tokio::test]
async fn wrong_socks_credentials_fail_clearly() {
    let (ws_addr, upgrades) = ws_echo_server().await;
    let socks = socks5_proxy("alice", "right", ws_addr).await;
    let url = format!("socks5://alice:wrong-secret@127.0.0.1:{}", socks.addr.port());
    let factory = DialTransportFactory::new(Some(proxy(&url))).with_url(WA_URL);

    let err = factory.create_transport().await.err().expect("the dial fails").to_string();

    let label = format!("socks5://127.0.0.1:{}", socks.addr.port());
    assert!(err.contains(&label), "names the proxy: {err}");
    assert!(err.contains("rejected the username/password"), "{err}");
    assert!(!err.contains("wrong-secret"), "never shows the password: {err}");
    assert!(socks.log().targets.is_empty(), "no tunnel was asked for");
    assert!(upgrades.lock().unwrap().is_empty());
}

#[tokio::test]
async fn refused_http_proxy_credentials_fail_clearly() {
    let (ws_addr, _) = ws_echo_server().await;
    let required = format!("Basic {}", BASE64_STANDARD.encode("bob:right"));
    let connect = http_proxy(Some(required), ws_addr).await;
    let url = format!("http://bob:wrong-secret@127.0.0.1:{}", connect.addr.port());
    let factory = DialTransportFactory::new(Some(proxy(&url))).with_url(WA_URL);

    let err = factory.create_transport().await.err().expect("the dial fails").to_string();

    assert!(err.contains(&format!("http://127.0.0.1:{}", connect.addr.port())), "{err}");
    assert!(err.contains("407"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
}

#[tokio::test]
async fn an_unreachable_proxy_is_named() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let factory = DialTransportFactory::new(Some(proxy(&format!("socks5://u:p@127.0.0.1:{port}"))))
        .with_url(WA_URL);

    let err = factory.create_transport().await.err().expect("the dial fails").to_string();

    assert!(err.contains(&format!("could not reach the proxy socks5://127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn a_silent_proxy_times_out() {
    let addr = silent_proxy().await;
    let factory = DialTransportFactory::new(Some(proxy(&format!("http://{addr}"))))
        .with_url(WA_URL)
        .with_connect_timeout(Duration::from_millis(300));

    let err = factory.create_transport().await.err().expect("the dial fails").to_string();

    assert!(err.contains("within 0.3s") && err.contains(&format!("http://{addr}")), "{err}");
}

#[tokio::test]
async fn without_a_proxy_the_factory_dials_directly() {
    let (ws_addr, upgrades) = ws_echo_server().await;
    let socks = socks5_proxy("alice", "secret", ws_addr).await;
    let connect = http_proxy(None, ws_addr).await;
    let factory = DialTransportFactory::new(None).with_url(format!("ws://{ws_addr}/ws/chat"));

    round_trip(&factory, b"hello directly").await;

    assert_eq!(socks.log().connections, 0);
    assert_eq!(connect.log().connections, 0);
    assert_eq!(upgrades.lock().unwrap().len(), 1);
}

// ureq is blocking: the client runs it on the blocking pool while the fakes run on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_through_the_http_proxy_keeps_non_2xx_statuses() {
    let media = http_server().await;
    let basic = format!("Basic {}", BASE64_STANDARD.encode("carol:pw"));
    let connect = http_proxy(Some(basic.clone()), media).await;
    let url = format!("http://carol:pw@127.0.0.1:{}", connect.addr.port());
    let client = http_client(Some(&proxy(&url)));

    let missing = client.execute(HttpRequest::get("http://media.invalid/missing")).await;
    assert_eq!(missing.expect("a 404 is a response, not an error").status_code, 404);
    let found = client.execute(HttpRequest::get("http://media.invalid/ok")).await.unwrap();
    assert_eq!((found.status_code, &found.body[..]), (200, &b"media-bytes"[..]));

    let log = connect.log();
    assert!(!log.targets.is_empty(), "the requests went through the proxy");
    assert!(log.targets.iter().all(|t| t == "media.invalid:80"), "{:?}", log.targets);
    assert!(log.authorizations.iter().all(|a| a.as_deref() == Some(basic.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_through_the_socks5_proxy() {
    let media = http_server().await;
    let socks = socks5_proxy("dave", "pw", media).await;
    let url = format!("socks5://dave:pw@127.0.0.1:{}", socks.addr.port());
    let client = http_client(Some(&proxy(&url)));

    let found = client.execute(HttpRequest::get("http://media.invalid/ok")).await.unwrap();

    assert_eq!((found.status_code, &found.body[..]), (200, &b"media-bytes"[..]));
    assert_eq!(socks.log().targets, ["media.invalid:80"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_errors_name_the_proxy_not_its_password() {
    let media = http_server().await;
    let socks = socks5_proxy("dave", "right", media).await;
    let url = format!("socks5://dave:wrong-secret@127.0.0.1:{}", socks.addr.port());
    let client = http_client(Some(&proxy(&url)));

    let err = client.execute(HttpRequest::get("http://media.invalid/ok")).await.unwrap_err();

    let err = err.to_string();
    assert!(err.contains(&format!("socks5://127.0.0.1:{}", socks.addr.port())), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_without_a_proxy_goes_direct() {
    let media = http_server().await;
    let client = http_client(None);

    let missing = client.execute(HttpRequest::get(format!("http://{media}/missing"))).await;

    assert_eq!(missing.unwrap().status_code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_over_plain_http_downgrades_only_when_asked() {
    let media = http_server().await;
    let https = format!("https://{media}/ok");

    let plain = http_client(None).over_plain_http();
    let found = plain.execute(HttpRequest::get(https.clone())).await.unwrap();
    assert_eq!((found.status_code, &found.body[..]), (200, &b"media-bytes"[..]));

    // Only the scheme changes, and only when asked.
    assert_eq!(plain.route(HttpRequest::get(https.clone())).url, format!("http://{media}/ok"));
    assert_eq!(http_client(None).route(HttpRequest::get(https.clone())).url, https);
}
