//! `publish` → the message goes into the stream, and `published {room,
//! seq, messageId}` comes back once it is there.
//!
//! Nothing is delivered from here: the message is written to the stream
//! (the exchange, for RabbitMQ) and reaches the room's members, the sender
//! included, when every instance reads it back, in stream order, like any
//! event. The engine answers `published` when it applies the message; a
//! write the broker does not confirm is answered `unavailable` instead,
//! and then nothing was delivered.

use chrono::Utc;

use super::{Context, ErrorReply};
use crate::engine::PublishRefused;
use crate::hub::Target;
use crate::protocol::v1::{self, ErrorCode, RoomEvent, RoomMember};
use crate::telemetry::ROOM_PUBLISHES;
use crate::time::rfc3339;

/// Post a message into a room the connection has joined.
pub struct Publish {
    room: String,
    text: String,
    data: Option<Vec<u8>>,
    request_id: Option<String>,
}

impl Publish {
    /// From the validated protocol message.
    pub fn parse(message: v1::Publish) -> Self {
        Publish {
            room: message.room,
            text: message.text,
            data: message.data,
            request_id: message.request_id,
        }
    }

    /// Refuses what it must (not a member, over the publish rate, no
    /// stream), then writes the message to the stream.
    pub fn apply(self, context: &mut Context<'_>) {
        let refuse = |code: ErrorCode, message: String, path: Option<&str>| {
            metrics::counter!(ROOM_PUBLISHES, "outcome" => "refused").increment(1);
            let reply = ErrorReply::new(code, message).answering(self.request_id.clone());
            match path {
                Some(path) => reply.at(path),
                None => reply,
            }
            .send(context.client);
        };
        if !context.subs.contains(&Target::Room(self.room.clone())) {
            return refuse(
                ErrorCode::Forbidden,
                format!("join room {} before publishing to it", self.room),
                Some("/room"),
            );
        }
        if context.publish_limiter.check().is_err() {
            return refuse(
                ErrorCode::RateLimited,
                "too many room messages; slow down".into(),
                None,
            );
        }
        let Some(writer) = context.writer else {
            return refuse(
                ErrorCode::Unavailable,
                "this gateway has no stream to publish room messages to".into(),
                None,
            );
        };
        let message_id = uuid::Uuid::new_v4().to_string();
        if let Err(PublishRefused::Busy) = context.engine.expect_published(
            &message_id,
            context.client,
            &self.room,
            self.request_id.clone(),
        ) {
            return refuse(
                ErrorCode::Unavailable,
                PublishRefused::Busy.to_string(),
                None,
            );
        }
        let event = RoomEvent {
            event_id: Some(message_id.clone()),
            event_type: Some(crate::event::ROOM_MESSAGE.into()),
            room: self.room,
            from: Some(RoomMember {
                user_id: context.room_user(),
            }),
            text: self.text,
            data: self.data,
            timestamp: Some(rfc3339(Utc::now())),
        };
        let written = writer.write(event);
        let engine = std::sync::Arc::clone(context.engine);
        let client = context.client.clone();
        let request_id = self.request_id;
        // The connection goes on reading while the broker confirms: a chat
        // client may send its next message meanwhile.
        tokio::spawn(async move {
            match written.await {
                Ok(()) => {
                    metrics::counter!(ROOM_PUBLISHES, "outcome" => "written").increment(1);
                }
                Err(error) => {
                    metrics::counter!(ROOM_PUBLISHES, "outcome" => "unavailable").increment(1);
                    // Unless the message came back after all (and was answered).
                    if engine.forget_published(&message_id) {
                        tracing::warn!(conn = client.id(), %error, message_id, "room message not written to the stream");
                        ErrorReply::new(
                            ErrorCode::Unavailable,
                            format!("message {message_id} was not published: {error}; retry"),
                        )
                        .answering(request_id)
                        .send(&client);
                    }
                }
            }
        });
    }
}
