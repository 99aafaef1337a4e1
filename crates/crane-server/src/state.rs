//! The state every handler shares: the runtime, the metrics handle, the wait bound of
//! `?wait=true`, and the prompt templates.

use std::sync::Arc;
use std::time::Duration;

use crane_core::runtime::Runtime;
use metrics_exporter_prometheus::PrometheusHandle;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub metrics: Option<Arc<PrometheusHandle>>,
    pub wait_timeout: Duration,
    /// The prompt templates (built-in and the prompts directory).
    pub prompts: Arc<crane_core::planning::prompt_library::PromptLibrary>,
    /// Auth mode, the key cache and the rate limiters.
    pub auth: Arc<crate::auth::AuthState>,
}
