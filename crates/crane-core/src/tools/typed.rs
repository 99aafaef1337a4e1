//! `TypedTool`: write a tool against Rust input/output types; the JSON schemas are generated
//! from those types (schemars) so the schema can never drift from what the tool accepts.

use std::future::Future;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Tool, ToolContext, ToolError, ToolFuture};

/// A tool with typed input and output.
pub trait TypedTool: Send + Sync + 'static {
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    /// No side effects (see [`Tool::read_only`]); false unless a tool says so.
    const READ_ONLY: bool = false;
    type Input: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize + JsonSchema;

    /// Checks beyond the schema, done at plan time.
    fn check(&self, _input: &Self::Input) -> Result<(), String> {
        Ok(())
    }

    /// Executes the tool.
    fn run(
        &self,
        ctx: &ToolContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
}

/// Adapts a [`TypedTool`] to the object-safe [`Tool`] trait.
pub struct Typed<T: TypedTool> {
    tool: T,
    input_schema: Value,
    output_schema: Value,
    _marker: PhantomData<fn() -> T>,
}

/// Wraps a typed tool for the registry.
pub fn typed<T: TypedTool>(tool: T) -> Typed<T> {
    let input_schema = schema_value(schemars::schema_for!(T::Input));
    let output_schema = schema_value(schemars::schema_for!(T::Output));
    Typed {
        tool,
        input_schema,
        output_schema,
        _marker: PhantomData,
    }
}

fn schema_value(schema: schemars::Schema) -> Value {
    let mut value = schema.to_value();
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
        map.remove("title");
    }
    value
}

fn decode<I: DeserializeOwned>(input: Value) -> Result<I, ToolError> {
    serde_json::from_value(input).map_err(|e| ToolError::invalid(format!("invalid input: {e}")))
}

impl<T: TypedTool> Tool for Typed<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn description(&self) -> &'static str {
        T::DESCRIPTION
    }
    fn input_schema(&self) -> &Value {
        &self.input_schema
    }
    fn output_schema(&self) -> &Value {
        &self.output_schema
    }
    fn read_only(&self) -> bool {
        T::READ_ONLY
    }
    fn check(&self, input: &Value) -> Result<(), String> {
        let typed: T::Input = decode(input.clone()).map_err(|e| e.message)?;
        self.tool.check(&typed)
    }
    fn execute<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a> {
        Box::pin(async move {
            let typed = decode(input)?;
            let output = self.tool.run(ctx, typed).await?;
            serde_json::to_value(output)
                .map_err(|e| ToolError::new(super::ToolErrorKind::Internal, e.to_string()))
        })
    }
}
