//! Catalog bootstrap: the initial state of every tour from the catalog
//! service (`CATALOG_URL`), as the old service loaded it.
//!
//! The stream replay already rebuilds every tour that had an event within
//! the retention window; the catalog fills in the others. So the catalog is
//! applied once the replay has caught up (or after a short wait when the
//! broker is down, so that a gateway without RabbitMQ still has a snapshot
//! to serve), and only for tours the engine does not know yet. A catalog
//! that is down or returns garbage is logged and retried; it never stops the
//! gateway.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::rabbitmq::redact_url;
use crate::engine::Engine;
use crate::protocol::v1::{AvailabilityEvent, TourState};
use crate::protocol::validate::Validate as _;
use crate::telemetry as metric;
use crate::time::rfc3339;

/// Largest catalog response read.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Timeout of one catalog request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the catalog waits for the stream replay before applying anyway.
const WAIT_FOR_STREAM: Duration = Duration::from_secs(5);

/// Settings of the catalog bootstrap.
#[derive(Debug, Clone)]
pub(crate) struct CatalogConfig {
    pub url: String,
    pub retry: Duration,
}

/// One tour of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogTour {
    /// Tour id.
    pub id: String,
    /// Display name (`name`, `title`, `tourName`…).
    pub name: Option<String>,
    /// Seats still bookable.
    pub available_seats: u32,
    /// Size of the largest group.
    pub max_group_size: Option<u32>,
    /// When the catalog last changed the tour, if it says.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Why the catalog could not be loaded.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The request failed (connection refused, timeout…).
    #[error("request failed: {0}")]
    Request(String),
    /// The catalog answered with an error status.
    #[error("the catalog answered HTTP {0}")]
    Status(u16),
    /// The body exceeded the size limit.
    #[error("the response exceeds {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not a catalog.
    #[error("not a catalog: {0}")]
    Garbage(String),
}

/// Parses a catalog: a JSON array of tours (or an object holding one under
/// `tours`, `data` or `items`). Entries that are not valid tours are skipped
/// and counted; a non-empty catalog with no valid tour at all is garbage.
pub fn parse_catalog(body: &[u8]) -> Result<(Vec<CatalogTour>, usize), CatalogError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| CatalogError::Garbage(e.to_string()))?;
    let entries = match &value {
        Value::Array(entries) => entries,
        Value::Object(object) => ["tours", "data", "items"]
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_array))
            .ok_or_else(|| CatalogError::Garbage("expected an array of tours".into()))?,
        _ => return Err(CatalogError::Garbage("expected an array of tours".into())),
    };
    let tours: Vec<CatalogTour> = entries.iter().filter_map(parse_tour).collect();
    let skipped = entries.len() - tours.len();
    if tours.is_empty() && skipped > 0 {
        return Err(CatalogError::Garbage(format!(
            "none of its {skipped} entries is a tour with an id and available seats"
        )));
    }
    Ok((tours, skipped))
}

fn parse_tour(entry: &Value) -> Option<CatalogTour> {
    let object = entry.as_object()?;
    let id = match first(object, &["id", "tourId", "tour_id"])? {
        Value::String(id) => id.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return None,
    };
    let name = first(
        object,
        &["name", "title", "tourName", "tourTitle", "tour_name"],
    )
    .and_then(Value::as_str)
    .map(str::to_owned);
    let available_seats =
        u32::try_from(first(object, &["available_seats", "availableSeats"])?.as_u64()?).ok()?;
    let max_group_size = match first(object, &["max_group_size", "maxGroupSize"]) {
        None | Some(Value::Null) => None,
        Some(value) => Some(u32::try_from(value.as_u64()?).ok()?),
    };
    let updated_at = first(object, &["updated_at", "updatedAt"])
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    // The same rules as a published event (id pattern, lengths, ranges).
    let as_event = AvailabilityEvent {
        tour_id: id.clone(),
        tour_name: name.clone(),
        available_seats,
        max_group_size,
        ..AvailabilityEvent::default()
    };
    as_event.validate("").ok()?;
    Some(CatalogTour {
        id,
        name,
        available_seats,
        max_group_size,
        updated_at,
    })
}

fn first<'a>(object: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|key| object.get(*key))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<CatalogTour>, CatalogError> {
    let mut response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| CatalogError::Request(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(CatalogError::Status(response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CatalogError::Request(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(CatalogError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let (tours, skipped) = parse_catalog(&body)?;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "catalog entries without a valid id and seat count were ignored"
        );
    }
    Ok(tours)
}

/// Loads the catalog (retrying until it answers) and seeds the tours the
/// engine does not know yet.
pub(crate) async fn bootstrap(
    config: CatalogConfig,
    engine: Arc<Engine>,
    mut caught_up: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let url = redact_url(&config.url);
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the catalog HTTP client; no catalog bootstrap");
            return;
        }
    };
    let tours = loop {
        match fetch(&client, &config.url).await {
            Ok(tours) => break tours,
            Err(error) => {
                metrics::counter!(metric::CATALOG_FAILURES).increment(1);
                tracing::warn!(%url, %error, retry_in = ?config.retry, "catalog bootstrap failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(config.retry) => {}
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = caught_up.wait_for(|caught_up| *caught_up) => {}
        _ = tokio::time::sleep(WAIT_FOR_STREAM) => {}
    }
    let seeded = seed(&engine, tours, Utc::now());
    metrics::gauge!(metric::CATALOG_TOURS).set(seeded as f64);
    tracing::info!(%url, tours = seeded, "catalog loaded");
}

/// Seeds the catalog's tours that the engine does not know yet, as base
/// state (see [`Engine::seed`]).
fn seed(engine: &Engine, tours: Vec<CatalogTour>, now: DateTime<Utc>) -> usize {
    engine.seed(tours.into_iter().map(|tour| TourState {
        tour_id: tour.id,
        tour_name: tour.name,
        available_seats: tour.available_seats,
        max_group_size: tour.max_group_size,
        seq: 0,
        updated_at: rfc3339(tour.updated_at.unwrap_or(now).min(now)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_old_service_catalog_shapes() {
        let body = br#"[
            {"id":"tour_paris","name":"Paris City Tour","available_seats":20,"max_group_size":20},
            {"id":"tour_london","title":"London Eye Experience","availableSeats":15,"maxGroupSize":15},
            {"id":7,"name":"Numbered","available_seats":3,"updatedAt":"2025-01-08T10:30:00Z"}
        ]"#;
        let (tours, skipped) = parse_catalog(body).expect("a catalog");
        assert_eq!(skipped, 0);
        assert_eq!(tours.len(), 3);
        assert_eq!(tours[0].name.as_deref(), Some("Paris City Tour"));
        assert_eq!(tours[1].name.as_deref(), Some("London Eye Experience"));
        assert_eq!(tours[1].available_seats, 15);
        assert_eq!(tours[1].max_group_size, Some(15));
        assert_eq!(tours[2].id, "7");
        assert!(tours[2].updated_at.is_some());
    }

    #[test]
    fn accepts_a_wrapped_array_and_skips_bad_entries() {
        let body = br#"{"tours":[{"id":"a","available_seats":1},{"id":"b"},{"id":"bad id","available_seats":1},"x"]}"#;
        let (tours, skipped) = parse_catalog(body).expect("a catalog");
        assert_eq!(tours.len(), 1);
        assert_eq!(skipped, 3);
        assert_eq!(parse_catalog(b"[]").expect("empty is fine").0.len(), 0);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_catalog(b"<html>oops</html>").is_err());
        assert!(parse_catalog(br#"{"error":"down"}"#).is_err());
        assert!(parse_catalog(br#"[{"name":"no id"}]"#).is_err());
        assert!(parse_catalog(b"42").is_err());
    }
}
