//! Measures `Embedder::embed` latency for one short prompt: loads the model, warms up, then
//! prints p50/p90/p99 over N calls (default 200) and the load time.
//!
//! ```text
//! CARGO_TARGET_DIR=$HOME/.cache/crane/target \
//!   cargo run --release -p crane-embed --example embed_latency -- [MODEL_DIR] [N] [PROMPT]
//! ```
//!
//! MODEL_DIR defaults to `$HOME/.cache/crane/models/all-MiniLM-L6-v2`. candle's matmul threads
//! follow `RAYON_NUM_THREADS` (default: one per physical core); compare
//! `RAYON_NUM_THREADS=1` with the default.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crane_embed::Embedder;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = match args.next() {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var("HOME")?).join(".cache/crane/models/all-MiniLM-L6-v2"),
    };
    let n: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 200,
    };
    let prompt = args
        .next()
        .unwrap_or_else(|| "add a todo to buy milk".to_string());

    let start = Instant::now();
    let model = Embedder::load(&dir)?;
    let load = start.elapsed();
    for _ in 0..20 {
        model.embed(&prompt)?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let v = model.embed(&prompt)?;
        times.push(t.elapsed());
        std::hint::black_box(v);
    }
    times.sort();
    let pct = |p: f64| {
        let i = ((times.len() as f64 - 1.0) * p).round() as usize;
        times.get(i).copied().unwrap_or_default()
    };
    println!(
        "model {} ({} dims), load {:.0?}; prompt {prompt:?}",
        model.model_id(),
        model.dims(),
        load
    );
    println!(
        "embed over {n} calls: p50 {:.2?}  p90 {:.2?}  p99 {:.2?}  max {:.2?}  (RAYON_NUM_THREADS={})",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        times.last().copied().unwrap_or_default(),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
    );
    Ok(())
}
