//! Tours: one tour, or every tour (`"*"`). Who may: the token's `tours`
//! claim (`"*"` is always allowed and means "every tour I may see"). What
//! flows: a `snapshot` on subscribe, then `tour.availability.*`.

use crate::auth::Identity;
use crate::event::{AvailabilityChange, AvailabilityKind};
use crate::protocol::ServerMessage;
use crate::protocol::v1::{
    AvailabilityLow, AvailabilityUpdated, LowAvailability, TourAvailability, TourState,
};
use crate::time::rfc3339;

use super::{Refused, Target};

/// The target `tour_id` names for `identity`, or why it may not have it.
pub fn resolve(tour_id: &str, identity: &Identity) -> Result<Target, Refused> {
    let target = Target::tour(tour_id);
    match &target {
        Target::Tour(id) if !identity.permissions.allows(id) => Err(Refused::Tour(id.clone())),
        _ => Ok(target),
    }
}

/// The server message announcing an applied availability event.
pub fn message(event: &AvailabilityChange, state: &TourState) -> ServerMessage {
    let timestamp = rfc3339(event.timestamp);
    match event.kind {
        AvailabilityKind::Updated => ServerMessage::AvailabilityUpdated(AvailabilityUpdated {
            data: Some(TourAvailability {
                tour_id: state.tour_id.clone(),
                tour_name: state.tour_name.clone(),
                available_seats: state.available_seats,
                max_group_size: state.max_group_size,
            }),
            seq: state.seq,
            timestamp,
            event_id: event.event_id.clone(),
        }),
        AvailabilityKind::Low => ServerMessage::AvailabilityLow(AvailabilityLow {
            data: Some(LowAvailability {
                tour_id: state.tour_id.clone(),
                // Old clients read `tourTitle`; fall back to the id for unnamed tours.
                tour_title: state
                    .tour_name
                    .clone()
                    .unwrap_or_else(|| state.tour_id.clone()),
                available_seats: state.available_seats,
                max_group_size: state.max_group_size,
                threshold: event.threshold.unwrap_or(state.available_seats),
            }),
            seq: state.seq,
            timestamp,
            event_id: event.event_id.clone(),
        }),
    }
}
