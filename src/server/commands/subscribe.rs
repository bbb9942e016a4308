//! `subscribe` → `subscribed`, then a `snapshot` or the missed events.

use super::{Context, send_error};
use crate::hub::Target;
use crate::protocol::codec::DecodeError;
use crate::protocol::v1::{self, ErrorCode, StreamPosition};

/// Start receiving a tour's (or every tour's) events.
pub struct Subscribe {
    target: Target,
    since: Option<StreamPosition>,
    request_id: Option<String>,
}

impl Subscribe {
    /// From the validated protocol message.
    pub fn parse(message: v1::Subscribe) -> Self {
        Subscribe {
            target: Target::parse(&message.tour_id),
            since: message.since,
            request_id: message.request_id,
        }
    }

    /// Registers the subscription and queues the acknowledgement and state.
    pub fn apply(self, context: &mut Context<'_>) {
        let refusal = |message: String| DecodeError {
            code: ErrorCode::Forbidden,
            message,
            path: Some("/tourId".into()),
            request_id: self.request_id.clone(),
        };
        // "*" is always allowed: for a restricted token it means "my tours".
        if let Target::Tour(tour_id) = &self.target
            && !context.subs.permissions().allows(tour_id)
        {
            let error = refusal(format!("not allowed to subscribe to {tour_id}"));
            return send_error(context.client, &error);
        }
        let result = context.engine.subscribe(
            context.client,
            context.subs,
            self.target.clone(),
            self.since.as_ref(),
            self.request_id.clone(),
        );
        if let Err(error) = result {
            send_error(context.client, &refusal(error.to_string()));
        }
    }
}
