//! What every subcommand shares: loopback targets, WebSocket clients,
//! file limits, resident memory, medians, failure tallies.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::StreamExt as _;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Where a `ws://` URL points, checked to be loopback.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) addr: SocketAddr,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
        if uri.scheme_str() != Some("ws") {
            bail!("only ws:// URLs are supported, got {url:?}");
        }
        let host = uri.host().ok_or_else(|| anyhow!("no host in {url:?}"))?;
        let port = uri.port_u16().unwrap_or(80);
        let addr = SocketAddr::new(loopback_ip(host)?, port);
        Ok(Target {
            url: url.to_string(),
            addr,
        })
    }

    /// The gateway's `/health` URL next to the WebSocket.
    pub(crate) fn health_url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

/// The IP of `host`, which must be a loopback address.
pub(crate) fn loopback_ip(host: &str) -> Result<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        IpAddr::from_str(host).with_context(|| format!("host {host:?} is not an IP address"))?
    };
    if !ip.is_loopback() {
        bail!("refusing to load {ip}: loadgen only targets loopback addresses");
    }
    Ok(ip)
}

/// Client-side WebSocket buffers: small, like the server's. tungstenite
/// zero-fills the free part of its read buffer before every read, so a
/// large one costs a memset per frame (10% of the client's CPU at 8 KiB).
pub(crate) fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
}

pub(crate) type Ws = WebSocketStream<TcpStream>;

pub(crate) async fn connect_ws(target: &Target) -> Result<Ws> {
    connect_ws_url(target, &target.url).await
}

/// Connects to `target`'s address with another URL of it (e.g. with a
/// token in the query).
pub(crate) async fn connect_ws_url(target: &Target, url: &str) -> Result<Ws> {
    let stream = TcpStream::connect(target.addr)
        .await
        .context("TCP connect")?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .context("WebSocket handshake")?;
    Ok(ws)
}

/// Like [`connect_ws`], offering permessage-deflate: for idle connections
/// only (tungstenite cannot read the compressed frames the server may send
/// once the extension is agreed; an idle demo client gets small, plain
/// ones).
pub(crate) async fn connect_ws_offering_deflate(target: &Target) -> Result<Ws> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let stream = TcpStream::connect(target.addr)
        .await
        .context("TCP connect")?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let mut request = target.url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits".parse()?,
    );
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(client_config()))
            .await
            .context("WebSocket handshake")?;
    if !response.headers().contains_key("sec-websocket-extensions") {
        bail!("the server did not agree to permessage-deflate");
    }
    Ok(ws)
}

/// The next text frame, skipping control frames; errors on close or EOF.
pub(crate) async fn next_text(ws: &mut Ws) -> Result<Utf8Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(Message::Close(frame))) => bail!("closed by server: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error).context("reading"),
            None => bail!("connection ended"),
        }
    }
}

/// Raises the soft open-files limit to fit `needed` descriptors (capped at
/// the hard limit). Returns the new soft limit.
pub(crate) fn raise_nofile(needed: u64) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrlimit(NOFILE)");
        }
        let wanted = needed.min(limit.rlim_max);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error()).context("setrlimit(NOFILE)");
            }
        }
    }
    if limit.rlim_cur < needed {
        bail!(
            "{needed} file descriptors needed, but the hard limit is {}",
            limit.rlim_max
        );
    }
    Ok(limit.rlim_cur)
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rss {
    pub(crate) vm_rss: u64,
    pub(crate) rss_anon: u64,
}

pub(crate) fn read_rss(pid: u32) -> Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Ok(Rss {
        vm_rss: field("VmRSS:").ok_or_else(|| anyhow!("no VmRSS in {path}"))?,
        rss_anon: field("RssAnon:").unwrap_or(0),
    })
}

/// Median of `samples` readings, `interval` apart.
pub(crate) async fn sample_rss(pid: u32, samples: usize, interval: Duration) -> Result<Rss> {
    let mut vm = Vec::new();
    let mut anon = Vec::new();
    for i in 0..samples.max(1) {
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let rss = read_rss(pid)?;
        vm.push(rss.vm_rss);
        anon.push(rss.rss_anon);
    }
    Ok(Rss {
        vm_rss: median(&mut vm),
        rss_anon: median(&mut anon),
    })
}

pub(crate) fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// `connectedClients` from the gateway's `/health`, when it answers.
pub(crate) async fn connected_clients(target: &Target) -> Option<u64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let body: serde_json::Value = client
        .get(target.health_url())
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body.get("connectedClients")?.as_u64()
}

/// Counts outcomes and keeps the first few distinct errors.
#[derive(Default)]
pub(crate) struct Failures {
    pub(crate) count: AtomicUsize,
    pub(crate) samples: Mutex<Vec<String>>,
}

impl Failures {
    pub(crate) async fn record(&self, error: &anyhow::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let text = format!("{error:#}");
        let mut samples = self.samples.lock().await;
        if samples.len() < 5 && !samples.contains(&text) {
            samples.push(text);
        }
    }

    pub(crate) async fn report(&self, what: &str) {
        let count = self.count.load(Ordering::Relaxed);
        if count > 0 {
            eprintln!("{count} {what} failed; e.g.:");
            for sample in self.samples.lock().await.iter() {
                eprintln!("  {sample}");
            }
        }
    }
}

pub(crate) fn kib(bytes_kib: u64) -> f64 {
    bytes_kib as f64
}
