//! [`Embedder`]: a loaded model and the text → vector pipeline (tokenize, BERT forward on the
//! CPU, mean pooling over the attention mask, L2 normalisation).
//!
//! Batches are sorted by token count and cut into chunks of [`BATCH_CHUNK`] texts, each padded
//! to its longest text, as sentence-transformers' `encode` does; padding is masked out of both
//! the attention and the pooling, so a text's vector does not depend on its batch.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{Encoding, Tokenizer};

use crate::error::EmbedError;
use crate::model_dir::{ModelFiles, TOKENIZER, WEIGHTS};
use crate::pooling::{mean_pool, normalize};
use crate::tokenize::load_tokenizer;

/// Texts per forward pass in [`Embedder::embed_batch`] (sentence-transformers' default
/// `batch_size`). Bounds the attention's memory: chunk × heads × tokens² floats.
const BATCH_CHUNK: usize = 32;

/// A sentence-embedding model loaded in memory (~90 MB for all-MiniLM-L6-v2).
///
/// `Send + Sync`: one instance serves every thread; [`embed`](Self::embed) takes `&self`.
/// Computation runs on the calling thread plus candle's matmul threads (rayon; the number is
/// `RAYON_NUM_THREADS`, by default one per physical core).
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dims: usize,
    max_tokens: usize,
    model_id: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.model_id)
            .field("dims", &self.dims)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads a sentence-transformers folder: `config.json`, `tokenizer.json` and
    /// `model.safetensors` are required; `sentence_bert_config.json` (token limit) and
    /// `1_Pooling/config.json` (must be mean pooling) are read when present.
    ///
    /// Reads the files once (the weights are copied into memory: no memory map, which would
    /// need `unsafe`). Takes a fraction of a second for all-MiniLM-L6-v2.
    pub fn load(model_dir: &Path) -> Result<Embedder, EmbedError> {
        let files = ModelFiles::read(model_dir)?;
        let config = files.bert_config()?;
        let max_tokens = files.max_seq_length(&config)?;
        files.check_pooling(&config)?;
        let tokenizer = load_tokenizer(&files.tokenizer, &files.path(TOKENIZER), max_tokens)?;
        let device = Device::Cpu;
        let model = load_bert(&files, &config, &device)?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
            dims: config.hidden_size,
            max_tokens,
            model_id: files.model_id(),
        })
    }

    /// The embedding of one text: `dims()` floats of unit L2 norm (all zeros only in the
    /// degenerate case of a zero pooled vector). Texts longer than the model's token limit are
    /// truncated, as sentence-transformers does; leading and trailing whitespace is ignored.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let encoding = self.encode(text)?;
        let mut vectors = self.forward(&[&encoding])?;
        vectors.pop().ok_or_else(|| EmbedError::Inference {
            source: "the forward pass returned no vector".into(),
        })
    }

    /// The embeddings of several texts, in the order given (an empty slice gives an empty
    /// vector). Each equals what [`embed`](Self::embed) gives for that text, up to float
    /// rounding; batching is faster per text for many texts.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        // Longest first, so each chunk pads little.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings.get(i).map_or(0, Encoding::len)));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH_CHUNK) {
            let batch: Vec<&Encoding> = chunk.iter().filter_map(|&i| encodings.get(i)).collect();
            let vectors = self.forward(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                if let Some(slot) = out.get_mut(i) {
                    *slot = v;
                }
            }
        }
        Ok(out)
    }

    /// Dimensions of every vector (384 for all-MiniLM-L6-v2).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// `<folder name>-<12 hex digits>`, e.g. `all-MiniLM-L6-v2-1a2b3c4d5e6f`: the hex digits
    /// are a SHA-256 over the config, tokenizer, weights and sentence-transformers settings
    /// and this crate's pipeline version, so two ids are equal only when the vectors are
    /// comparable. A cache stores it beside its vectors.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Most tokens of a text that reach the model, [CLS] and [SEP] included (256 for
    /// all-MiniLM-L6-v2); the rest is cut.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    fn encode(&self, text: &str) -> Result<Encoding, EmbedError> {
        // sentence-transformers strips each text before tokenizing.
        self.tokenizer
            .encode_fast(text.trim(), true)
            .map_err(|source| EmbedError::Tokenize { source })
    }

    /// One forward pass over `batch`, padded to its longest encoding; one unit vector each.
    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rows = batch.len();
        let len = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        if rows == 0 || len == 0 {
            return Ok(vec![vec![0.0; self.dims]; rows]);
        }
        let mut ids = vec![0u32; rows * len];
        let mut type_ids = vec![0u32; rows * len];
        let mut mask = vec![0u32; rows * len];
        for (((enc, ids), type_ids), mask) in batch
            .iter()
            .zip(ids.chunks_exact_mut(len))
            .zip(type_ids.chunks_exact_mut(len))
            .zip(mask.chunks_exact_mut(len))
        {
            copy_prefix(ids, enc.get_ids());
            copy_prefix(type_ids, enc.get_type_ids());
            copy_prefix(mask, enc.get_attention_mask());
        }
        let tensor = |data: Vec<u32>| {
            Tensor::from_vec(data, (rows, len), &self.device).map_err(EmbedError::inference)
        };
        let hidden = self
            .model
            .forward(
                &tensor(ids)?,
                &tensor(type_ids)?,
                Some(&tensor(mask.clone())?),
            )
            .map_err(EmbedError::inference)?;
        let (_, _, dims) = hidden.dims3().map_err(EmbedError::inference)?;
        if dims != self.dims {
            return Err(EmbedError::Inference {
                source: format!(
                    "the model returned {dims} dimensions, expected {}",
                    self.dims
                )
                .into(),
            });
        }
        let flat: Vec<f32> = hidden
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(EmbedError::inference)?;
        Ok(flat
            .chunks_exact(len * dims)
            .zip(mask.chunks_exact(len))
            .map(|(hidden, mask)| {
                let mut v = mean_pool(hidden, dims, mask);
                normalize(&mut v);
                v
            })
            .collect())
    }
}

/// Copies `src` into the start of `dst`, as much as fits (the rest stays padding).
fn copy_prefix(dst: &mut [u32], src: &[u32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// The BERT weights of `files`, loaded as f32 on `device`.
fn load_bert(
    files: &ModelFiles,
    config: &BertConfig,
    device: &Device,
) -> Result<BertModel, EmbedError> {
    let weights_err = |err: candle_core::Error| EmbedError::Weights {
        path: files.path(WEIGHTS),
        source: Box::new(err),
    };
    let mut tensors =
        candle_core::safetensors::load_buffer(&files.weights, device).map_err(weights_err)?;
    // candle's Linear multiplies by `weight.t()`. Storing each encoder weight transposed in
    // memory (same shape and values, column-major strides) makes that operand a row-major
    // matrix, which gemm handles far more cheaply: for a short prompt on one thread the CPU
    // per embed fell from 7.2 to 6.0 ms, and gemm's outer (packing) code from 58 % of the
    // profile to under 2 %, leaving the FMA micro-kernels. Vectors are unchanged.
    for (name, t) in tensors.iter_mut() {
        if name.contains("encoder.layer.") && name.ends_with(".weight") && t.rank() == 2 {
            *t = t
                .t()
                .and_then(|x| x.contiguous())
                .and_then(|x| x.t())
                .map_err(weights_err)?;
        }
    }
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    BertModel::load(vb, config).map_err(weights_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_dir::tests::TINY_CONFIG;
    use crate::model_dir::{CONFIG, ST_CONFIG};
    use crate::pooling::cosine;
    use crate::tokenize::tests::TINY_TOKENIZER;
    use candle_nn::VarMap;

    #[test]
    fn embedder_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Embedder>();
    }

    /// Writes a folder with the tiny tokenizer and a randomly initialised 1-layer BERT
    /// (VarMap's initialisers), then loads it through the public `load`.
    fn tiny_model(max_seq_length: usize) -> (tempfile::TempDir, Embedder) {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let config: BertConfig = match serde_json::from_str(TINY_CONFIG) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        if let Err(e) = BertModel::load(vb, &config) {
            panic!("{e}");
        }
        let write = |name: &str, bytes: &[u8]| {
            if let Err(e) = std::fs::write(dir.path().join(name), bytes) {
                panic!("{e}");
            }
        };
        write(CONFIG, TINY_CONFIG.as_bytes());
        write(TOKENIZER, TINY_TOKENIZER.as_bytes());
        write(
            ST_CONFIG,
            format!("{{\"max_seq_length\": {max_seq_length}}}").as_bytes(),
        );
        if let Err(e) = varmap.save(dir.path().join(WEIGHTS)) {
            panic!("{e}");
        }
        match Embedder::load(dir.path()) {
            Ok(m) => (dir, m),
            Err(e) => panic!("{e}"),
        }
    }

    fn embed(m: &Embedder, text: &str) -> Vec<f32> {
        match m.embed(text) {
            Ok(v) => v,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn tiny_model_gives_unit_vectors_of_its_dims() {
        let (_dir, m) = tiny_model(32);
        assert_eq!(m.dims(), 8);
        assert_eq!(m.max_tokens(), 32);
        for text in ["add a todo to buy milk", "", "zebra ?", "   milk  "] {
            let v = embed(&m, text);
            assert_eq!(v.len(), 8);
            assert!((norm(&v) - 1.0).abs() < 1e-5, "{text:?}: {v:?}");
        }
        // Surrounding whitespace does not change the vector.
        assert_eq!(embed(&m, "milk"), embed(&m, "   milk  "));
    }

    #[test]
    fn text_beyond_the_token_limit_is_truncated_not_an_error() {
        // 64 positions in the tiny config; without truncation 1000 tokens would fail.
        let (_dir, m) = tiny_model(16);
        let long = "milk ".repeat(1000);
        let v = embed(&m, &long);
        assert_eq!(v.len(), 8);
        // Only the first 14 words (+ [CLS], [SEP]) count: 14 and 1000 words look the same.
        let cut = "milk ".repeat(14);
        assert!(cosine(&v, &embed(&m, &cut)) > 0.99999);
    }

    #[test]
    fn batch_equals_one_by_one_whatever_the_padding() {
        let (_dir, m) = tiny_model(32);
        let texts = [
            "milk",
            "add a todo to buy milk",
            "",
            "cafe ? cafe ? cafe ? cafe ?",
            "to buy",
        ];
        let batch = match m.embed_batch(&texts) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(batch.len(), texts.len());
        for (text, v) in texts.iter().zip(&batch) {
            let single = embed(&m, text);
            let c = cosine(v, &single);
            assert!(c > 0.99999, "{text:?}: cosine {c}");
        }
        // More texts than one chunk, in order.
        let many: Vec<&str> = (0..BATCH_CHUNK + 5)
            .map(|i| if i % 2 == 0 { "milk" } else { "add a todo" })
            .collect();
        match m.embed_batch(&many) {
            Ok(vs) => {
                assert_eq!(vs.len(), many.len());
                let milk = embed(&m, "milk");
                for (i, v) in vs.iter().enumerate() {
                    let c = cosine(v, &milk);
                    assert_eq!(c > 0.99999, i % 2 == 0, "text {i}: cosine {c}");
                }
            }
            Err(e) => panic!("{e}"),
        }
        assert!(matches!(m.embed_batch(&[]), Ok(v) if v.is_empty()));
    }

    #[test]
    fn model_id_names_the_folder_and_debug_shows_it() {
        let (dir, m) = tiny_model(32);
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            m.model_id().starts_with(&format!("{name}-")),
            "{}",
            m.model_id()
        );
        let debug = format!("{m:?}");
        assert!(debug.contains(m.model_id()), "{debug}");
    }

    #[test]
    fn damaged_weights_are_a_weights_error() {
        let (dir, _m) = tiny_model(32);
        if let Err(e) = std::fs::write(dir.path().join(WEIGHTS), b"not safetensors") {
            panic!("{e}");
        }
        match Embedder::load(dir.path()) {
            Err(e @ EmbedError::Weights { .. }) => {
                assert!(e.to_string().contains("model.safetensors"), "{e}")
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("loaded damaged weights"),
        }
    }
}
