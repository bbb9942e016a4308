//! The other channels during a `latency` run: notification subscribers and
//! a stats admin, next to the tour clients.
//!
//! - `--notification-users M`: M more connections, each with a token for a
//!   user of its own, subscribe to `notifications`. The run publishes one
//!   `notification.booking.confirmed` per user (`--notifications-per-user`;
//!   0 for subscribers alone), interleaved with the tour events, and every
//!   subscriber checks that it received exactly its own (its `bookingId`),
//!   as many as were published for it, and nobody else's.
//! - `--stats-admin`: one connection with an admin token subscribes to
//!   `stats` and counts the messages (start the gateway with a short
//!   `--stats-interval`, so that some arrive during the run).
//!
//! Both need `--jwt-secret`, the gateway's HS256 secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{SecondsFormat, Utc};
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::shared::{Failures, Target, Ws, connect_ws_url, next_text};
use crate::tokens::{Tokens, with_token};

/// The routing key of the published notifications.
pub(crate) const NOTIFICATION_KEY: &str = "notification.booking.confirmed";

#[derive(Debug, Args)]
pub(crate) struct ChannelArgs {
    /// The gateway's HS256 secret (its `--jwt-secret`): every connection,
    /// the tour clients' too, then presents a token.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,
    /// Extra connections, each a distinct user subscribed to
    /// `notifications`; one notification is published for each.
    #[arg(long, default_value_t = 0, requires = "jwt_secret")]
    pub(crate) notification_users: usize,
    /// Notifications published for each of those users during the run.
    #[arg(long, default_value_t = 1)]
    pub(crate) notifications_per_user: usize,
    /// Publish the notifications after the tour events, not interleaved.
    #[arg(long)]
    pub(crate) notifications_after: bool,
    /// One extra connection with an admin token, subscribed to `stats`.
    #[arg(long, requires = "jwt_secret")]
    pub(crate) stats_admin: bool,
}

impl ChannelArgs {
    /// Whether any connection beyond the tour clients is asked for.
    pub(crate) fn any(&self) -> bool {
        self.notification_users > 0 || self.stats_admin
    }

    /// The connections beyond the tour clients.
    pub(crate) fn connections(&self) -> usize {
        self.notification_users + usize::from(self.stats_admin)
    }
}

/// The notification subscribers and the stats admin, connected and reading.
pub(crate) struct ChannelLoad {
    /// Marks this run's users and bookings: user `{run}u{i}`, booking `{run}b{i}`.
    run: String,
    users: usize,
    per_user: usize,
    subscribers: JoinSet<SubscriberReport>,
    admin: Option<JoinHandle<AdminReport>>,
    /// Own notifications received, over all subscribers.
    delivered: Arc<AtomicUsize>,
    subscribed: usize,
    failures: Arc<Failures>,
}

/// What one notification subscriber saw.
#[derive(Default)]
struct SubscriberReport {
    own: u64,
    foreign: u64,
    /// Frames that are not notifications (none are expected).
    other: u64,
    closed: Option<String>,
}

/// What the stats admin saw.
#[derive(Default)]
struct AdminReport {
    /// Receipt of every `stats` message, in ns since `base`.
    receipts_ns: Vec<u64>,
    /// The largest `connectedClients` and `deliveriesPerSecond` reported.
    max_connected: u64,
    max_deliveries_per_second: f64,
    closed: Option<String>,
}

impl ChannelLoad {
    /// Connects and subscribes everything `args` asks for, `gate` bounding
    /// the handshakes in flight; returns once all are subscribed or failed.
    /// Receipts are timed from `base`; everything reads until `stop`.
    pub(crate) async fn connect(
        args: &ChannelArgs,
        target: &Arc<Target>,
        gate: &Arc<Semaphore>,
        base: Instant,
        stop: &CancellationToken,
    ) -> Result<Self> {
        let tokens = Tokens::new(
            args.jwt_secret
                .as_deref()
                .ok_or_else(|| anyhow!("--jwt-secret is needed for the other channels"))?,
        );
        let run = format!("lgn-{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let delivered = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Failures::default());
        let started = Instant::now();

        let mut subscribers = JoinSet::new();
        for index in 0..args.notification_users {
            let url = with_token(&target.url, &tokens.sign(&format!("{run}u{index}"), false)?);
            let own_booking = format!("{run}b{index}");
            let (target, gate, stop) = (Arc::clone(target), Arc::clone(gate), stop.clone());
            let (ready, failures, delivered) = (
                Arc::clone(&ready),
                Arc::clone(&failures),
                Arc::clone(&delivered),
            );
            subscribers.spawn(async move {
                let setup = async {
                    let _permit = gate.acquire().await?;
                    subscribe(&target, &url, "notifications").await
                };
                match tokio::time::timeout(Duration::from_secs(30), setup).await {
                    Ok(Ok(ws)) => {
                        ready.fetch_add(1, Ordering::Relaxed);
                        read_notifications(ws, &own_booking, &delivered, &stop).await
                    }
                    Ok(Err(error)) => {
                        failures.record(&error).await;
                        SubscriberReport::default()
                    }
                    Err(_) => {
                        failures.record(&anyhow!("timed out subscribing")).await;
                        SubscriberReport::default()
                    }
                }
            });
        }

        let admin = if args.stats_admin {
            let url = with_token(&target.url, &tokens.sign(&format!("{run}admin"), true)?);
            let ws =
                tokio::time::timeout(Duration::from_secs(30), subscribe(target, &url, "stats"))
                    .await
                    .map_err(|_| anyhow!("the stats admin timed out subscribing"))?
                    .context("the stats admin")?;
            let stop = stop.clone();
            Some(tokio::spawn(
                async move { read_stats(ws, base, &stop).await },
            ))
        } else {
            None
        };

        let deadline = started + Duration::from_secs(120);
        while ready.load(Ordering::Relaxed) + failures.count.load(Ordering::Relaxed)
            < args.notification_users
        {
            if Instant::now() >= deadline {
                bail!("notification subscribers not ready after 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        failures.report("notification subscribers").await;
        let subscribed = ready.load(Ordering::Relaxed);
        eprintln!(
            "latency: {subscribed} notification subscribers{} in {:.1}s",
            if args.stats_admin {
                " and a stats admin"
            } else {
                ""
            },
            started.elapsed().as_secs_f64()
        );
        Ok(ChannelLoad {
            run,
            users: args.notification_users,
            per_user: args.notifications_per_user,
            subscribers,
            admin,
            delivered,
            subscribed,
            failures,
        })
    }

    /// Notifications to publish, over all users.
    pub(crate) fn notifications(&self) -> usize {
        self.users * self.per_user
    }

    /// Own notifications received so far, over all subscribers.
    pub(crate) fn delivered(&self) -> usize {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Notification `index` (of [`Self::notifications`]), for user
    /// `index % users`, in the SPEC's publisher shape.
    pub(crate) fn notification_payload(&self, index: usize) -> String {
        let run = &self.run;
        let user = index % self.users.max(1);
        json!({
            "eventId": format!("{run}n{index}"),
            "userId": format!("{run}u{user}"),
            "bookingId": format!("{run}b{user}"),
            "tourId": "lg_tour_0",
            "tourName": "Loadgen Tour 0",
            "seats": 2,
            "message": "Your booking is confirmed!",
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        })
        .to_string()
    }

    /// Collects the reports (call after `stop` was cancelled). Stats
    /// receipts between `window_ns.0` and `window_ns.1` (since `base`)
    /// count as during the burst.
    pub(crate) async fn finish(mut self, published: usize, window_ns: (u64, u64)) -> ChannelReport {
        let mut reports = Vec::with_capacity(self.users);
        let collected = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(report) = self.subscribers.join_next().await {
                if let Ok(report) = report {
                    reports.push(report);
                }
            }
        })
        .await;
        if collected.is_err() {
            self.subscribers.abort_all();
        }
        let admin = match self.admin {
            Some(handle) => tokio::time::timeout(Duration::from_secs(5), handle)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        ChannelReport {
            users: self.users,
            per_user: self.per_user,
            subscribed: self.subscribed,
            failed: self.failures.count.load(Ordering::Relaxed),
            published,
            delivered: reports.iter().map(|r| r.own).sum(),
            foreign: reports.iter().map(|r| r.foreign).sum(),
            other: reports.iter().map(|r| r.other).sum(),
            fewer: reports
                .iter()
                .filter(|r| r.own < self.per_user as u64)
                .count(),
            more: reports
                .iter()
                .filter(|r| r.own > self.per_user as u64)
                .count(),
            closed: reports.iter().filter_map(|r| r.closed.clone()).collect(),
            stats: admin.map(|admin| StatsSummary {
                messages: admin.receipts_ns.len(),
                during_burst: admin
                    .receipts_ns
                    .iter()
                    .filter(|&&ns| ns >= window_ns.0 && ns <= window_ns.1)
                    .count(),
                max_connected: admin.max_connected,
                max_deliveries_per_second: admin.max_deliveries_per_second,
                closed: admin.closed,
            }),
        }
    }
}

/// Connects to `url`, waits for the greeting, subscribes to `channel` and
/// waits for `subscribed`.
async fn subscribe(target: &Target, url: &str, channel: &str) -> Result<Ws> {
    let mut ws = connect_ws_url(target, url).await?;
    next_text(&mut ws)
        .await
        .context("waiting for the greeting")?;
    let request = json!({"type": "subscribe", "channel": channel});
    ws.send(Message::text(request.to_string())).await?;
    loop {
        let text = next_text(&mut ws).await?;
        let message: Value = serde_json::from_str(&text)?;
        match message.get("type").and_then(Value::as_str) {
            Some("subscribed") => return Ok(ws),
            Some("error") => bail!("subscribe to {channel} refused: {text}"),
            _ => {}
        }
    }
}

/// Reads until `stop`, sorting notifications into own and foreign.
async fn read_notifications(
    mut ws: Ws,
    own_booking: &str,
    delivered: &AtomicUsize,
    stop: &CancellationToken,
) -> SubscriberReport {
    let mut report = SubscriberReport::default();
    report.closed = read_until_stopped(&mut ws, stop, |message| {
        if message.get("type").and_then(Value::as_str) != Some("notification") {
            report.other += 1;
            return;
        }
        if message.get("bookingId").and_then(Value::as_str) == Some(own_booking) {
            report.own += 1;
            delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            report.foreign += 1;
        }
    })
    .await;
    report
}

/// Reads until `stop`, timing every `stats` message.
async fn read_stats(mut ws: Ws, base: Instant, stop: &CancellationToken) -> AdminReport {
    let mut report = AdminReport::default();
    report.closed = read_until_stopped(&mut ws, stop, |message| {
        if message.get("type").and_then(Value::as_str) != Some("stats") {
            return;
        }
        report.receipts_ns.push(base.elapsed().as_nanos() as u64);
        let field = |name: &str| message.get(name).and_then(Value::as_f64).unwrap_or(0.0);
        report.max_connected = report.max_connected.max(field("connectedClients") as u64);
        report.max_deliveries_per_second = report
            .max_deliveries_per_second
            .max(field("deliveriesPerSecond"));
    })
    .await;
    report
}

/// Hands every JSON text frame to `on_message` until `stop`; returns why
/// the server ended the connection, if it did.
async fn read_until_stopped(
    ws: &mut Ws,
    stop: &CancellationToken,
    mut on_message: impl FnMut(&Value),
) -> Option<String> {
    let closed = loop {
        let frame = tokio::select! {
            biased;
            frame = ws.next() => frame,
            _ = stop.cancelled() => break None,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                if let Ok(message) = serde_json::from_str::<Value>(&text) {
                    on_message(&message);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break Some(match frame {
                    Some(f) => format!("{} {}", u16::from(f.code), f.reason),
                    None => "close without code".into(),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => break Some(format!("error: {error}")),
            None => break Some("connection ended".into()),
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), Ws::close(ws, None)).await;
    closed
}

/// What the other channels saw in a run.
pub(crate) struct ChannelReport {
    users: usize,
    per_user: usize,
    subscribed: usize,
    failed: usize,
    published: usize,
    /// Own notifications received, over all subscribers.
    delivered: u64,
    /// Notifications received by a subscriber they were not for.
    foreign: u64,
    /// Other frames the subscribers received.
    other: u64,
    /// Subscribers that got fewer of theirs than were published, or more.
    fewer: usize,
    more: usize,
    closed: Vec<String>,
    stats: Option<StatsSummary>,
}

struct StatsSummary {
    messages: usize,
    during_burst: usize,
    max_connected: u64,
    max_deliveries_per_second: f64,
    closed: Option<String>,
}

impl ChannelReport {
    /// Every subscriber got exactly its own notifications, each once, and
    /// nothing else; the admin stayed connected.
    pub(crate) fn exact(&self) -> bool {
        let expected = self.users * self.per_user;
        self.failed == 0
            && self.subscribed == self.users
            && self.published == expected
            && self.delivered == expected as u64
            && self.foreign == 0
            && self.other == 0
            && self.fewer == 0
            && self.more == 0
            && self.closed.is_empty()
            && self.stats.as_ref().is_none_or(|s| s.closed.is_none())
    }

    pub(crate) fn print(&self) {
        if self.users > 0 {
            println!(
                "  notifications  {} subscribers ({} failed), {} published, {} received by their user ({} subscribers with fewer, {} with more), {} by another, {} other frames, {} closed by server{}",
                self.subscribed,
                self.failed,
                self.published,
                self.delivered,
                self.fewer,
                self.more,
                self.foreign,
                self.other,
                self.closed.len(),
                if self.exact() {
                    ": exact"
                } else {
                    ": NOT EXACT"
                }
            );
            if let Some(reason) = self.closed.first() {
                println!("  e.g. closed    {reason}");
            }
        }
        if let Some(stats) = &self.stats {
            println!(
                "  stats admin    {} stats messages ({} from first publish to last tour receipt), max connectedClients {}, max deliveriesPerSecond {:.0}{}",
                stats.messages,
                stats.during_burst,
                stats.max_connected,
                stats.max_deliveries_per_second,
                stats
                    .closed
                    .as_deref()
                    .map_or(String::new(), |c| format!(", closed by server: {c}"))
            );
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "notificationUsers": self.users,
            "notificationsPerUser": self.per_user,
            "notificationSubscribers": self.subscribed,
            "notificationSubscribersFailed": self.failed,
            "notificationsPublished": self.published,
            "notificationsDelivered": self.delivered,
            "notificationsForeign": self.foreign,
            "notificationSubscribersOtherFrames": self.other,
            "subscribersWithFewer": self.fewer,
            "subscribersWithMore": self.more,
            "subscribersClosedByServer": self.closed.len(),
            "exact": self.exact(),
            "stats": self.stats.as_ref().map(|s| json!({
                "messages": s.messages,
                "duringBurst": s.during_burst,
                "maxConnectedClients": s.max_connected,
                "maxDeliveriesPerSecond": s.max_deliveries_per_second,
                "closedByServer": s.closed,
            })),
        })
    }
}
