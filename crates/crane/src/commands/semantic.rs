//! The semantic plan cache in `crane serve`: the sentence-embedding model (crane-embed) behind
//! crane-core's `Embed`, loaded from `[cache.semantic] model_dir`, and the cache put on the
//! runtime. The model is loaded once at start (a missing or broken folder stops the server
//! with what to fix).

use std::sync::Arc;

use anyhow::Context;
use crane_core::planning::semantic::cache::{Embed, SemanticCache};
use crane_core::runtime::Runtime;
use crane_settings::SemanticSettings;

/// crane-embed's model as crane-core's [`Embed`].
pub struct ModelEmbed(pub crane_embed::Embedder);

impl Embed for ModelEmbed {
    fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
        self.0.embed(text).map_err(|e| e.to_string())
    }

    fn dims(&self) -> usize {
        self.0.dims()
    }

    fn model_id(&self) -> &str {
        self.0.model_id()
    }
}

/// Loads the model in `settings.model_dir` (on the blocking pool).
pub async fn load_model(settings: &SemanticSettings) -> anyhow::Result<Arc<ModelEmbed>> {
    let dir = settings.model_dir.clone();
    let model = tokio::task::spawn_blocking(move || crane_embed::Embedder::load(&dir))
        .await
        .context("the embedding model loader stopped")?
        .with_context(|| {
            format!(
                "could not load the embedding model of [cache.semantic] from {}",
                settings.model_dir.display()
            )
        })?;
    Ok(Arc::new(ModelEmbed(model)))
}

/// Loads the model and the cache's entries, and puts the cache on `runtime`.
pub async fn enable(runtime: &Runtime, settings: &SemanticSettings) -> anyhow::Result<()> {
    let embed = load_model(settings).await?;
    let model = embed.model_id().to_owned();
    let cache = SemanticCache::load(
        embed,
        runtime.store().clone(),
        runtime.registry().clone(),
        settings.config.clone(),
    )
    .await
    .context("could not load the semantic plan cache")?;
    // Entries other replicas add, and clears, reach this one within 2 s.
    cache.spawn(std::time::Duration::from_secs(2));
    tracing::info!(
        model = %model,
        entries = cache.stats().entries,
        threshold = settings.config.threshold,
        "semantic plan cache on"
    );
    runtime.set_semantic_cache(cache);
    Ok(())
}
