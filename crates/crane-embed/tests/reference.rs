//! crane-embed against the Python sentence-transformers package: the real all-MiniLM-L6-v2
//! must give, for every sentence in `fixtures/minilm_reference.json` (written by
//! `fixtures/make_reference.py`), a 384-dimension unit vector with cosine ≥ 0.999 to the
//! reference, one by one and in a batch.
//!
//! The model folder is `CRANE_EMBED_MODEL_DIR`, else
//! `${CRANE_CACHE_DIR:-$HOME/.cache/crane}/models/all-MiniLM-L6-v2`, which
//! `scripts/install-embedding-model.sh` fills. A missing folder fails the test with that hint,
//! unless `CRANE_SKIP_EMBED_MODEL=1`, which skips it (and says so).

use std::path::PathBuf;

use crane_embed::{Embedder, cosine};
use serde::Deserialize;

const FIXTURE: &str = include_str!("fixtures/minilm_reference.json");
const MIN_COSINE: f32 = 0.999;

#[derive(Deserialize)]
struct Fixture {
    max_seq_length: usize,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    tokens_untruncated: usize,
    embedding: Vec<f32>,
}

fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRANE_EMBED_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("CRANE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/crane")))
        .unwrap_or_else(|| PathBuf::from(".cache/crane"));
    cache.join("models/all-MiniLM-L6-v2")
}

/// The real model, or `None` when it is absent and skipping was asked for.
fn load_model() -> Option<Embedder> {
    let dir = model_dir();
    if !dir.join("model.safetensors").is_file() {
        if std::env::var("CRANE_SKIP_EMBED_MODEL").as_deref() == Ok("1") {
            eprintln!(
                "skipped: no embedding model at {} (CRANE_SKIP_EMBED_MODEL=1)",
                dir.display()
            );
            return None;
        }
        panic!(
            "no embedding model at {}: run scripts/install-embedding-model.sh \
             (or set CRANE_EMBED_MODEL_DIR; CRANE_SKIP_EMBED_MODEL=1 skips this test)",
            dir.display()
        );
    }
    match Embedder::load(&dir) {
        Ok(m) => Some(m),
        Err(e) => panic!("loading {}: {e}", dir.display()),
    }
}

fn fixture() -> Fixture {
    match serde_json::from_str(FIXTURE) {
        Ok(f) => f,
        Err(e) => panic!("fixtures/minilm_reference.json: {e}"),
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn matches_sentence_transformers() {
    let Some(model) = load_model() else { return };
    let fixture = fixture();
    assert_eq!(model.dims(), 384);
    assert_eq!(model.max_tokens(), fixture.max_seq_length);
    assert!(
        model.model_id().starts_with("all-MiniLM-L6-v2-"),
        "{}",
        model.model_id()
    );
    assert!(
        fixture
            .sentences
            .iter()
            .any(|s| s.tokens_untruncated > fixture.max_seq_length),
        "the fixture must hold a sentence past the token limit"
    );

    let mut worst = (f32::INFINITY, String::new());
    for s in &fixture.sentences {
        let v = match model.embed(&s.text) {
            Ok(v) => v,
            Err(e) => panic!("embedding {:?}: {e}", s.text),
        };
        assert_eq!(v.len(), 384, "{:?}", s.text);
        assert!(
            (norm(&v) - 1.0).abs() < 1e-4,
            "{:?}: norm {}",
            s.text,
            norm(&v)
        );
        let c = cosine(&v, &s.embedding);
        let head: String = s.text.chars().take(40).collect();
        let max_diff = v
            .iter()
            .zip(&s.embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("cosine {c:.7}, max |diff| {max_diff:.1e}  {head:?}");
        assert!(c >= MIN_COSINE, "{:?}: cosine {c} < {MIN_COSINE}", s.text);
        if c < worst.0 {
            worst = (c, s.text.chars().take(40).collect());
        }
    }
    eprintln!(
        "min cosine {:.7} (1 - cos = {:.1e}) for {:?}",
        worst.0,
        1.0 - worst.0,
        worst.1
    );

    let texts: Vec<&str> = fixture.sentences.iter().map(|s| s.text.as_str()).collect();
    let batch = match model.embed_batch(&texts) {
        Ok(b) => b,
        Err(e) => panic!("embed_batch: {e}"),
    };
    assert_eq!(batch.len(), texts.len());
    for (s, v) in fixture.sentences.iter().zip(&batch) {
        let c = cosine(v, &s.embedding);
        assert!(c >= MIN_COSINE, "batch {:?}: cosine {c}", s.text);
    }
}

#[test]
fn similar_prompts_are_closer_than_unrelated_ones() {
    let Some(model) = load_model() else { return };
    let embed = |t: &str| match model.embed(t) {
        Ok(v) => v,
        Err(e) => panic!("{t:?}: {e}"),
    };
    let milk = embed("add a todo to buy milk");
    let near = embed("please add a todo: buy some milk");
    let far = embed("What is 7 times 6?");
    assert!(cosine(&milk, &near) > cosine(&milk, &far) + 0.2);
}
