//! Timestamps: UTC, serialised as RFC 3339 with microseconds.

/// The timestamp type used in every stored record.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The current time.
pub fn now() -> Timestamp {
    chrono::Utc::now()
}
