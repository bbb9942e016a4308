//! The command-line tools that ship in the `tourcast` binary besides the
//! gateway: `tourcast publish` (events onto the exchange, as the platform's
//! services publish them) and `tourcast token` (an access token to try
//! authentication with). They use the library as a client would.

pub mod publish;
pub mod token;
