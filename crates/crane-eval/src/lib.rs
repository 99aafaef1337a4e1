//! The evaluation harness behind `crane eval`: runs a JSONL golden dataset through planner
//! variants (in process, or against a live server), scores every trial, builds the JSON report
//! and Markdown summary, checks the CI gates and compares two reports.
//!
//! One concern per module: `dataset` (format and loading), `scorers`, `runner`, `report`,
//! `gates`, `compare`. The command itself (flags, printing, storing) lives in the CLI;
//! docs/eval.md is the user guide. Depends on the core runtime and the settings; never on the
//! HTTP server, experiment tracking or the CLI.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod compare;
pub mod dataset;
pub mod gates;
pub mod report;
pub mod runner;
pub mod scorers;
