//! Shared by the integration tests: the real whatsapp-rust client (cert-chain signature
//! check off, in-memory store, fixed version) wired to a fake server, and event waits.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bzapper_wafake::{Paired, WireServer};
use whatsapp_rust::async_channel::{unbounded, Receiver, Sender};
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::wacore::net::{
    HttpClient, HttpRequest, HttpResponse, StreamingHttpResponse, UploadBody,
};
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore::types::events::{Event, EventHandler};
use whatsapp_rust::{InboundDurabilityHook, TokioRuntime};
use whatsapp_rust_tokio_transport::TokioWebSocketTransportFactory;
use whatsapp_rust_ureq_http_client::UreqHttpClient;

/// Any version: given, the client fetches nothing.
const VERSION: (u32, u32, u32) = (2, 3000, 1_023_000_000);
/// The longest any single wait may take (pairing's 10 s grace included).
pub const WAIT: Duration = Duration::from_secs(30);

/// The client's HTTP, with `https://` rewritten to `http://`: the fake's media host (the
/// one `media_conn` names, `IP:PORT`) speaks plain HTTP, and the client builds `https://`
/// URLs. What the gateway's driver does against the fake too.
pub struct PlainHttp(pub UreqHttpClient);

fn plain(mut request: HttpRequest) -> HttpRequest {
    if let Some(rest) = request.url.strip_prefix("https://") {
        request.url = format!("http://{rest}");
    }
    request
}

#[whatsapp_rust::async_trait]
impl HttpClient for PlainHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.0.execute(plain(request)).await
    }
    fn supports_streaming(&self) -> bool {
        self.0.supports_streaming()
    }
    fn execute_streaming(&self, request: HttpRequest) -> anyhow::Result<StreamingHttpResponse> {
        self.0.execute_streaming(plain(request))
    }
    fn supports_upload_streaming(&self) -> bool {
        self.0.supports_upload_streaming()
    }
    fn execute_upload(
        &self,
        request: HttpRequest,
        body: UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        self.0.execute_upload(plain(request), body, content_length)
    }
}

struct Forward(Sender<Arc<Event>>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.0.try_send(event);
    }
}

/// No hook (the type [`Client::start`] names for `None`).
pub struct NoHook;

#[whatsapp_rust::async_trait]
impl InboundDurabilityHook for NoHook {
    async fn on_messages(
        &self,
        _: Arc<whatsapp_rust::Client>,
        _: &[whatsapp_rust::types::durability_hook::InboundMessage],
    ) -> anyhow::Result<()> {
        Ok(())
    }
}

pub struct Client {
    pub handle: BotHandle,
    pub events: Receiver<Arc<Event>>,
}

impl Client {
    pub async fn start(server: &WireServer, store: Arc<InMemoryBackend>) -> Self {
        Self::start_with(server, store, None::<NoHook>).await
    }

    /// [`Client::start`], with `hook` as the library's inbound durability hook: the client
    /// acknowledges (sends the receipt of) a message only once the hook returned `Ok`.
    pub async fn start_with<H: InboundDurabilityHook + 'static>(
        server: &WireServer,
        store: Arc<InMemoryBackend>,
        hook: Option<H>,
    ) -> Self {
        let (tx, events) = unbounded();
        let mut builder = Bot::builder();
        if let Some(hook) = hook {
            builder = builder.with_inbound_durability_hook(hook);
        }
        let bot = builder
            .with_backend_arc(store)
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(server.ws_url()))
            .with_http_client(PlainHttp(UreqHttpClient::new()))
            .with_runtime(TokioRuntime)
            .with_event_handler(Forward(tx))
            .skip_history_sync()
            .with_version(VERSION)
            .build()
            .await
            .expect("build the client");
        Self { handle: bot.spawn(), events }
    }

    /// Waits for the first event `pick` accepts; returns what it picked and the names of
    /// the events passed over.
    pub async fn wait<T>(
        &self,
        what: &str,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> (T, Vec<String>) {
        let started = std::time::Instant::now();
        let mut skipped = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let event = self.events.recv().await.expect("the client's event stream ended");
                if let Some(t) = pick(&event) {
                    return t;
                }
                skipped.push(format!("{:?}", event_name(&event)));
            }
        })
        .await;
        match found {
            Ok(t) => {
                // Shown with the output of a failing test.
                eprintln!("{what} after {:?}", started.elapsed());
                (t, skipped)
            }
            Err(_) => panic!("no {what} within {WAIT:?}; saw {skipped:?}"),
        }
    }

    pub async fn stop(self) {
        self.handle.shutdown().await;
    }
}

fn event_name(e: &Event) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{']).next().unwrap_or_default().to_string()
}

pub async fn server() -> Arc<WireServer> {
    WireServer::start("127.0.0.1:0".parse().unwrap()).await.expect("start the fake")
}

/// A fresh client, paired by the fake phone `phone` and connected.
pub async fn paired(server: &WireServer, phone: &str) -> (Client, Arc<InMemoryBackend>, Paired) {
    let store = Arc::new(InMemoryBackend::new());
    let client = Client::start(server, store.clone()).await;
    let (qr, _) = client
        .wait("QR code", |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    let paired = server.scan(&qr, phone).await.expect("scan");
    assert!(paired.jid.starts_with(&format!("{phone}:")), "{paired:?}");
    assert!(paired.lid.ends_with("@lid"), "{paired:?}");
    client.wait("PairSuccess", |e| matches!(e, Event::PairSuccess(_)).then_some(())).await;
    client.wait("Connected", |e| matches!(e, Event::Connected(_)).then_some(())).await;
    (client, store, paired)
}

pub async fn until(what: &str, check: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen within {WAIT:?}"));
}
