//! What `subscribe` and `join` share: asking the engine for a channel, and
//! waiting when its recovery (or a room's recent messages) must be read
//! back from the stream first. `apply` then returns a [`Recovering`],
//! which the connection awaits (holding its next command, so replies stay
//! in order) and hands back to `resume`.

use futures_util::future::BoxFuture;

use super::{Context, ErrorReply};
use crate::channel::Request;
use crate::engine::{Acknowledging, ReadBackError, ReadBackRange, SubscribeError, Subscribing};
use crate::event::SourceEvent;
use crate::hub::Target;
use crate::protocol::ServerMessage;
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
    /// What follows once it is answered.
    pub then: Then,
}

/// What a kind of channel sends right behind its answer (after a
/// read-back, too).
pub enum Then {
    /// Nothing more.
    Nothing,
    /// The stats channel's first `stats`.
    FirstStats,
    /// For a tour by name: whether its `viewers` count is wanted, and if
    /// so the count at once.
    Viewers {
        /// The tour.
        tour_id: String,
        /// Whether the subscribe asked for `viewers`.
        wanted: bool,
    },
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

/// The target `request` names for this connection; when it may not have
/// it, the `forbidden` reply is queued and `None` returned.
pub fn resolve(
    request: &Request,
    request_id: &Option<String>,
    context: &Context<'_>,
) -> Option<Target> {
    match request.resolve(context.identity) {
        Ok(target) => Some(target),
        Err(refused) => {
            let reply = ErrorReply::refused(&refused).answering(request_id.clone());
            reply.send(context.client);
            None
        }
    }
}

impl Subscription {
    /// Registers the subscription and queues the acknowledgement and what
    /// follows it, unless the stream must be read back first.
    pub fn start(self, context: &mut Context<'_>) -> Option<Recovering> {
        let result = context.engine.subscribe(
            context.client,
            context.subs,
            self.target.clone(),
            self.since.as_ref(),
            self.ack.clone(),
        );
        self.after(result, context)
    }

    fn after(
        self,
        result: Result<Subscribing, SubscribeError>,
        context: &mut Context<'_>,
    ) -> Option<Recovering> {
        match result {
            Ok(Subscribing::Answered) => {
                self.then.send(context);
                None
            }
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

impl Then {
    fn send(self, context: &mut Context<'_>) {
        match self {
            Then::Nothing => {}
            Then::FirstStats => context.stats.send_current(context.client, None),
            Then::Viewers { tour_id, wanted } => {
                context
                    .engine
                    .set_viewers(context.client, context.subs, &tour_id, wanted);
                if wanted {
                    let viewers = context
                        .presence
                        .viewers_for_new_watcher(context.engine.hub(), &tour_id);
                    context.client.send(&ServerMessage::Viewers(viewers));
                }
            }
        }
    }
}
