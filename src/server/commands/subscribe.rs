//! `subscribe` → `subscribed`, then a `snapshot` or the missed events.

use super::Context;
use crate::hub::{Target, encode_frame};
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
        let result = context.engine.subscribe(
            context.client,
            context.subs,
            self.target,
            self.since.as_ref(),
            self.request_id.clone(),
        );
        if let Err(error) = result {
            let refusal = DecodeError {
                code: ErrorCode::Forbidden,
                message: error.to_string(),
                path: Some("/tourId".into()),
                request_id: self.request_id,
            };
            context
                .client
                .offer(encode_frame(&refusal.to_reply(), context.client.encoding()));
        }
    }
}
