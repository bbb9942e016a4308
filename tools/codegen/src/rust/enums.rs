//! One serde helper module per enum: prost stores an enum field as an
//! `i32`, and the JSON view carries the value's name
//! (`"code":"invalid_message"`); fields point their `serde(with)` here.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::model::Enumeration;
use crate::names::snake;

/// The helper module of the enum `name`: `ErrorCode` → `error_code_json`.
pub fn module_name(name: &str) -> String {
    format!("{}_json", snake(name))
}

/// `mod <enum>_json` (and its `option` twin for `optional` fields), calling
/// the runtime's `json_enum` functions with the enum's type.
pub fn json_module(enumeration: &Enumeration, runtime: &TokenStream) -> TokenStream {
    let module = format_ident!("{}", module_name(&enumeration.name));
    let name = format_ident!("{}", enumeration.name);
    quote! {
        // Not every enum is used both plain and `optional`.
        #[allow(dead_code)]
        pub(crate) mod #module {
            pub fn serialize<S: serde::Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
                #runtime::json_enum::serialize::<super::#name, S>(value, serializer)
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
                #runtime::json_enum::deserialize::<super::#name, D>(deserializer)
            }
            /// The same for an `optional` enum field (`Option<i32>`).
            pub mod option {
                pub fn serialize<S: serde::Serializer>(value: &Option<i32>, serializer: S) -> Result<S::Ok, S::Error> {
                    #runtime::json_enum::serialize_option::<super::super::#name, S>(value, serializer)
                }
                pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
                    #runtime::json_enum::deserialize_option::<super::super::#name, D>(deserializer)
                }
            }
        }
    }
}
