//! How one number reaches WhatsApp: the chat websocket, dialled directly or through the number's
//! own proxy, and the HTTP client for its media, which goes through the same proxy.
//!
//! whatsapp-rust's stock transport factory always dials directly, so [`DialTransportFactory`]
//! opens the stream itself (module `tunnel`) and hands the upgraded websocket to the library's
//! `from_websocket`: framing, the read pump and the transport events stay the library's own.

mod tunnel;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bzapper_core::{ProxyScheme, ProxyUrl};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, WebSocketStream};
use whatsapp_rust::anyhow::{self, anyhow};
use whatsapp_rust::async_channel::Receiver;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse, UreqHttpClient};
use whatsapp_rust::transport::{
    default_tls_connector, from_websocket, Connector, Transport, TransportEvent, TransportFactory,
};
use whatsapp_rust::wacore::net::{
    StreamingHttpResponse, UploadBody, WHATSAPP_WEB_ORIGIN, WHATSAPP_WEB_WS_URL,
};
use whatsapp_rust::wacore::stats::HttpResourceReport;

/// How long one dial may take, proxy handshake, TLS and websocket upgrade included: a dead proxy
/// must fail the attempt (and let the driver back off) rather than hang it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A [`TransportFactory`] that dials the WhatsApp websocket directly or, when the number has a
/// proxy, only through it: the target's name goes to the proxy unresolved, so a proxied number
/// sends nothing, DNS included, from this host's own address.
pub struct DialTransportFactory {
    url: String,
    proxy: Option<ProxyUrl>,
    connect_timeout: Duration,
    tls: Arc<Connector>,
}

/// The TLS connector every number dials with, built once per process: it holds the parsed webpki
/// root store and a 256-entry session cache (about 24 KiB together), which a connector per
/// number would repeat for each of ten thousand numbers. The stock factory's own settings.
fn shared_tls() -> Arc<Connector> {
    static TLS: OnceLock<Arc<Connector>> = OnceLock::new();
    TLS.get_or_init(|| Arc::new(default_tls_connector())).clone()
}

impl DialTransportFactory {
    /// A factory for WhatsApp Web's own endpoint, through `proxy` when there is one.
    pub fn new(proxy: Option<ProxyUrl>) -> Self {
        DialTransportFactory {
            url: WHATSAPP_WEB_WS_URL.to_string(),
            proxy,
            connect_timeout: CONNECT_TIMEOUT,
            tls: shared_tls(),
        }
    }

    /// Dials another `ws://` or `wss://` URL (tests, or a relay standing in for WhatsApp). The
    /// `Origin` stays WhatsApp Web's, as the stock factory keeps it.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Replaces [`CONNECT_TIMEOUT`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The proxy this factory dials through, if any.
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        self.proxy.as_ref()
    }

    /// Words for error messages: how the dial went out, never with the proxy's credentials.
    fn route(&self) -> String {
        match &self.proxy {
            Some(proxy) => format!("through the proxy {}", proxy.redacted()),
            None => "directly".to_string(),
        }
    }

    async fn dial(&self) -> anyhow::Result<WebSocketStream<MaybeTlsStream<TcpStream>>> {
        let uri: http::Uri =
            self.url.parse().map_err(|e| anyhow!("invalid websocket URL {}: {e}", self.url))?;
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(anyhow!("the websocket URL {} is neither ws:// nor wss://", self.url)),
        };
        // `Uri::host` keeps the brackets of an IPv6 literal; sockets and TLS want it bare.
        let host =
            uri.host().ok_or_else(|| anyhow!("the websocket URL {} has no host", self.url))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });

        let tcp = match &self.proxy {
            Some(proxy) => tunnel::open(proxy, &host, port).await?,
            None => TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| anyhow!("could not connect to {host}:{port}: {e}"))?,
        };
        // The protocol is small frames, request then answer. With Nagle's algorithm on, a
        // frame written while the previous one waits for its ACK is held back until the peer's
        // delayed ACK (40 ms on Linux). Against the wire fake on loopback, 8 logins at a time
        // took 140 ms each without this and 20 ms with it (2,000 numbers resumed in 35.9 s,
        // then 5.55 s).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        let plain = Connector::Plain;
        let connector = if tls { self.tls.as_ref() } else { &plain };
        let stream = connector
            .wrap(&host, tcp)
            .await
            .map_err(|e| anyhow!("TLS handshake with {host} failed ({}): {e}", self.route()))?;

        let origin = http::HeaderValue::from_static(WHATSAPP_WEB_ORIGIN);
        let (ws, _) = ClientBuilder::from_uri(uri)
            .add_header(http::header::ORIGIN, origin)
            .map_err(|e| anyhow!("cannot set the Origin header: {e}"))?
            .connect_on(stream)
            .await
            .map_err(|e| {
                anyhow!("websocket upgrade at {} failed ({}): {e}", self.url, self.route())
            })?;
        Ok(ws)
    }
}

#[async_trait]
impl TransportFactory for DialTransportFactory {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, Receiver<TransportEvent>), anyhow::Error> {
        tracing::debug!(url = %self.url, route = %self.route(), "dialing WhatsApp");
        let ws =
            tokio::time::timeout(self.connect_timeout, self.dial()).await.map_err(|_| {
                anyhow!(
                    "no connection to {} ({}) within {}s",
                    self.url,
                    self.route(),
                    self.connect_timeout.as_secs_f32()
                )
            })??;
        Ok(from_websocket(ws))
    }
}

// The stock client's agent settings (whatsapp-rust-ureq-http-client's `build_agent`): small
// buffers, since API payloads are small JSON and media is streamed.
const BUFFER_BYTES: usize = 16 * 1024;
const MAX_IDLE_CONNECTIONS: usize = 3;
const MAX_IDLE_CONNECTIONS_PER_HOST: usize = 2;
/// The shared agent of the direct numbers keeps a few more idle connections (to a handful of
/// media hosts) than one number's own agent.
const SHARED_MAX_IDLE_CONNECTIONS: usize = 16;

/// The media (download and upload) HTTP client of a number: the library's ureq client on an
/// agent that goes through the number's proxy, whose transport errors name that proxy.
#[derive(Debug, Clone)]
pub struct MediaHttpClient {
    /// `Err` when the proxy could not be configured: every request then fails with that
    /// message rather than go out directly.
    inner: Result<UreqHttpClient, String>,
    /// The redacted proxy URL, for error messages.
    via: Option<String>,
    /// Fetch the `https://` URLs the library builds over plain `http://` (see
    /// [`MediaHttpClient::over_plain_http`]).
    plain_http: bool,
}

/// The media HTTP client for a number with `proxy` (none: direct). 4xx and 5xx answers come back
/// as `Ok` with their status, as the `HttpClient` contract requires: the media code reads 401,
/// 403, 404 and 410 to refresh its tokens. Proxy environment variables (`HTTP_PROXY` and the
/// like) are ignored, as the websocket ignores them: a number's route is its own setting.
pub fn http_client(proxy: Option<&ProxyUrl>) -> MediaHttpClient {
    let inner = match proxy {
        // Every direct number shares one agent (and its idle connections and TLS settings):
        // an agent per number would hold its own root store for each of ten thousand.
        None => Ok(shared_direct_agent()),
        Some(proxy) => ureq_proxy(proxy).map(|p| ureq_agent(Some(p), MAX_IDLE_CONNECTIONS)),
    };
    MediaHttpClient { inner, via: proxy.map(ProxyUrl::redacted), plain_http: false }
}

/// The media client of the numbers without a proxy, built once per process.
fn shared_direct_agent() -> UreqHttpClient {
    static DIRECT: OnceLock<UreqHttpClient> = OnceLock::new();
    DIRECT.get_or_init(|| ureq_agent(None, SHARED_MAX_IDLE_CONNECTIONS)).clone()
}

fn ureq_agent(proxy: Option<ureq::Proxy>, max_idle: usize) -> UreqHttpClient {
    let config = ureq::config::Config::builder()
        .http_status_as_error(false)
        .proxy(proxy)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .input_buffer_size(BUFFER_BYTES)
        .output_buffer_size(BUFFER_BYTES)
        .max_idle_connections(max_idle)
        .max_idle_connections_per_host(MAX_IDLE_CONNECTIONS_PER_HOST)
        .build();
    UreqHttpClient::with_agent(config.into())
}

fn ureq_proxy(proxy: &ProxyUrl) -> Result<ureq::Proxy, String> {
    // SOCKS5h, not SOCKS5: ureq resolves the target itself for plain SOCKS5.
    let protocol = match proxy.scheme {
        ProxyScheme::Socks5 => ureq::ProxyProtocol::Socks5h,
        ProxyScheme::Http => ureq::ProxyProtocol::Http,
    };
    let mut builder =
        ureq::Proxy::builder(protocol).host(&proxy.host).port(proxy.port).resolve_target(false);
    if let Some((user, password)) = proxy.credentials() {
        builder = builder.username(&user);
        if !password.is_empty() {
            builder = builder.password(&password);
        }
    }
    builder.build().map_err(|e| format!("the proxy {} cannot be used: {e}", proxy.redacted()))
}

impl MediaHttpClient {
    /// For test networks only: the wire-level fake's media host speaks plain HTTP, while the
    /// library always builds `https://{host}…` from the hosts the server names. The real
    /// network is never reached this way, since this is set only for `--sim-wire-url`.
    pub fn over_plain_http(mut self) -> Self {
        self.plain_http = true;
        self
    }

    /// The request as it goes out (its scheme downgraded when [`Self::over_plain_http`]).
    fn route(&self, mut request: HttpRequest) -> HttpRequest {
        if self.plain_http {
            if let Some(rest) = request.url.strip_prefix("https://") {
                request.url = format!("http://{rest}");
            }
        }
        request
    }

    fn client(&self) -> anyhow::Result<&UreqHttpClient> {
        self.inner.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// Says which proxy a failed exchange went through. `context` keeps the original error
    /// underneath for anything that inspects the chain.
    fn name_route(&self, err: anyhow::Error) -> anyhow::Error {
        match &self.via {
            Some(via) => {
                let message = format!("{err} (through the proxy {via})");
                err.context(message)
            }
            None => err,
        }
    }
}

#[async_trait]
impl HttpClient for MediaHttpClient {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.client()?.execute(self.route(request)).await.map_err(|e| self.name_route(e))
    }

    fn supports_streaming(&self) -> bool {
        self.inner.as_ref().is_ok_and(UreqHttpClient::supports_streaming)
    }

    fn execute_streaming(&self, request: HttpRequest) -> anyhow::Result<StreamingHttpResponse> {
        self.client()?.execute_streaming(self.route(request)).map_err(|e| self.name_route(e))
    }

    fn supports_upload_streaming(&self) -> bool {
        self.inner.as_ref().is_ok_and(UreqHttpClient::supports_upload_streaming)
    }

    fn execute_upload(
        &self,
        request: HttpRequest,
        body: UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        self.client()?
            .execute_upload(self.route(request), body, content_length)
            .map_err(|e| self.name_route(e))
    }

    fn resource_report(&self) -> Option<HttpResourceReport> {
        self.inner.as_ref().ok()?.resource_report()
    }
}
