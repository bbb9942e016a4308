//! Reading proto options: the extension helper both option readers use, and
//! tourcast's own options (`proto/tourcast/v1/options.proto`), which say
//! what `buf.validate` has no word for: how a message looks in the JSON
//! view, and where publishers put it.

use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumValueDescriptor, FieldDescriptor, MessageDescriptor, Value,
};

/// The package that declares tourcast's options. Protos of any package
/// import them from `tourcast/v1/options.proto`.
pub const OPTIONS_PACKAGE: &str = "tourcast.v1";

/// The value of the extension `name` (fully qualified) in `options`, when
/// the pool knows the extension and the options set it.
pub fn extension(pool: &DescriptorPool, options: &DynamicMessage, name: &str) -> Option<Value> {
    let extension = pool.get_extension_by_name(name)?;
    options
        .has_extension(&extension)
        .then(|| options.get_extension(&extension).into_owned())
}

/// A set field of a dynamic message (`None` when unset).
pub fn get(message: &DynamicMessage, name: &str) -> Option<Value> {
    if !message.has_field_by_name(name) {
        return None;
    }
    message.get_field_by_name(name).map(|v| v.into_owned())
}

fn tourcast_option(pool: &DescriptorPool, options: &DynamicMessage, name: &str) -> Option<Value> {
    extension(pool, options, &format!("{OPTIONS_PACKAGE}.{name}"))
}

/// `(tourcast.v1.json_type)`: the JSON `type` of an envelope's variant, when
/// it is not the field's name.
pub fn json_type(pool: &DescriptorPool, field: &FieldDescriptor) -> Option<String> {
    tourcast_option(pool, &field.options(), "json_type").and_then(|v| v.as_str().map(str::to_owned))
}

/// `(tourcast.v1.json_object)`: a `bytes` field carrying a JSON object's
/// text, which the JSON view shows as the object itself.
pub fn json_object(pool: &DescriptorPool, field: &FieldDescriptor) -> bool {
    tourcast_option(pool, &field.options(), "json_object")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// `(tourcast.v1.json_allow_unknown_fields)`: the JSON view accepts (and
/// ignores) properties the message does not define.
pub fn allows_unknown_fields(pool: &DescriptorPool, message: &MessageDescriptor) -> bool {
    tourcast_option(pool, &message.options(), "json_allow_unknown_fields")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// `(tourcast.v1.json_value)`: an enum value's JSON name, when it is not
/// the lower-cased value name without the enum's prefix.
pub fn json_value(pool: &DescriptorPool, value: &EnumValueDescriptor) -> Option<String> {
    tourcast_option(pool, &value.options(), "json_value")
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// `(tourcast.v1.routing_key)`: the routing keys publishers put the message
/// on the exchange with (none: not a publisher event).
pub fn routing_keys(pool: &DescriptorPool, message: &MessageDescriptor) -> Vec<String> {
    let Some(value) = tourcast_option(pool, &message.options(), "routing_key") else {
        return Vec::new();
    };
    value
        .as_list()
        .unwrap_or_default()
        .iter()
        .filter_map(|key| key.as_str().map(str::to_owned))
        .collect()
}
