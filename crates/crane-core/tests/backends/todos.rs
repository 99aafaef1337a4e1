//! Todos on both backends.
