//! Tools: the `Tool` trait, the registry that lists them with their JSON schemas, and the
//! built-in tools (calculator and the todo tools).

mod calculator;
mod cursor;
pub mod debug;
mod error;
mod registry;
mod todo;
mod typed;

pub use calculator::Calculator;
pub use cursor::CursorError;
pub use error::{ToolError, ToolErrorKind};
pub use registry::{SchemaViolation, ToolRegistry, ToolSpec};
pub use todo::{
    DEFAULT_LIST, MAX_LIST, TodoAdd, TodoComplete, TodoDelete, TodoList, TodoListInput,
    TodoListOutput, TodoOutput, TodoSelectInput, TodoSelectOutput,
};
pub use typed::{TypedTool, typed};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::store::Store;

/// What a tool may use while it executes.
#[derive(Clone)]
pub struct ToolContext {
    /// The durable store (todos live there).
    pub store: Arc<Store>,
    /// The run this call belongs to.
    pub run_id: String,
    /// The run's tenant: the todo tools act on this tenant's todos only.
    pub tenant: String,
    /// The step this call executes.
    pub step_number: u32,
}

impl ToolContext {
    /// A key unique to this step of this run: side effects recorded under it happen once even
    /// when the step is re-executed after a crash or a retry.
    pub fn effect_key(&self) -> String {
        format!("{}:{}", self.run_id, self.step_number)
    }
}

/// A boxed future returned by [`Tool::execute`].
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send + 'a>>;

/// A tool the planner can call. Implement [`TypedTool`] instead for a schema generated from
/// Rust types; this object-safe trait is what the registry stores.
pub trait Tool: Send + Sync {
    /// Name as used in plans; valid for every provider's function-calling API.
    fn name(&self) -> &'static str;
    /// One-line description for `crane tools` and LLM prompts.
    fn description(&self) -> &'static str;
    /// JSON Schema of the input.
    fn input_schema(&self) -> &Value;
    /// JSON Schema of the output (used to check references at plan time).
    fn output_schema(&self) -> &Value;
    /// Checks beyond the schema, at plan time, on an input without references.
    fn check(&self, input: &Value) -> Result<(), String>;
    /// Executes the tool.
    fn execute<'a>(&'a self, ctx: &'a ToolContext, input: Value) -> ToolFuture<'a>;
    /// True when executing the tool changes nothing anywhere (no side effects), so running it
    /// again after a crash is harmless. The runtime stores a run whose plan holds only such
    /// tools once, when it finishes (see `runtime`); a tool that is not sure says false.
    fn read_only(&self) -> bool {
        false
    }
}

/// The registry with every built-in tool.
pub fn builtin_registry() -> ToolRegistry {
    let mut registry = ToolRegistry::default();
    registry.register(Arc::new(typed(Calculator)));
    registry.register(Arc::new(typed(TodoAdd)));
    registry.register(Arc::new(typed(TodoList)));
    registry.register(Arc::new(typed(TodoComplete)));
    registry.register(Arc::new(typed(TodoDelete)));
    registry
}

/// The built-in tools plus the fault-injection tools in [`debug`].
pub fn registry_with_debug_tools() -> ToolRegistry {
    let mut registry = builtin_registry();
    registry.register(Arc::new(typed(debug::DebugSleep)));
    registry.register(Arc::new(typed(debug::DebugFlaky::default())));
    registry.register(Arc::new(typed(debug::DebugFail)));
    registry
}
