//! Loopback stand-ins for the proxy tests: a SOCKS5 proxy that demands a username and password,
//! an HTTP CONNECT proxy, a websocket echo server and a plain HTTP server. A proxy sends every
//! tunnel to one fixed local address whatever name it is asked for: it does the name lookup, as
//! a real one does, so tests can ask for names (`*.invalid`) that this host cannot resolve.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::prelude::{Engine as _, BASE64_STANDARD};
use tokio::io::{self, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a fake proxy saw.
#[derive(Debug, Default, Clone)]
pub struct ProxyLog {
    /// Client connections accepted.
    pub connections: usize,
    /// The `host:port` of each tunnel asked for, as the client named it.
    pub targets: Vec<String>,
    /// The `Proxy-Authorization` header of each CONNECT (HTTP proxy only).
    pub authorizations: Vec<Option<String>>,
}

pub struct FakeProxy {
    pub addr: SocketAddr,
    log: Arc<Mutex<ProxyLog>>,
}

impl FakeProxy {
    pub fn log(&self) -> ProxyLog {
        self.log.lock().unwrap().clone()
    }
}

/// A SOCKS5 proxy that accepts only `user`/`password` (RFC 1929) and tunnels to `upstream`.
pub async fn socks5_proxy(user: &str, password: &str, upstream: SocketAddr) -> FakeProxy {
    let credentials = Arc::new((user.as_bytes().to_vec(), password.as_bytes().to_vec()));
    serve_proxy(move |client, log| socks5_session(client, credentials.clone(), upstream, log)).await
}

/// An HTTP CONNECT proxy that tunnels to `upstream`, answering 407 unless the
/// `Proxy-Authorization` header equals `required_auth` (when one is required).
pub async fn http_proxy(required_auth: Option<String>, upstream: SocketAddr) -> FakeProxy {
    let required_auth = Arc::new(required_auth);
    serve_proxy(move |client, log| connect_session(client, required_auth.clone(), upstream, log))
        .await
}

/// A proxy that accepts connections and never answers: a dial through it can only time out.
pub async fn silent_proxy() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((client, _)) = listener.accept().await {
            held.push(client);
        }
    });
    addr
}

async fn serve_proxy<F, Fut>(session: F) -> FakeProxy
where
    F: Fn(TcpStream, Arc<Mutex<ProxyLog>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(ProxyLog::default()));
    let task_log = log.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            task_log.lock().unwrap().connections += 1;
            // A session that fails (a client hanging up mid-handshake) just ends.
            tokio::spawn(session(client, task_log.clone()));
        }
    });
    FakeProxy { addr, log }
}

async fn socks5_session(
    mut client: TcpStream,
    credentials: Arc<(Vec<u8>, Vec<u8>)>,
    upstream: SocketAddr,
    log: Arc<Mutex<ProxyLog>>,
) -> io::Result<()> {
    let [version, n_methods] = read_array::<2>(&mut client).await?;
    let methods = read_vec(&mut client, n_methods.into()).await?;
    if version != 5 || !methods.contains(&2) {
        return client.write_all(&[5, 0xff]).await;
    }
    client.write_all(&[5, 2]).await?;

    let [_auth_version, user_len] = read_array::<2>(&mut client).await?;
    let user = read_vec(&mut client, user_len.into()).await?;
    let [password_len] = read_array::<1>(&mut client).await?;
    let password = read_vec(&mut client, password_len.into()).await?;
    if (user, password) != *credentials {
        return client.write_all(&[1, 1]).await;
    }
    client.write_all(&[1, 0]).await?;

    let [_version, command, _reserved, address_type] = read_array::<4>(&mut client).await?;
    let host = match address_type {
        1 => Ipv4Addr::from(read_array::<4>(&mut client).await?).to_string(),
        3 => {
            let [len] = read_array::<1>(&mut client).await?;
            String::from_utf8_lossy(&read_vec(&mut client, len.into()).await?).into_owned()
        }
        4 => Ipv6Addr::from(read_array::<16>(&mut client).await?).to_string(),
        _ => return client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await,
    };
    let port = u16::from_be_bytes(read_array::<2>(&mut client).await?);
    log.lock().unwrap().targets.push(format!("{host}:{port}"));
    if command != 1 {
        return client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
    io::copy_bidirectional(&mut client, &mut server).await.map(drop)
}

async fn connect_session(
    mut client: TcpStream,
    required_auth: Arc<Option<String>>,
    upstream: SocketAddr,
    log: Arc<Mutex<ProxyLog>>,
) -> io::Result<()> {
    let head = read_head(&mut client).await?;
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (request_line.next(), request_line.next().unwrap_or_default());
    let authorization = header(&head, "proxy-authorization");
    {
        let mut log = log.lock().unwrap();
        log.targets.push(target.to_string());
        log.authorizations.push(authorization.clone());
    }
    if method != Some("CONNECT") {
        return client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").await;
    }
    if required_auth.is_some() && authorization != *required_auth {
        return client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                  Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    io::copy_bidirectional(&mut client, &mut server).await.map(drop)
}

/// A websocket server that echoes every text or binary message, recording each upgrade request
/// it answers. The handshake and framing are written by hand so the tests need no
/// `tokio-websockets` server feature (which would build that crate a second time).
pub async fn ws_echo_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let task_requests = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(ws_echo_session(stream, task_requests.clone()));
        }
    });
    (addr, requests)
}

async fn ws_echo_session(
    mut stream: TcpStream,
    requests: Arc<Mutex<Vec<String>>>,
) -> io::Result<()> {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let head = read_head(&mut stream).await?;
    requests.lock().unwrap().push(head.clone());
    let key = header(&head, "sec-websocket-key").unwrap_or_default();
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    let accept = BASE64_STANDARD.encode(digest.as_ref());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(answer.as_bytes()).await?;

    loop {
        let [first, second] = read_array::<2>(&mut stream).await?;
        let opcode = first & 0x0f;
        let len = match second & 0x7f {
            126 => u16::from_be_bytes(read_array::<2>(&mut stream).await?).into(),
            127 => u64::from_be_bytes(read_array::<8>(&mut stream).await?),
            short => u64::from(short),
        };
        let mask = if second & 0x80 != 0 { read_array::<4>(&mut stream).await? } else { [0; 4] };
        let mut payload = read_vec(&mut stream, len as usize).await?;
        payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= mask[i % 4]);
        match opcode {
            0x1 | 0x2 => stream.write_all(&server_frame(opcode, &payload)).await?,
            0x8 => return stream.write_all(&server_frame(0x8, &[])).await,
            0x9 => stream.write_all(&server_frame(0xA, &payload)).await?,
            _ => {}
        }
    }
}

/// One unmasked, final frame, as a server sends it.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match u16::try_from(payload.len()) {
        Ok(len) if len < 126 => frame.push(len as u8),
        Ok(len) => {
            frame.push(126);
            frame.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => {
            frame.push(127);
            frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

/// A plain HTTP server for media: `GET /ok` answers 200 with `media-bytes`, anything else 404.
pub async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_head(&mut stream).await?;
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
                let (status, body) = if path == "/ok" {
                    ("200 OK", "media-bytes")
                } else {
                    ("404 Not Found", "gone")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).await
            });
        }
    });
    addr
}

async fn read_array<const N: usize>(stream: &mut TcpStream) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn read_vec(stream: &mut TcpStream, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// A request head, read a byte at a time so nothing after its blank line is consumed.
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(read_array::<1>(stream).await?[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The value of header `name` (lower case) in `head`.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}
