//! A TCP stream to a target host through a number's proxy, SOCKS5 or HTTP CONNECT. The target's
//! name is handed to the proxy unresolved (SOCKS5 address type 3, i.e. `socks5h`; the CONNECT
//! line), so not even the DNS lookup of a proxied number leaves from this host.

use std::io;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use bzapper_core::{ProxyScheme, ProxyUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;
use whatsapp_rust::anyhow::{self, anyhow};

/// The longest CONNECT answer head read; a proxy sending more is not one we can talk to.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Opens `host:port` through `proxy`. Errors name the proxy by its redacted URL, never with the
/// password.
pub(super) async fn open(proxy: &ProxyUrl, host: &str, port: u16) -> anyhow::Result<TcpStream> {
    let label = proxy.redacted();
    // The proxy's own name is looked up here, of course: it is the one host we talk to.
    let proxy_host = proxy.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((proxy_host, proxy.port))
        .await
        .map_err(|e| anyhow!("could not reach the proxy {label}: {e}"))?;
    match proxy.scheme {
        ProxyScheme::Socks5 => socks5(tcp, proxy, host, port).await,
        ProxyScheme::Http => http_connect(tcp, proxy, host, port).await,
    }
}

/// The SOCKS5 handshake (RFC 1928, with RFC 1929 username/password) by `tokio-socks`, on a
/// socket we opened ourselves so a refused TCP connection and a refused handshake read
/// differently. A host name goes to the proxy as a name: `tokio-socks` only sends an address
/// when `host` already is an IP literal.
async fn socks5(
    tcp: TcpStream,
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> anyhow::Result<TcpStream> {
    let label = proxy.redacted();
    let target = (host, port);
    let result = match proxy.credentials() {
        Some((user, password)) => {
            Socks5Stream::connect_with_password_and_socket(tcp, target, &user, &password).await
        }
        None => Socks5Stream::connect_with_socket(tcp, target).await,
    };
    result.map(Socks5Stream::into_inner).map_err(|e| match e {
        tokio_socks::Error::PasswordAuthFailure(_) => {
            anyhow!("the SOCKS5 proxy {label} rejected the username/password")
        }
        tokio_socks::Error::NoAcceptableAuthMethods => anyhow!(
            "the SOCKS5 proxy {label} accepts none of the offered authentication methods \
             (does it need a username and password?)"
        ),
        tokio_socks::Error::InvalidAuthValues(why) => {
            anyhow!("the credentials of the SOCKS5 proxy {label} cannot be sent: {why}")
        }
        other => anyhow!("the SOCKS5 proxy {label} did not open {host}:{port}: {other}"),
    })
}

/// An HTTP/1.1 CONNECT tunnel; any 2xx answer opens it (RFC 9110 §9.3.6).
async fn http_connect(
    mut tcp: TcpStream,
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> anyhow::Result<TcpStream> {
    let label = proxy.redacted();
    let authority =
        if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = proxy.credentials() {
        let token = BASE64_STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.map_err(|e| {
        anyhow!("could not send CONNECT {authority} to the HTTP proxy {label}: {e}")
    })?;

    let head = read_head(&mut tcp).await.map_err(|e| {
        anyhow!("the HTTP proxy {label} gave no answer to CONNECT {authority}: {e}")
    })?;
    let status_line = head.lines().next().unwrap_or_default().trim();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .filter(|_| status_line.starts_with("HTTP/1."))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(tcp),
        Some(407) => Err(anyhow!(
            "the HTTP proxy {label} answered `{status_line}` to CONNECT {authority}: \
             the username/password are wrong or missing"
        )),
        _ => Err(anyhow!("the HTTP proxy {label} answered `{status_line}` to CONNECT {authority}")),
    }
}

/// Reads the answer head a byte at a time: everything after its blank line already belongs to
/// the tunnel (the TLS or websocket peer), so not one byte past it may be consumed here.
async fn read_head(tcp: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(128);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "answer head over 8 KiB"));
        }
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
