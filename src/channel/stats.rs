//! The admin statistics. Who may: tokens with the admin claim, or anyone
//! under `--admin-open` without JWT. What flows: `stats`, from the stats
//! task (it has no history, so nothing to recover).

use crate::auth::Identity;

use super::{Refused, Target};

/// The stats channel, or why this connection may not have it.
pub fn resolve(identity: &Identity) -> Result<Target, Refused> {
    if identity.admin {
        Ok(Target::Stats)
    } else {
        Err(Refused::NotAdmin)
    }
}
