//! LLM provider clients (placeholder until implemented).
