//! Versioned prompt templates (minijinja) for LLM planners. The tool section is rendered from
//! the tool registry, so adding a tool needs no prompt edit; each template is identified by
//! name, semantic version and the sha256 of its text, and every LLM plan records all three.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::domain::PromptRef;
use crate::tools::ToolRegistry;

/// The built-in planner template.
pub const DEFAULT_TEMPLATE: &str = include_str!("../../prompts/planner-1.0.0.jinja");
/// Its name and version.
pub const DEFAULT_NAME: &str = "planner";
pub const DEFAULT_VERSION: &str = "1.0.0";

/// A prompt template with its identity.
#[derive(Debug, Clone)]
pub struct PromptTemplate {
    pub name: String,
    pub version: String,
    pub text: String,
    pub hash: String,
}

/// A worked example shown to the model.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub prompt: String,
    pub plan: Value,
}

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("prompt template {name} {version} could not be rendered: {message}")]
pub struct TemplateError {
    pub name: String,
    pub version: String,
    pub message: String,
}

/// sha256 of a text, hex.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl PromptTemplate {
    pub fn new(name: &str, version: &str, text: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            text: text.to_owned(),
            hash: content_hash(text),
        }
    }

    /// The built-in planner template.
    pub fn builtin() -> Self {
        Self::new(DEFAULT_NAME, DEFAULT_VERSION, DEFAULT_TEMPLATE)
    }

    /// Name, version and hash, as recorded on plans.
    pub fn reference(&self) -> PromptRef {
        PromptRef {
            name: self.name.clone(),
            version: self.version.clone(),
            hash: self.hash.clone(),
        }
    }

    /// Renders the system prompt for these tools and examples.
    pub fn render(
        &self,
        registry: &ToolRegistry,
        examples: &[Example],
    ) -> Result<String, TemplateError> {
        let err = |e: minijinja::Error| TemplateError {
            name: self.name.clone(),
            version: self.version.clone(),
            message: e.to_string(),
        };
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template("t", &self.text).map_err(err)?;
        let tools: Vec<Value> = registry
            .specs()
            .into_iter()
            .map(|s| json!({"name": s.name, "description": s.description, "input_schema": s.input_schema}))
            .collect();
        env.get_template("t")
            .and_then(|t| t.render(minijinja::context! { tools => tools, examples => examples }))
            .map_err(err)
    }
}

/// The few-shot examples of the built-in template.
pub fn default_examples() -> Vec<Example> {
    vec![
        Example {
            prompt: "Add a todo to buy milk, then show me all my tasks".into(),
            plan: json!({"steps": [
                {"tool": "todo_add", "input": {"title": "buy milk"}, "reasoning": "Add the todo."},
                {"tool": "todo_list", "input": {}, "reasoning": "Show all todos."}]}),
        },
        Example {
            prompt: "what is 7 times 6, and add a todo to call Anna then mark it done".into(),
            plan: json!({"steps": [
                {"tool": "calculator", "input": {"expression": "7 * 6"}, "reasoning": "Multiply."},
                {"tool": "todo_add", "input": {"title": "call Anna"}, "reasoning": "Add the todo."},
                {"tool": "todo_complete", "input": {"id": "${steps.2.todo.id}"}, "reasoning": "Complete the todo added in step 2."}]}),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_template_renders_every_tool_and_example() {
        let registry = crate::tools::builtin_registry();
        let t = PromptTemplate::builtin();
        let text = t.render(&registry, &default_examples()).unwrap();
        for name in registry.names() {
            assert!(text.contains(&format!("- {name}: ")), "{name} missing");
        }
        assert!(text.contains("Task: Add a todo to buy milk"));
        // todo_list's paging and order are carried by its description and schema.
        for needle in [
            "newest_first",
            "next_cursor",
            "\"cursor\"",
            "at most 1000 per call",
        ] {
            assert!(text.contains(needle), "{needle} missing");
        }
        assert!(text.contains("\"expression\""));
        assert_eq!(t.hash.len(), 64);
        assert_eq!(t.hash, content_hash(DEFAULT_TEMPLATE));
    }
}
