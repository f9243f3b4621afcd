//! The one error type of settings: a problem an operator fixes in the file or environment,
//! told in one line that names the key.

/// A configuration problem, in one line naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable could not be read or has the wrong type.
    #[error("{0}")]
    Invalid(String),
    /// A value is well-typed but unusable.
    #[error("{key}: {problem}")]
    Value {
        /// Dotted key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

impl ConfigError {
    pub(super) fn value(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Value {
            key: key.into(),
            problem: problem.into(),
        }
    }
}
