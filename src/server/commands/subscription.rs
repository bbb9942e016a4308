//! What `subscribe` and `join` share: asking the engine for a channel, and
//! waiting when its recovery (or a room's recent messages) must be read
//! back from the stream first. `apply` then returns a [`Recovering`],
//! which the connection awaits (holding its next command, so replies stay
//! in order) and hands back to `resume`.

use futures_util::future::BoxFuture;

use super::{Context, ErrorReply};
use crate::engine::{Acknowledging, ReadBackError, ReadBackRange, SubscribeError, Subscribing};
use crate::event::SourceEvent;
use crate::hub::Target;
use crate::protocol::v1::{ErrorCode, StreamPosition};

/// A channel asked for, resolved to its target for this connection.
pub struct Subscription {
    /// What the request resolved to.
    pub target: Target,
    /// Where the client left off, if it says.
    pub since: Option<StreamPosition>,
    /// What the acknowledgement echoes.
    pub ack: Acknowledging,
    /// The JSON pointer a refusal names (`/tourId`, `/channel`, `/room`).
    pub path: &'static str,
}

/// A subscription waiting for its read-back of the stream.
pub struct Recovering {
    subscription: Subscription,
    range: ReadBackRange,
    read: BoxFuture<'static, Result<Vec<SourceEvent>, ReadBackError>>,
}

impl Recovering {
    /// Waits for the read-back; then [`Recovering::resume`] with the result.
    pub async fn read(&mut self) -> Result<Vec<SourceEvent>, ReadBackError> {
        (&mut self.read).await
    }

    /// Finishes the subscription with what the read-back returned.
    pub fn resume(
        self,
        read: Result<Vec<SourceEvent>, ReadBackError>,
        context: &mut Context<'_>,
    ) -> Option<Recovering> {
        let Recovering {
            subscription,
            range,
            ..
        } = self;
        let result = context.engine.subscribe_after_read_back(
            context.client,
            context.subs,
            subscription.target.clone(),
            subscription.since.as_ref(),
            subscription.ack.clone(),
            range,
            read,
        );
        subscription.after(result, context)
    }
}

impl Subscription {
    /// Registers the subscription and queues the acknowledgement and what
    /// follows it, unless the stream must be read back first.
    pub fn start(self, context: &mut Context<'_>) -> (Option<Recovering>, bool) {
        let result = context.engine.subscribe(
            context.client,
            context.subs,
            self.target.clone(),
            self.since.as_ref(),
            self.ack.clone(),
        );
        let answered = matches!(result, Ok(Subscribing::Answered));
        (self.after(result, context), answered)
    }

    fn after(
        self,
        result: Result<Subscribing, SubscribeError>,
        context: &mut Context<'_>,
    ) -> Option<Recovering> {
        match result {
            Ok(Subscribing::Answered) => None,
            Ok(Subscribing::ReadBack(range)) => Some(Recovering {
                read: context.engine.read_back(&range),
                range,
                subscription: self,
            }),
            Err(error) => {
                ErrorReply::new(ErrorCode::Forbidden, error.to_string())
                    .at(self.path)
                    .answering(self.ack.request_id)
                    .send(context.client);
                None
            }
        }
    }
}
