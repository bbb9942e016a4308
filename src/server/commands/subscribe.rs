//! `subscribe` → `subscribed`, then a `snapshot` or the missed events;
//! with `viewers` (a tour by name), then the tour's `viewers` count.
//!
//! A recovery older than memory reads the stream back first: `apply`
//! then returns a [`Recovering`], which the connection awaits (holding its
//! next command, so replies stay in order) and hands back to `resume`.

use futures_util::future::BoxFuture;

use super::{Context, ErrorReply};
use crate::channel::Request;
use crate::engine::{ReadBackError, ReadBackRange, Subscribing};
use crate::event::SourceEvent;
use crate::hub::Target;
use crate::protocol::ServerMessage;
use crate::protocol::v1::{self, ErrorCode, StreamPosition};

/// A subscribe waiting for its read-back of the stream.
pub struct Recovering {
    subscribe: Subscribe,
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
            subscribe, range, ..
        } = self;
        // Only a subscribe with `since` recovers.
        let since = subscribe.since.clone()?;
        let result = context.engine.subscribe_after_read_back(
            context.client,
            context.subs,
            subscribe.target.clone(),
            &since,
            subscribe.request_id.clone(),
            range,
            read,
        );
        subscribe.after(result, context)
    }
}

/// Start receiving a tour's (or every tour's), or a channel's, messages.
pub struct Subscribe {
    request: Request,
    /// What `request` resolved to for this connection (set by `apply`).
    target: Target,
    since: Option<StreamPosition>,
    request_id: Option<String>,
    /// Also deliver the tour's viewer count.
    viewers: bool,
}

impl Subscribe {
    /// From the validated protocol message.
    pub fn parse(message: v1::Subscribe) -> Self {
        Subscribe {
            request: Request::from_fields(message.tour_id, message.channel),
            target: Target::AllTours,
            since: message.since,
            request_id: message.request_id,
            viewers: message.viewers.unwrap_or(false),
        }
    }

    /// Registers the subscription and queues the acknowledgement and state,
    /// unless the stream must be read back first.
    pub fn apply(mut self, context: &mut Context<'_>) -> Option<Recovering> {
        let named_tour = matches!(&self.request, Request::Tour(id) if id != "*");
        if self.viewers && !named_tour {
            // A count of "every tour" means nothing; refused before anything
            // is subscribed, as the schema would refuse a bad field.
            ErrorReply::new(
                ErrorCode::InvalidMessage,
                "`viewers` needs a tour id (not \"*\")",
            )
            .at("/viewers")
            .answering(self.request_id.clone())
            .send(context.client);
            return None;
        }
        self.target = match self.request.resolve(context.identity) {
            Ok(target) => target,
            Err(refused) => {
                ErrorReply::new(ErrorCode::Forbidden, refused.to_string())
                    .at(refused.path())
                    .answering(self.request_id.clone())
                    .send(context.client);
                return None;
            }
        };
        let result = context.engine.subscribe(
            context.client,
            context.subs,
            self.target.clone(),
            self.since.as_ref(),
            self.request_id.clone(),
        );
        if matches!(result, Ok(Subscribing::Answered)) && self.target == Target::Stats {
            // The channel's first message, right behind the acknowledgement.
            context.stats.send_current(context.client, None);
        }
        self.after(result, context)
    }

    fn after(
        self,
        result: Result<Subscribing, crate::engine::SubscribeError>,
        context: &mut Context<'_>,
    ) -> Option<Recovering> {
        match result {
            Ok(Subscribing::Answered) => {
                if let Target::Tour(tour_id) = &self.target {
                    // Each subscribe says afresh whether the count is wanted.
                    context
                        .engine
                        .set_viewers(context.client, context.subs, tour_id, self.viewers);
                    if self.viewers {
                        let viewers = context
                            .presence
                            .viewers_for_new_watcher(context.engine.hub(), tour_id);
                        context.client.send(&ServerMessage::Viewers(viewers));
                    }
                }
                None
            }
            Ok(Subscribing::ReadBack(range)) => Some(Recovering {
                read: context.engine.read_back(&range),
                range,
                subscribe: self,
            }),
            Err(error) => {
                let path = if self.target.is_tour() {
                    "/tourId"
                } else {
                    "/channel"
                };
                ErrorReply::new(ErrorCode::Forbidden, error.to_string())
                    .at(path)
                    .answering(self.request_id.clone())
                    .send(context.client);
                None
            }
        }
    }
}
