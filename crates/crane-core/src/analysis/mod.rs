//! Analyses over stored runs (issue 17). `failures`: failed runs of a tenant grouped by error
//! category and by near-duplicate prompts, so that they can become regression cases
//! (`crane analyze failures`, `GET /analysis/failures`).

pub mod failures;

pub use failures::{
    DEFAULT_LIMIT, DEFAULT_THRESHOLD, Failure, FailureGroup, FailureReport, MAX_LIMIT, MAX_RUN_IDS,
    categorize, collect, group, normalize,
};
