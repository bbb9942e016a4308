//! `error` replies: a command refused (`forbidden`, `unauthorized`), a
//! connection limit hit (`rate_limited`, `too_large`), or a frame the codec
//! refused. Each is counted by its code.

use crate::hub::ClientHandle;
use crate::protocol::codec::{DecodeError, error_reply};
use crate::protocol::v1::ErrorCode;
use crate::telemetry::CLIENT_ERRORS;

/// An `error` reply; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The protocol's error code.
    pub code: ErrorCode,
    /// What was wrong, for a person.
    pub message: String,
    /// JSON pointer to the offending field, when there is one.
    pub path: Option<String>,
    /// The refused message's `requestId`, when it could be read.
    pub request_id: Option<String>,
}

impl ErrorReply {
    /// A reply with no path and no `requestId`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            message: message.into(),
            path: None,
            request_id: None,
        }
    }

    /// `forbidden`: the connection may not have the channel it named.
    pub fn refused(refused: &crate::channel::Refused) -> Self {
        ErrorReply::new(ErrorCode::Forbidden, refused.to_string()).at(refused.path())
    }

    /// Points the reply at a field.
    pub fn at(mut self, path: &str) -> Self {
        self.path = Some(path.to_string());
        self
    }

    /// Echoes a `requestId`.
    pub fn answering(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    /// Queues the reply to `client` and counts it by code.
    pub fn send(self, client: &ClientHandle) {
        let code = self
            .code
            .as_str_name()
            .trim_start_matches("ERROR_CODE_")
            .to_ascii_lowercase();
        metrics::counter!(CLIENT_ERRORS, "code" => code).increment(1);
        client.send(&error_reply(
            self.code,
            self.message,
            self.path,
            self.request_id,
        ));
    }
}

impl From<DecodeError> for ErrorReply {
    fn from(error: DecodeError) -> Self {
        ErrorReply {
            code: error.code,
            message: error.message,
            path: error.path,
            request_id: error.request_id,
        }
    }
}
