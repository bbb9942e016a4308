//! deploy/ as an operator runs it: Debian's nginx with
//! `deploy/nginx/tourcast.conf` (this very file, only its ports rewritten)
//! in front of two gateways reading one RabbitMQ stream, with
//! `TRUSTED_PROXIES` set to nginx's address. Clients connect from several
//! loopback addresses (127.0.0.2, .3, …) so that nginx forwards different
//! client addresses.
//!
//! Needs `nginx` on the PATH or in /usr/sbin (`apt-get install nginx`;
//! `bash .ci/run` installs it) and RabbitMQ on 127.0.0.1:5672.

mod common;
#[path = "common/rabbit.rs"]
mod rabbit;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use common::{Client, GatewayProcess, http_get, ws_connect_from};
use rabbit::Rabbit;

/// The ports this suite may give nginx (this project's deploy range).
const NGINX_PORTS: std::ops::Range<u16> = 18640..18700;

/// nginx running the site file from deploy/, in a scratch directory of its
/// own (pid, logs, temp files), in the foreground. Stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Serves `deploy/nginx/tourcast.conf` with its listen port and its two
    /// upstream ports replaced by `upstreams`.
    async fn start(upstreams: [u16; 2]) -> Self {
        let binary = nginx_binary();
        let site_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/tourcast.conf");
        let site = std::fs::read_to_string(&site_path).expect("deploy/nginx/tourcast.conf");
        let port = free_port();
        let site = rewrite_ports(&site, port, upstreams);
        let dir =
            std::env::temp_dir().join(format!("deploy_nginx-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("temp")).expect("scratch directory");
        std::fs::write(dir.join("tourcast.conf"), site).expect("site file");
        // The main configuration a distribution would ship, with every path
        // in the scratch directory so that nginx needs no privileges. One
        // process, no master: a master killed by the test's end would leave
        // its workers listening (and round robin is per process anyway).
        let d = dir.display();
        let main = format!(
            "master_process off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20 access_log {d}/access.log;\n\
             \x20 client_body_temp_path {d}/temp/body;\n\
             \x20 proxy_temp_path {d}/temp/proxy;\n\
             \x20 fastcgi_temp_path {d}/temp/fastcgi;\n\
             \x20 uwsgi_temp_path {d}/temp/uwsgi;\n\
             \x20 scgi_temp_path {d}/temp/scgi;\n\
             \x20 include {d}/tourcast.conf;\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).expect("nginx.conf");
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}) before listening: {log}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not listen on {port} within 10s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nginx { child, port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL (nginx is a single process here), then reaped below: no
        // listener outlives the test.
        let _ = self.child.start_kill();
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .expect("nginx is not installed: apt-get install nginx (bash .ci/run installs it)")
}

/// A port of this suite's range that nobody listens on now.
fn free_port() -> u16 {
    NGINX_PORTS
        .clone()
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port in 18640..18700")
}

/// The site with `listen 8080` on loopback port `port` and the upstreams
/// 127.0.0.1:8081/8082 moved to `upstreams`: exactly these three places,
/// each present once (a site file that changed shape fails here, loudly).
fn rewrite_ports(site: &str, port: u16, upstreams: [u16; 2]) -> String {
    let mut site = site.to_string();
    for (from, to) in [
        (
            "listen 8080;".to_string(),
            format!("listen 127.0.0.1:{port};"),
        ),
        (
            "server 127.0.0.1:8081 ".to_string(),
            format!("server 127.0.0.1:{} ", upstreams[0]),
        ),
        (
            "server 127.0.0.1:8082 ".to_string(),
            format!("server 127.0.0.1:{} ", upstreams[1]),
        ),
    ] {
        assert_eq!(site.matches(&from).count(), 1, "{from:?} once in the site");
        site = site.replace(&from, &to);
    }
    site
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP address")
}

/// `connectedClients` of a gateway, asked directly.
async fn connected(gateway: &GatewayProcess) -> u64 {
    let (_, health) = http_get(&gateway.http_url("/health")).await;
    health["connectedClients"]
        .as_u64()
        .expect("connectedClients")
}

/// The `peer` of every WebSocket "connection opened" line a gateway logged.
fn opened_peers(gateway: &GatewayProcess) -> Vec<String> {
    gateway
        .log_lines("connection opened")
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["transport"] == "websocket")
        .filter_map(|line| line["fields"]["peer"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn nginx_fronts_two_gateways_and_forwards_client_addresses() {
    let rabbit = Rabbit::with_prefix("deploy_nginx").await;
    let env = [
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("MAX_CONNECTIONS_PER_IP", "1"),
    ];
    let mut gateways = [
        rabbit.gateway_with_env(1, &[], &env).await,
        rabbit.gateway_with_env(2, &[], &env).await,
    ];
    let nginx = Nginx::start([gateways[0].addr.port(), gateways[1].addr.port()]).await;

    // Plain HTTP passes; the metrics stay inside.
    let (status, health) = http_get(&nginx.url("/health")).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let metrics = reqwest::get(nginx.url("/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(metrics.status().as_u16(), 404);
    // The SSE location streams, unbuffered: the greeting arrives while the
    // response is still open, and nginxes further out are told not to buffer.
    let mut sse = reqwest::get(nginx.url("/sse?tours=tour_paris"))
        .await
        .expect("GET /sse");
    assert_eq!(
        sse.headers()
            .get("x-accel-buffering")
            .and_then(|v| v.to_str().ok()),
        Some("no")
    );
    let mut streamed = String::new();
    while !streamed.contains("event: connection") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
            .await
            .expect("the greeting streams through nginx")
            .expect("a chunk")
            .expect("the stream is open");
        streamed.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(sse);
    // Gone from both instances before the per-address count below.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while connected(&gateways[0]).await + connected(&gateways[1]).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event stream lingers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Four clients from four addresses, one per-IP slot each: all admitted.
    // At least two of them share an instance, whose cap of one connection
    // per address would refuse the second if nginx's address counted.
    let sources = ["127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6"];
    let mut clients: Vec<Client> = Vec::new();
    for source in sources {
        let client = ws_connect_from(ip(source), &nginx.ws_url(), &[])
            .await
            .unwrap_or_else(|refusal| panic!("{source} through nginx refused: {refusal:?}"));
        clients.push(client);
    }
    let counts = [connected(&gateways[0]).await, connected(&gateways[1]).await];
    assert_eq!(counts.iter().sum::<u64>(), 4, "{counts:?}");
    assert!(counts.iter().any(|&n| n >= 2), "{counts:?}");
    // The gateways log the forwarded client, and nginx as the way it came.
    let mut peers: Vec<String> = gateways.iter().flat_map(opened_peers).collect();
    peers.sort();
    assert_eq!(peers.len(), 4, "{peers:?}");
    for (peer, source) in peers.iter().zip(sources) {
        assert!(
            peer.starts_with(&format!("{source} via 127.0.0.1:")),
            "{peer:?} names {source} via nginx"
        );
    }

    // An event published to the exchange reaches every client through
    // nginx, whichever instance holds it.
    let published = Command::new(env!("CARGO_BIN_EXE_tourcast"))
        .args(["publish", "--rabbitmq-url", &rabbit::amqp_url()])
        .args(["--rabbitmq-exchange", &rabbit.exchange])
        .args(["--tour-id", "deploy_tour", "--tour-name", "Deploy Tour"])
        .args(["--seats", "7", "--retry-for", "10s"])
        .output()
        .await
        .expect("tourcast publish runs");
    assert!(published.status.success(), "{published:?}");
    for client in &mut clients {
        let event = client.recv_type("tour.availability.updated").await;
        assert_eq!(event["data"]["tourId"], "deploy_tour");
        assert_eq!(event["data"]["availableSeats"], 7);
    }

    // 127.0.0.2 again: it holds its one slot on one instance, so by the
    // second attempt at the latest nginx sends it to an instance where it
    // already has a connection, which refuses it with 429.
    let mut again = Vec::new();
    let mut refused = None;
    for _ in 0..2 {
        match ws_connect_from(ip("127.0.0.2"), &nginx.ws_url(), &[]).await {
            Ok(client) => again.push(client),
            Err((status, body)) => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("a third connection from 127.0.0.2 is refused");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited");

    // Straight to an instance from an address that is no trusted proxy:
    // its X-Forwarded-For is a forgery, and 127.0.0.4 is what counts.
    let direct = format!("ws://{}/ws", gateways[0].addr);
    let mut forger = ws_connect_from(ip("127.0.0.4"), &direct, &[("x-forwarded-for", "10.9.9.9")])
        .await
        .expect("the first connection from 127.0.0.4");
    let second =
        ws_connect_from(ip("127.0.0.4"), &direct, &[("x-forwarded-for", "10.9.9.8")]).await;
    assert_eq!(second.err().map(|(status, _)| status), Some(429));
    let peers = opened_peers(&gateways[0]);
    assert!(
        peers.iter().any(|peer| peer.starts_with("127.0.0.4:")),
        "{peers:?}"
    );
    assert!(
        gateways[0].log_lines("10.9.9.").is_empty(),
        "the forged address is nowhere in the log"
    );
    forger
        .send(json!({"type": "ping", "requestId": "still-here"}))
        .await;
    assert_eq!(forger.recv_type("pong").await["requestId"], "still-here");

    // A rolling restart's first half: SIGTERM closes the first instance's
    // clients with 1001 (through nginx, for those that came that way), and
    // the reconnect that follows goes to the other instance.
    let mut everyone: Vec<Client> = clients.into_iter().chain(again).collect();
    everyone.push(forger);
    let on_first = connected(&gateways[0]).await;
    gateways[0].terminate();
    let stopped = tokio::time::timeout(Duration::from_secs(20), gateways[0].child.wait()).await;
    assert!(
        matches!(stopped, Ok(Ok(status)) if status.success()),
        "{stopped:?}"
    );
    let closes = futures_util::future::join_all(
        everyone
            .iter_mut()
            .map(|client| tokio::time::timeout(Duration::from_millis(500), client.expect_close())),
    )
    .await;
    let going_away = closes
        .iter()
        .filter(|close| matches!(close, Ok(Some((1001, _)))))
        .count();
    assert_eq!(going_away as u64, on_first, "{closes:?}");
    assert_eq!(
        closes.iter().filter(|close| close.is_ok()).count(),
        going_away,
        "only the stopped instance's clients were closed, all with 1001: {closes:?}"
    );
    let before = connected(&gateways[1]).await;
    let _reconnected = ws_connect_from(ip("127.0.0.7"), &nginx.ws_url(), &[])
        .await
        .expect("nginx sends the reconnect to the instance still up");
    assert_eq!(connected(&gateways[1]).await, before + 1);

    drop(nginx);
    for gateway in &gateways {
        gateway.terminate();
    }
    rabbit.cleanup().await;
}
