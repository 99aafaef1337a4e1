//! The error of loading settings: one message saying what is wrong and how to fix it, with the
//! context it arose in ("invalid config file crane.toml: ..."). Settings errors are read by
//! people at start, never matched on, so one type with a message is enough.

use std::fmt::Display;

/// Why the settings could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    message: String,
}

impl SettingsError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Errors of the layers below whose message is what the user needs.
macro_rules! from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for SettingsError {
            fn from(e: $t) -> Self {
                Self::new(e.to_string())
            }
        }
    )*};
}

from_display!(
    crate::tracking::ConfigError,
    crane_core::planning::prompt_library::LibraryError,
    crane_core::planning::prompt::TemplateError,
    crane_core::planning::variants::VariantError
);

/// Results of this crate.
pub type Result<T, E = SettingsError> = std::result::Result<T, E>;

/// Adds what was being done to an error's message: "could not read X: <cause>".
pub(crate) trait Context<T> {
    fn context(self, context: impl Display) -> Result<T>;
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| SettingsError::new(format!("{context}: {e}")))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| SettingsError::new(format!("{}: {e}", context())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| SettingsError::new(context.to_string()))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| SettingsError::new(context().to_string()))
    }
}

/// A [`SettingsError`] from a format string.
#[macro_export]
#[doc(hidden)]
macro_rules! settings_err {
    ($($arg:tt)*) => { $crate::error::SettingsError::new(format!($($arg)*)) };
}

/// Returns early with a [`SettingsError`] from a format string.
#[macro_export]
#[doc(hidden)]
macro_rules! settings_bail {
    ($($arg:tt)*) => { return Err($crate::settings_err!($($arg)*)) };
}
