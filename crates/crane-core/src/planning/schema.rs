//! The JSON schema of a plan, generated from the tool registry: `steps` is an array whose items
//! are one of the tools, each with its own input schema. Structured-output modes send it to the
//! model, so adding a tool changes what the model may answer with no prompt edit.

use serde_json::{Value, json};

use crate::tools::ToolRegistry;

/// The plan schema for these tools.
pub fn plan_schema(registry: &ToolRegistry, max_steps: usize) -> Value {
    let variants: Vec<Value> = registry
        .specs()
        .into_iter()
        .map(|spec| {
            json!({
                "type": "object",
                "properties": {
                    "tool": {"type": "string", "enum": [spec.name]},
                    "input": spec.input_schema,
                    "reasoning": {"type": "string"}
                },
                "required": ["tool", "input", "reasoning"],
                "additionalProperties": false
            })
        })
        .collect();
    json!({
        "type": "object",
        "properties": {
            "steps": {"type": "array", "maxItems": max_steps, "items": {"anyOf": variants}},
            "error": {"type": "string"}
        },
        "required": ["steps"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_one_variant_per_tool() {
        let registry = crate::tools::builtin_registry();
        let schema = plan_schema(&registry, 50);
        let variants = schema["properties"]["steps"]["items"]["anyOf"]
            .as_array()
            .unwrap();
        assert_eq!(variants.len(), registry.names().len());
        assert_eq!(variants[0]["properties"]["tool"]["enum"][0], "calculator");
        // The schema itself is a valid JSON schema that accepts a real plan.
        let validator = jsonschema::validator_for(&schema).unwrap();
        let plan =
            json!({"steps": [{"tool": "todo_add", "input": {"title": "x"}, "reasoning": "r"}]});
        assert!(validator.is_valid(&plan));
        let bad = json!({"steps": [{"tool": "todo_add", "input": {"title": 5}, "reasoning": "r"}]});
        assert!(!validator.is_valid(&bad));
        // todo_list paging and order reach the model through the schema.
        let newest = json!({"steps": [{"tool": "todo_list", "reasoning": "r",
            "input": {"order": "newest_first", "limit": 1, "cursor": "${steps.1.next_cursor}"}}]});
        assert!(validator.is_valid(&newest));
        let bad =
            json!({"steps": [{"tool": "todo_list", "input": {"order": "last"}, "reasoning": "r"}]});
        assert!(!validator.is_valid(&bad));
    }
}
