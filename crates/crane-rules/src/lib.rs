//! Rule planner (placeholder until implemented).
