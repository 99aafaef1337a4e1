//! A/B experiments over planner variants (DESIGN.md "Experiments"): assignment of runs to
//! arms ([`assign`]), the statistics that decide them ([`stats`]), and the service that runs
//! them in a process ([`service`]), and the rollback guard of a promotion ([`guard`]).

pub mod assign;
pub mod guard;
pub mod service;
pub mod stats;
