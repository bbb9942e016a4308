//! Case conversions between proto names and the names generated code uses.

/// `refresh_stats` → `RefreshStats` (prost's Rust name of a oneof variant).
pub fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `ServerMessage` → `server_message` (prost's module of a message's
/// nested types; the schema file names).
pub fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `ErrorCode` → `ERROR_CODE_` : the prefix protobuf style puts on every
/// value of an enum (and prost strips from the Rust variant names).
pub fn enum_value_prefix(enum_name: &str) -> String {
    format!("{}_", snake(enum_name).to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_convert_both_ways() {
        assert_eq!(upper_camel("refresh_stats"), "RefreshStats");
        assert_eq!(upper_camel("ping"), "Ping");
        assert_eq!(snake("ServerMessage"), "server_message");
        assert_eq!(snake("Ping"), "ping");
        assert_eq!(enum_value_prefix("NotificationKind"), "NOTIFICATION_KIND_");
    }
}
