//! Reading a sentence-transformers model folder: which files it must have, what its small
//! JSON files say (BERT config, `max_seq_length`, pooling mode), and the fingerprint that
//! tells two models apart.
//!
//! Everything here is checked before any weight is touched, so a wrong or incomplete folder
//! fails with a message naming the file rather than deep inside candle.

use std::path::{Path, PathBuf};

use candle_transformers::models::bert::Config as BertConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::EmbedError;

/// The BERT configuration (Hugging Face transformers format).
pub(crate) const CONFIG: &str = "config.json";
/// The Hugging Face tokenizers file.
pub(crate) const TOKENIZER: &str = "tokenizer.json";
/// The BERT weights.
pub(crate) const WEIGHTS: &str = "model.safetensors";
/// sentence-transformers' settings of its Transformer module (`max_seq_length`). Optional.
pub(crate) const ST_CONFIG: &str = "sentence_bert_config.json";
/// sentence-transformers' Pooling module settings. Optional (mean pooling when absent).
pub(crate) const POOLING: &str = "1_Pooling/config.json";

/// Bumped whenever this crate's computation changes in a way that changes vectors, so that a
/// cache keyed by [`model_id`] never mixes vectors from two versions of the pipeline.
const PIPELINE_VERSION: &str = "crane-embed/1 bert mean-pool l2";

/// How many bytes of the SHA-256 go into the model id (12 hex digits).
const FINGERPRINT_BYTES: usize = 6;

/// The bytes of a model folder's files, read once.
pub(crate) struct ModelFiles {
    pub(crate) dir: PathBuf,
    pub(crate) config: Vec<u8>,
    pub(crate) tokenizer: Vec<u8>,
    pub(crate) weights: Vec<u8>,
    pub(crate) st_config: Option<Vec<u8>>,
    pub(crate) pooling: Option<Vec<u8>>,
}

impl ModelFiles {
    /// Reads the folder: fails on a missing folder or a missing required file (naming it)
    /// before reading the ~90 MB of weights.
    pub(crate) fn read(dir: &Path) -> Result<Self, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::ModelDirMissing {
                dir: dir.to_path_buf(),
            });
        }
        for file in [CONFIG, TOKENIZER, WEIGHTS] {
            if !dir.join(file).is_file() {
                return Err(EmbedError::MissingFile {
                    file,
                    dir: dir.to_path_buf(),
                });
            }
        }
        Ok(ModelFiles {
            dir: dir.to_path_buf(),
            config: read_required(dir, CONFIG)?,
            tokenizer: read_required(dir, TOKENIZER)?,
            weights: read_required(dir, WEIGHTS)?,
            st_config: read_optional(dir, ST_CONFIG)?,
            pooling: read_optional(dir, POOLING)?,
        })
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The BERT configuration; anything but a BERT model is refused.
    pub(crate) fn bert_config(&self) -> Result<BertConfig, EmbedError> {
        let config: BertConfig =
            serde_json::from_slice(&self.config).map_err(|source| EmbedError::Config {
                path: self.path(CONFIG),
                source,
            })?;
        if let Some(model_type) = &config.model_type
            && model_type != "bert"
        {
            return Err(self.unsupported(format!(
                "{CONFIG} has model_type {model_type:?}, not \"bert\""
            )));
        }
        if config.hidden_size == 0 || config.max_position_embeddings == 0 {
            return Err(self.unsupported(format!(
                "{CONFIG} has hidden_size {} and max_position_embeddings {}",
                config.hidden_size, config.max_position_embeddings
            )));
        }
        Ok(config)
    }

    /// The token limit sentence-transformers applies: `max_seq_length` from
    /// `sentence_bert_config.json`, else the model's `max_position_embeddings`; never more
    /// than the positions the model has.
    pub(crate) fn max_seq_length(&self, config: &BertConfig) -> Result<usize, EmbedError> {
        #[derive(Deserialize)]
        struct StConfig {
            max_seq_length: Option<usize>,
        }
        let limit = config.max_position_embeddings;
        let Some(bytes) = &self.st_config else {
            return Ok(limit);
        };
        let st: StConfig = serde_json::from_slice(bytes).map_err(|source| EmbedError::Config {
            path: self.path(ST_CONFIG),
            source,
        })?;
        match st.max_seq_length {
            None => Ok(limit),
            // [CLS] and [SEP] alone take two tokens.
            Some(n) if n < 2 => Err(self.unsupported(format!(
                "{ST_CONFIG} has max_seq_length {n}, fewer tokens than [CLS] and [SEP] need"
            ))),
            Some(n) => Ok(n.min(limit)),
        }
    }

    /// Refuses any pooling but the mean over tokens (the only one computed here), and a
    /// pooling dimension that is not the model's hidden size.
    pub(crate) fn check_pooling(&self, config: &BertConfig) -> Result<(), EmbedError> {
        #[derive(Deserialize)]
        struct Pooling {
            word_embedding_dimension: Option<usize>,
            #[serde(default)]
            pooling_mode_mean_tokens: bool,
            #[serde(default)]
            pooling_mode_cls_token: bool,
            #[serde(default)]
            pooling_mode_max_tokens: bool,
            #[serde(default)]
            pooling_mode_mean_sqrt_len_tokens: bool,
            #[serde(default)]
            pooling_mode_weightedmean_tokens: bool,
            #[serde(default)]
            pooling_mode_lasttoken: bool,
        }
        let Some(bytes) = &self.pooling else {
            return Ok(());
        };
        let p: Pooling = serde_json::from_slice(bytes).map_err(|source| EmbedError::Config {
            path: self.path(POOLING),
            source,
        })?;
        let others = [
            ("cls_token", p.pooling_mode_cls_token),
            ("max_tokens", p.pooling_mode_max_tokens),
            ("mean_sqrt_len_tokens", p.pooling_mode_mean_sqrt_len_tokens),
            ("weightedmean_tokens", p.pooling_mode_weightedmean_tokens),
            ("lasttoken", p.pooling_mode_lasttoken),
        ];
        let extra: Vec<&str> = others
            .iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect();
        if !p.pooling_mode_mean_tokens || !extra.is_empty() {
            return Err(self.unsupported(format!(
                "{POOLING} asks for pooling other than the mean over tokens \
                 (mean_tokens: {}, also on: {extra:?})",
                p.pooling_mode_mean_tokens
            )));
        }
        if let Some(dim) = p.word_embedding_dimension
            && dim != config.hidden_size
        {
            return Err(self.unsupported(format!(
                "{POOLING} has word_embedding_dimension {dim} but {CONFIG} has hidden_size {}",
                config.hidden_size
            )));
        }
        Ok(())
    }

    /// `<folder name>-<first 12 hex digits of a SHA-256>` over every file that shapes the
    /// vectors (config, tokenizer, weights, the two sentence-transformers settings) and this
    /// crate's pipeline version: two folders get the same id only if they embed alike.
    pub(crate) fn model_id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(PIPELINE_VERSION.as_bytes());
        let files: [(&str, Option<&[u8]>); 5] = [
            (CONFIG, Some(&self.config)),
            (TOKENIZER, Some(&self.tokenizer)),
            (WEIGHTS, Some(&self.weights)),
            (ST_CONFIG, self.st_config.as_deref()),
            (POOLING, self.pooling.as_deref()),
        ];
        for (name, bytes) in files {
            // Name and length before the bytes, so no two file sets hash the same stream.
            hasher.update(name.as_bytes());
            match bytes {
                Some(b) => {
                    hasher.update([1u8]);
                    hasher.update((b.len() as u64).to_le_bytes());
                    hasher.update(b);
                }
                None => hasher.update([0u8]),
            }
        }
        let digest = hasher.finalize();
        let hex: String = digest
            .iter()
            .take(FINGERPRINT_BYTES)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}-{hex}", folder_name(&self.dir))
    }

    fn unsupported(&self, reason: String) -> EmbedError {
        EmbedError::Unsupported {
            dir: self.dir.clone(),
            reason,
        }
    }
}

/// The folder's own name (`all-MiniLM-L6-v2`), resolving `.` and `..`; `model` if it has none.
fn folder_name(dir: &Path) -> String {
    let resolved = dir.canonicalize().ok();
    resolved
        .as_deref()
        .and_then(Path::file_name)
        .or_else(|| dir.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string())
}

fn read_required(dir: &Path, file: &'static str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            EmbedError::MissingFile {
                file,
                dir: dir.to_path_buf(),
            }
        } else {
            EmbedError::Read { path, source }
        }
    })
}

fn read_optional(dir: &Path, file: &str) -> Result<Option<Vec<u8>>, EmbedError> {
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EmbedError::Read { path, source }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 1-layer, 8-dimensional BERT config whose vocabulary matches the tiny tokenizer.
    pub(crate) const TINY_CONFIG: &str = r#"{
        "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 8,
        "initializer_range": 0.02, "intermediate_size": 16, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64, "model_type": "bert", "num_attention_heads": 2,
        "num_hidden_layers": 1, "pad_token_id": 0, "position_embedding_type": "absolute",
        "type_vocab_size": 2, "vocab_size": 13
    }"#;

    const MEAN_POOLING: &str = r#"{"word_embedding_dimension": 8, "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false}"#;

    fn files(dir: &str) -> ModelFiles {
        ModelFiles {
            dir: PathBuf::from(dir),
            config: TINY_CONFIG.as_bytes().to_vec(),
            tokenizer: b"{}".to_vec(),
            weights: vec![1, 2, 3],
            st_config: Some(br#"{"max_seq_length": 32, "do_lower_case": false}"#.to_vec()),
            pooling: Some(MEAN_POOLING.as_bytes().to_vec()),
        }
    }

    fn config(f: &ModelFiles) -> BertConfig {
        match f.bert_config() {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn reads_the_tiny_config_and_settings() {
        let f = files("/m/tiny");
        let c = config(&f);
        assert_eq!(c.hidden_size, 8);
        assert_eq!(f.max_seq_length(&c).ok(), Some(32));
        assert!(f.check_pooling(&c).is_ok());
    }

    #[test]
    fn max_seq_length_defaults_to_and_is_capped_by_the_positions() {
        let mut f = files("/m/tiny");
        let c = config(&f);
        f.st_config = None;
        assert_eq!(f.max_seq_length(&c).ok(), Some(64));
        f.st_config = Some(br#"{"max_seq_length": 4096}"#.to_vec());
        assert_eq!(f.max_seq_length(&c).ok(), Some(64));
        f.st_config = Some(br#"{"max_seq_length": 1}"#.to_vec());
        assert!(matches!(
            f.max_seq_length(&c),
            Err(EmbedError::Unsupported { .. })
        ));
        f.st_config = Some(b"[".to_vec());
        match f.max_seq_length(&c) {
            Err(e @ EmbedError::Config { .. }) => {
                assert!(e.to_string().contains(ST_CONFIG), "{e}")
            }
            other => panic!("{:?}", other.map_err(|e| e.to_string())),
        }
    }

    #[test]
    fn other_pooling_modes_are_refused() {
        let mut f = files("/m/tiny");
        let c = config(&f);
        f.pooling = Some(
            br#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#.to_vec(),
        );
        match f.check_pooling(&c) {
            Err(e @ EmbedError::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(text.contains("cls_token"), "{text}");
            }
            other => panic!("{:?}", other.map_err(|e| e.to_string())),
        }
        f.pooling = Some(
            br#"{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true}"#.to_vec(),
        );
        assert!(matches!(
            f.check_pooling(&c),
            Err(EmbedError::Unsupported { .. })
        ));
        f.pooling = None;
        assert!(f.check_pooling(&c).is_ok());
    }

    #[test]
    fn non_bert_and_broken_configs_are_refused() {
        let mut f = files("/m/tiny");
        f.config = TINY_CONFIG.replace("\"bert\"", "\"roberta\"").into_bytes();
        match f.bert_config() {
            Err(e @ EmbedError::Unsupported { .. }) => {
                assert!(e.to_string().contains("roberta"), "{e}")
            }
            other => panic!("{:?}", other.map(|_| ()).map_err(|e| e.to_string())),
        }
        f.config = b"{}".to_vec();
        match f.bert_config() {
            Err(e @ EmbedError::Config { .. }) => {
                assert!(e.to_string().contains("/m/tiny/config.json"), "{e}")
            }
            other => panic!("{:?}", other.map(|_| ()).map_err(|e| e.to_string())),
        }
    }

    #[test]
    fn model_id_is_folder_name_and_a_fingerprint_of_every_file() {
        let a = files("/m/all-MiniLM-L6-v2");
        let id = a.model_id();
        assert!(id.starts_with("all-MiniLM-L6-v2-"), "{id}");
        assert_eq!(id.len(), "all-MiniLM-L6-v2-".len() + 2 * FINGERPRINT_BYTES);
        assert_eq!(id, files("/m/all-MiniLM-L6-v2").model_id());

        let mut b = files("/m/all-MiniLM-L6-v2");
        b.weights = vec![1, 2, 4];
        assert_ne!(id, b.model_id());
        let mut c = files("/m/all-MiniLM-L6-v2");
        c.st_config = None;
        assert_ne!(id, c.model_id());
        let mut d = files("/m/all-MiniLM-L6-v2");
        d.tokenizer = b"{ }".to_vec();
        assert_ne!(id, d.model_id());
    }

    #[test]
    fn reading_a_missing_folder_or_file_names_it() {
        let missing = Path::new("/definitely/not/a/model/dir");
        assert!(matches!(
            ModelFiles::read(missing),
            Err(EmbedError::ModelDirMissing { .. })
        ));
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let expect_missing = |file: &str| match ModelFiles::read(dir.path()) {
            Err(EmbedError::MissingFile { file: f, .. }) => assert_eq!(f, file),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("read an incomplete folder"),
        };
        expect_missing(CONFIG);
        let write = |name: &str| {
            if let Err(e) = std::fs::write(dir.path().join(name), b"{}") {
                panic!("{e}");
            }
        };
        write(CONFIG);
        expect_missing(TOKENIZER);
        write(TOKENIZER);
        expect_missing(WEIGHTS);
        write(WEIGHTS);
        match ModelFiles::read(dir.path()) {
            Ok(f) => {
                assert!(f.st_config.is_none() && f.pooling.is_none());
            }
            Err(e) => panic!("{e}"),
        }
    }
}
