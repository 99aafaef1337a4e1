//! Evaluations, API keys, audit, budgets and the planner registry on both backends.
