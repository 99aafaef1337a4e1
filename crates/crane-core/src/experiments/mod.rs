//! A/B experiments over planner variants (DESIGN.md "Experiments"): assignment of runs to
//! arms ([`assign`]) and the statistics that decide them ([`stats`]).

pub mod assign;
pub mod stats;
