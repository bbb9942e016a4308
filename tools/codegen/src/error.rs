//! Why generation failed: a proto the generator cannot honour, or a file it
//! cannot read or write.

use std::path::PathBuf;

/// A generation failure. Every variant names the proto element or the file
/// at fault, so the message alone says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `protox` refused the proto sources.
    #[error("compiling the protos: {0}")]
    Compile(#[from] Box<protox::Error>),

    /// A `buf.validate` rule (or a combination) that the generated
    /// validators do not implement: refused rather than silently skipped,
    /// since protobuf frames would then pass what JSON Schema refuses.
    #[error("{element}: {rule} is not implemented by tourcast-codegen's validators")]
    UnsupportedRule {
        /// Fully qualified name of the field, message or oneof.
        element: String,
        /// The rule, e.g. `buf.validate.StringRules.email`.
        rule: String,
    },

    /// A proto shape the JSON view has no rendering for (a map, a `bytes`
    /// field, a oneof outside an envelope, …).
    #[error("{element}: {reason}")]
    Unsupported {
        /// Fully qualified name of the element.
        element: String,
        /// What is not supported, and what to do instead.
        reason: String,
    },

    /// Two generated names collide.
    #[error("{0}")]
    Collision(String),

    /// prost-build failed (it writes the Rust types).
    #[error("prost-build: {0}")]
    ProstBuild(std::io::Error),

    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },

    /// The generated Rust did not parse: a generator bug.
    #[error("the generated Rust does not parse: {0}")]
    Syntax(#[from] syn::Error),

    /// Rendering YAML failed.
    #[error("rendering YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),

    /// An external generator (`buf generate`) failed or is not installed.
    #[error("{0}")]
    Tool(String),
}

impl From<protox::Error> for Error {
    fn from(error: protox::Error) -> Self {
        Error::Compile(Box::new(error))
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsupported(element: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unsupported {
            element: element.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn rule(element: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::UnsupportedRule {
            element: element.into(),
            rule: rule.into(),
        }
    }
}
