//! Time as the protocol writes it: RFC 3339 with milliseconds and `Z`, the
//! way the platform's services write it. Every timestamp the gateway sends
//! or publishes goes through here.

use chrono::{DateTime, SecondsFormat, Utc};

/// `time` in RFC 3339 with milliseconds and `Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, in RFC 3339 with milliseconds and `Z`.
pub fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}
