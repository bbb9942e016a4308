//! A user's notifications. Who may: an authenticated connection, for its
//! own `sub` only (never a user the client names). What flows:
//! `notification`; `subscribed` carries the position live ones follow.

use crate::auth::Identity;
use crate::event::{BookingKind, BookingNotice};
use crate::protocol::ServerMessage;
use crate::protocol::v1::{Notification, NotificationKind};
use crate::time::rfc3339;

use super::{Refused, Target};

/// The connection's own notification channel, or why it has none.
pub fn resolve(identity: &Identity) -> Result<Target, Refused> {
    identity
        .subject
        .clone()
        .map(Target::User)
        .ok_or(Refused::Anonymous)
}

/// The message a user's connections receive for a booking notice.
pub fn message(notice: &BookingNotice, seq: u64) -> ServerMessage {
    let kind = match notice.kind {
        BookingKind::Confirmed => NotificationKind::BookingConfirmed,
        BookingKind::Cancelled => NotificationKind::BookingCancelled,
    };
    ServerMessage::Notification(Notification {
        kind: kind.into(),
        // Every instance numbers the event alike, so this id is the same
        // on every connection of the user, wherever it landed.
        notification_id: notice
            .event_id
            .clone()
            .unwrap_or_else(|| format!("seq-{seq}")),
        booking_id: notice.booking_id.clone(),
        tour_id: notice.tour_id.clone(),
        tour_name: notice.tour_name.clone(),
        seats: notice.seats,
        message: notice.message.clone(),
        seq,
        timestamp: rfc3339(notice.timestamp),
    })
}
