//! Security and operations against real clients: JWT handshakes (every way
//! a token can be wrong), per-tour permissions, token expiry and refresh,
//! rate limits and floods, per-IP caps, `/metrics`, and secrets in logs.
//! Each refusal asserts its exact status, close code or error code, and
//! that a bystander connection is unaffected.

mod common;

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use common::{Client, Encoding, GatewayProcess, TestServer, updated};
use tourcast::auth::{AuthConfig, Secret};
use tourcast::server::forwarded::TrustedProxies;

const SECRET: &str = "test-secret-do-not-use";
const RSA_PRIVATE: &str = include_str!("fixtures/jwt/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/jwt/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("fixtures/jwt/ec_private.pem");
const EC_PUBLIC: &str = include_str!("fixtures/jwt/ec_public.pem");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hs256(claims: Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

fn es256(claims: Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
}

fn valid_claims(tours: Value) -> Value {
    json!({"sub": "user-1", "exp": now() + 300, "tours": tours})
}

fn hs_config() -> AuthConfig {
    AuthConfig {
        secret: Secret(SECRET.into()),
        tours_claim: "tours".into(),
        leeway: Duration::from_secs(5),
        ..AuthConfig::default()
    }
}

async fn server_with(auth: AuthConfig) -> TestServer {
    TestServer::start_full(|_, _, _| {}, auth, None).await
}

/// Connects with `token` in the Authorization header (or none).
async fn connect_bearer(
    server: &TestServer,
    token: Option<&str>,
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let mut request = server.ws_url().into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(Client::greeted(ws, Encoding::Json).await)
}

fn status_of<T>(result: Result<T, tokio_tungstenite::tungstenite::Error>) -> u16 {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => 101,
    }
}

async fn assert_alive(client: &mut Client) {
    client
        .send(json!({"type": "ping", "requestId": "still-here"}))
        .await;
    assert_eq!(client.recv_type("pong").await["requestId"], "still-here");
}

#[tokio::test]
async fn every_bad_token_is_refused_with_401_before_the_upgrade() {
    let server = server_with(hs_config()).await;
    let mut bystander = connect_bearer(&server, Some(&hs256(valid_claims(json!("*")), SECRET)))
        .await
        .expect("a valid token connects");

    let none_header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(valid_claims(json!("*")).to_string());
    let bad_tokens: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not.a.jwt".into())),
        (
            "wrong signature",
            Some(hs256(valid_claims(json!("*")), "another-secret")),
        ),
        (
            "expired",
            Some(hs256(
                json!({"sub": "u", "exp": now() - 600, "tours": "*"}),
                SECRET,
            )),
        ),
        (
            "no exp",
            Some(hs256(json!({"sub": "u", "tours": "*"}), SECRET)),
        ),
        ("alg none", Some(format!("{none_header}.{none_payload}."))),
        // Issue 10, finding 7: `nbf` and `iat` were not checked.
        (
            "not valid before a minute from now (nbf)",
            Some(hs256(
                json!({"sub": "u", "exp": now() + 600, "nbf": now() + 60, "tours": "*"}),
                SECRET,
            )),
        ),
        (
            "issued a minute from now (iat)",
            Some(hs256(
                json!({"sub": "u", "exp": now() + 600, "iat": now() + 60, "tours": "*"}),
                SECRET,
            )),
        ),
        (
            "other algorithm (RS256 on an HS256 server)",
            Some(rs256(valid_claims(json!("*")))),
        ),
    ];
    for (case, token) in bad_tokens {
        let status = status_of(connect_bearer(&server, token.as_deref()).await);
        assert_eq!(status, 401, "{case}");
    }
    // Within the leeway (JWT_LEEWAY), a signer's clock slightly ahead is fine.
    let skewed = hs256(
        json!({"sub": "u", "exp": now() + 600, "nbf": now() + 2, "iat": now() + 2, "tours": "*"}),
        SECRET,
    );
    assert_eq!(status_of(connect_bearer(&server, Some(&skewed)).await), 101);
    // The body tells an attacker nothing about why.
    let response = reqwest::Client::new()
        .get(server.http_url("/ws"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("authorization", "Bearer not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "a valid access token is required");
    assert_alive(&mut bystander).await;
    server.stop().await;
}

#[tokio::test]
async fn hs_rs_confusion_is_refused_and_public_keys_verify_rs256_and_es256() {
    let rsa = server_with(AuthConfig {
        public_key: Some(RSA_PUBLIC.into()),
        ..hs_config_without_secret()
    })
    .await;
    // The classic attack: an HS256 token "signed" with the server's public key.
    let forged = hs256(valid_claims(json!("*")), RSA_PUBLIC);
    assert_eq!(status_of(connect_bearer(&rsa, Some(&forged)).await), 401);
    assert_eq!(
        status_of(connect_bearer(&rsa, Some(&es256(valid_claims(json!("*"))))).await),
        401
    );
    let mut ok = connect_bearer(&rsa, Some(&rs256(valid_claims(json!("*")))))
        .await
        .unwrap();
    assert_alive(&mut ok).await;
    // Browsers put the token in the query string.
    let url = format!("{}?token={}", rsa.ws_url(), rs256(valid_claims(json!("*"))));
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("?token= works");
    Client::greeted(ws, Encoding::Json).await;
    rsa.stop().await;

    let ec = server_with(AuthConfig {
        public_key: Some(EC_PUBLIC.into()),
        ..hs_config_without_secret()
    })
    .await;
    assert_eq!(
        status_of(connect_bearer(&ec, Some(&rs256(valid_claims(json!("*"))))).await),
        401
    );
    connect_bearer(&ec, Some(&es256(valid_claims(json!("*")))))
        .await
        .expect("ES256 verifies");
    ec.stop().await;
}

fn hs_config_without_secret() -> AuthConfig {
    AuthConfig {
        tours_claim: "tours".into(),
        ..AuthConfig::default()
    }
}

#[tokio::test]
async fn audience_and_issuer_are_enforced_when_configured() {
    let server = server_with(AuthConfig {
        audience: Some("tourcast".into()),
        issuer: Some("https://auth.example".into()),
        ..hs_config()
    })
    .await;
    let claims = |aud: &str, iss: &str| json!({"sub": "u", "exp": now() + 60, "tours": "*", "aud": aud, "iss": iss});
    let good = hs256(claims("tourcast", "https://auth.example"), SECRET);
    connect_bearer(&server, Some(&good))
        .await
        .expect("right aud and iss");
    for bad in [
        claims("other", "https://auth.example"),
        claims("tourcast", "https://evil.example"),
    ] {
        assert_eq!(
            status_of(connect_bearer(&server, Some(&hs256(bad, SECRET))).await),
            401
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn permissions_limit_subscriptions_and_the_implicit_broadcast() {
    let server = server_with(hs_config()).await;
    server.engine.apply(updated("tour_paris", 10));
    server.engine.apply(updated("tour_rome", 10));
    let token = hs256(valid_claims(json!(["tour_paris"])), SECRET);
    let mut restricted = connect_bearer(&server, Some(&token)).await.unwrap();
    let mut everyone = connect_bearer(&server, Some(&hs256(valid_claims(json!("*")), SECRET)))
        .await
        .unwrap();

    // Never subscribed: only the permitted tour arrives.
    server.engine.apply(updated("tour_rome", 9));
    server.engine.apply(updated("tour_paris", 9));
    assert_eq!(restricted.recv().await["data"]["tourId"], "tour_paris");
    assert_eq!(everyone.recv().await["data"]["tourId"], "tour_rome");
    assert_eq!(everyone.recv().await["data"]["tourId"], "tour_paris");

    restricted
        .send(json!({"type": "subscribe", "tourId": "tour_rome", "requestId": "r1"}))
        .await;
    let error = restricted.recv().await;
    assert_eq!(error["code"], "forbidden");
    assert_eq!(error["path"], "/tourId");
    assert_eq!(error["requestId"], "r1");

    // "*" means "every tour I may see".
    restricted
        .send(json!({"type": "subscribe", "tourId": "*"}))
        .await;
    let snapshot = restricted.recv_type("snapshot").await;
    let tours: Vec<&str> = snapshot["tours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tourId"].as_str().unwrap())
        .collect();
    assert_eq!(tours, ["tour_paris"]);
    server.engine.apply(updated("tour_rome", 8));
    restricted.expect_silence(Duration::from_millis(200)).await;
    assert_alive(&mut everyone).await;
    server.stop().await;
}

#[tokio::test]
async fn an_expiring_token_closes_with_4001_unless_refreshed() {
    let server = server_with(hs_config()).await;
    let short = |sub: &str, secs: i64| {
        hs256(
            json!({"sub": sub, "exp": now() + secs, "tours": "*"}),
            SECRET,
        )
    };
    let mut bystander = connect_bearer(&server, Some(&short("other", 300)))
        .await
        .unwrap();

    let mut lapsing = connect_bearer(&server, Some(&short("user-1", 2)))
        .await
        .unwrap();
    let mut refreshing = connect_bearer(&server, Some(&short("user-1", 2)))
        .await
        .unwrap();

    // A token for someone else is refused and changes nothing.
    refreshing
        .send(json!({"type": "refresh", "token": short("intruder", 300), "requestId": "x"}))
        .await;
    let error = refreshing.recv().await;
    assert_eq!(
        (error["code"].as_str(), error["requestId"].as_str()),
        (Some("unauthorized"), Some("x"))
    );
    refreshing
        .send(json!({"type": "refresh", "token": short("user-1", 300), "requestId": "f1"}))
        .await;
    let refreshed = refreshing.recv().await;
    assert_eq!(refreshed["type"], "refreshed");
    assert_eq!(refreshed["requestId"], "f1");
    assert!(refreshed["expiresAt"].as_str().unwrap().ends_with('Z'));

    let close = lapsing.expect_close().await.expect("a close frame");
    assert_eq!(close, (4001, "token expired".to_string()));
    // Past the first token's expiry, the refreshed connection is still served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_alive(&mut refreshing).await;
    assert_alive(&mut bystander).await;
    server.stop().await;
}

#[tokio::test]
async fn floods_get_rate_limited_errors_then_close_1008() {
    let server = TestServer::start_with(|settings, _, _| {
        // One token a second: the whole flood fits in the first second.
        settings.rate_limit = 1;
        settings.rate_burst = 20;
        settings.flood_limit = 15;
    })
    .await;
    let mut bystander = server.json_client().await;
    let mut flooder = server.json_client().await;
    for _ in 0..200 {
        flooder.send_raw(Message::text(r#"{"type":"ping"}"#)).await;
    }
    let (mut pongs, mut limited) = (0, 0);
    let close = loop {
        match flooder.next().await {
            common::Received::Message(m) if m["type"] == "pong" => pongs += 1,
            common::Received::Message(m) if m["code"] == "rate_limited" => limited += 1,
            common::Received::Message(other) => panic!("unexpected {other}"),
            common::Received::Close(frame) => break frame,
            common::Received::Ended => break None,
        }
    };
    assert_eq!(pongs, 20, "the burst is served");
    assert_eq!(
        limited, 14,
        "then rate_limited errors until the flood limit"
    );
    assert_eq!(close.map(|c| c.0), Some(1008));
    assert_alive(&mut bystander).await;
    server.stop().await;
}

#[tokio::test]
async fn too_many_connections_from_one_ip_get_429() {
    let server = TestServer::start_full(|_, _, _| {}, AuthConfig::default(), Some(2)).await;
    let mut first = server.json_client().await;
    let _second = server.json_client().await;
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(server.ws_url()).await),
        429
    );
    assert_alive(&mut first).await;
    server.stop().await;
}

/// Behind a reverse proxy every client has the proxy's address; with the
/// proxy in TRUSTED_PROXIES, the per-IP cap counts the address it forwards
/// in `X-Forwarded-For`, and the same header from anyone else is ignored.
#[tokio::test]
async fn the_per_ip_cap_counts_forwarded_addresses_only_from_trusted_proxies() {
    let server = TestServer::start_full(
        |settings, _, _| {
            settings.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()]);
        },
        AuthConfig::default(),
        Some(1),
    )
    .await;
    let proxy: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let xff = |address| [("x-forwarded-for", address)];
    let url = server.ws_url();
    let mut first = common::ws_connect_from(proxy, &url, &xff("198.51.100.1"))
        .await
        .expect("first forwarded client admitted");
    let _second = common::ws_connect_from(proxy, &url, &xff("198.51.100.2"))
        .await
        .expect("another forwarded address is another client");
    let refused = common::ws_connect_from(proxy, &url, &xff("198.51.100.1")).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(429));

    // Not a trusted proxy: the header is a forgery, the TCP peer counts.
    let untrusted: std::net::IpAddr = "127.0.0.4".parse().unwrap();
    let _direct = common::ws_connect_from(untrusted, &url, &xff("10.9.9.9"))
        .await
        .expect("the first connection from 127.0.0.4");
    let forged = common::ws_connect_from(untrusted, &url, &xff("10.9.9.8")).await;
    assert_eq!(forged.err().map(|(status, _)| status), Some(429));
    assert_alive(&mut first).await;
    server.stop().await;
}

#[tokio::test]
async fn metrics_move_as_clients_act_and_secrets_stay_out_of_logs() {
    let token = hs256(valid_claims(json!("*")), SECRET);
    let gateway = GatewayProcess::start(
        &["--demo", "--demo-interval", "50ms"],
        &[("JWT_SECRET", SECRET), ("RUST_LOG", "debug")],
    )
    .await;
    let metrics = || async {
        reqwest::get(gateway.http_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    let url = format!("{}?token={token}", gateway.ws_url());
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut client = Client::greeted(ws, Encoding::Json).await;
    client.send(json!({"type": "ping"})).await;
    client.recv_type("pong").await;
    client
        .send_raw(Message::text(r#"{"type":"subscribe"}"#))
        .await;
    assert_eq!(client.recv_type("error").await["code"], "invalid_message");
    let refused = tokio_tungstenite::connect_async(gateway.ws_url()).await;
    assert_eq!(status_of(refused), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = metrics().await;
    let value = |series: &str| series_value(&text, series);
    assert_eq!(
        value(r#"tourcast_connections_total{encoding="json",transport="websocket"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tourcast_connections_open{encoding="json",transport="websocket"}"#),
        1.0
    );
    assert_eq!(value(r#"tourcast_client_messages_total{type="ping"}"#), 1.0);
    assert_eq!(
        value(r#"tourcast_client_errors_total{code="invalid_message"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tourcast_handshake_refusals_total{reason="unauthorized"}"#),
        1.0
    );
    assert_eq!(value(r#"tourcast_event_source_up{source="demo"}"#), 1.0);
    let applied = value(r#"tourcast_events_total{outcome="applied"}"#);
    assert!(applied >= 3.0, "the demo catalog and bookings were applied");
    assert!(value("tourcast_deliveries_total") >= 1.0);
    assert!(text.contains("tourcast_event_fanout_seconds_bucket"));

    client.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = metrics().await;
    assert_eq!(
        series_value(
            &later,
            r#"tourcast_connections_open{encoding="json",transport="websocket"}"#
        ),
        0.0
    );
    assert!(series_value(&later, r#"tourcast_events_total{outcome="applied"}"#) > applied);
    assert_eq!(
        series_value(
            &later,
            r#"tourcast_disconnects_total{reason="client_closed",transport="websocket"}"#
        ),
        1.0
    );

    // Debug logs, JSON lines: nothing carries the secret or the token.
    gateway.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = gateway.log_lines("");
    assert!(logs.iter().any(|l| l.contains("connection opened")));
    assert!(
        logs.iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "LOG_FORMAT=json"
    );
    for line in &logs {
        assert!(!line.contains(SECRET), "secret leaked: {line}");
        assert!(!line.contains(&token), "token leaked: {line}");
    }
}

/// The value of one series in a Prometheus text exposition.
fn series_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

#[tokio::test]
async fn tokens_from_tourcast_token_are_accepted_by_the_gateway() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tourcast"))
        .args([
            "token",
            "--secret",
            SECRET,
            "--sub",
            "alice",
            "--tours",
            "tour_paris",
            "--ttl",
            "5m",
        ])
        .output()
        .expect("tourcast token runs");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let gateway = GatewayProcess::start(&["--demo"], &[("JWT_SECRET", SECRET)]).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}?token={token}", gateway.ws_url()))
        .await
        .expect("the issued token is accepted");
    let mut client = Client::greeted(ws, Encoding::Json).await;
    client
        .send(json!({"type": "subscribe", "tourId": "tour_rome"}))
        .await;
    assert_eq!(client.recv_type("error").await["code"], "forbidden");
    client
        .send(json!({"type": "subscribe", "tourId": "tour_paris"}))
        .await;
    let snapshot = client.recv_type("snapshot").await;
    assert_eq!(snapshot["tours"][0]["tourId"], "tour_paris");
    assert_eq!(
        gateway.log_lines("\"user\":\"alice\"").len(),
        1,
        "sub is the user in logs"
    );
}

/// Issue 10, finding 9: one log line per refused handshake let an attack
/// write 20,007 lines in 6 s. Lines are now rate-limited per reason, and
/// the counter stays exact.
#[tokio::test]
async fn refused_handshakes_are_counted_exactly_and_logged_sparingly() {
    let gateway = common::GatewayProcess::start(&["--demo"], &[("JWT_SECRET", SECRET)]).await;
    const ATTEMPTS: usize = 2_000;
    let http = reqwest::Client::new();
    let url = gateway.http_url("/ws");
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..20 {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            for _ in (worker..ATTEMPTS).step_by(20) {
                let response = http
                    .get(&url)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-version", "13")
                    .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .header("authorization", "Bearer not.a.jwt")
                    .send()
                    .await
                    .expect("an answer");
                assert_eq!(response.status().as_u16(), 401);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("worker");
    }
    let elapsed = started.elapsed().as_secs() as usize;
    let metrics = http
        .get(gateway.http_url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(&format!(
            "tourcast_handshake_refusals_total{{reason=\"unauthorized\"}} {ATTEMPTS}"
        )),
        "{metrics}"
    );
    let lines = gateway.log_lines("handshake refused");
    assert!(
        !lines.is_empty() && lines.len() <= elapsed + 2,
        "{} lines for {ATTEMPTS} refusals in {elapsed} s",
        lines.len()
    );
    // The lines say how many were held back, so the log adds up too.
    let logged: u64 = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|l| l["fields"]["suppressed"].as_u64().unwrap_or(0) + 1)
        .sum();
    assert!(logged <= ATTEMPTS as u64, "{logged}");
}

/// Raises this process's open-file limit to its hard limit (the flood
/// below needs more than a default 1024).
fn raise_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

/// Whether the server closed `socket` (EOF or reset) within `wait`.
async fn closed_within(socket: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buffer = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // e.g. a 408 response before the close
        }
    }
}

/// Issue 10, finding 4: silent and 1-byte-a-second sockets stayed open
/// forever and counted against no cap; 1,100 of them exhausted a gateway
/// at `ulimit -n 1024`, and then every handshake and /health timed out.
#[tokio::test]
async fn silent_and_slowloris_sockets_are_closed_and_health_answers_during_a_flood() {
    use tokio::io::AsyncWriteExt as _;
    raise_file_limit();
    let gateway =
        GatewayProcess::start_with_file_limit(1024, &["--demo", "--handshake-timeout", "2s"], &[])
            .await;
    let addr = gateway.addr;
    // A slowloris client: a request head, one byte a second.
    let mut slowloris = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let trickle = tokio::spawn(async move {
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n"
            .iter()
            .cycle()
            .take(30)
        {
            if slowloris.write_all(&[*byte]).await.is_err() {
                return true; // closed by the server
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        closed_within(&mut slowloris, Duration::from_secs(1)).await
    });
    // 2,000 sockets that never send a byte: more than the gateway has files.
    let mut silent = Vec::new();
    for _ in 0..2_000 {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(socket) => silent.push(socket),
            Err(error) => panic!("connect failed after {}: {error}", silent.len()),
        }
    }
    // /health and a WebSocket client still get through, during the flood.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let health = http
        .get(gateway.http_url("/health"))
        .send()
        .await
        .expect("/health answers during the flood");
    assert_eq!(health.status().as_u16(), 200);
    let mut client = Client::connect(&gateway.ws_url(), Encoding::Json).await;
    assert_alive(&mut client).await;

    // Every silent socket is closed once the handshake timeout (2 s) passes;
    // the oldest may have been closed sooner, to make room.
    for socket in silent.iter_mut().rev().take(200) {
        assert!(
            closed_within(socket, Duration::from_secs(6)).await,
            "a silent socket outlived the handshake timeout"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(10), trickle)
            .await
            .expect("the slowloris client ends")
            .expect("trickle task"),
        "the slowloris socket was closed"
    );
    // The upgraded WebSocket is not a pending connection: it stays.
    assert_alive(&mut client).await;
    let metrics = http
        .get(gateway.http_url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("text");
    for reason in ["handshake_timeout", "pending_evicted"] {
        assert!(
            metrics.contains(&format!(
                "tourcast_handshake_refusals_total{{reason=\"{reason}\"}}"
            )),
            "{reason} counted: {metrics}"
        );
    }
}
