//! The guard: when a near hit may be served for a new prompt.
