//! The index benchmark behind `crane bench-cache`: build time, insert throughput, lookup
//! latency, recall@1 against brute force and memory, on seeded synthetic embeddings.
//!
//! The data set is half clustered (topics: points around a centre, cosine ≈ 0.6 between two
//! points of one cluster) and half uniformly random on the sphere (the hardest case for a
//! graph index). A query is a stored vector plus noise (cosine ≈ 0.89 to it), as a paraphrase
//! of a cached prompt would be.

use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{IndexParams, VectorIndex, dot, normalised};

/// Points per cluster in the clustered half.
const CLUSTER_SIZE: usize = 100;
/// Squared norm of a clustered point's offset from its centre (before normalising).
const CLUSTER_SPREAD: f32 = 0.67;
/// Squared norm of a query's offset from the stored vector it paraphrases.
const QUERY_NOISE: f32 = 0.25;
/// Queries checked against brute force.
const RECALL_SAMPLE: usize = 1000;
/// Brute-force scans timed for the report.
const BRUTE_FORCE_TIMED: usize = 15;

/// A seeded synthetic data set.
pub(crate) struct Dataset {
    pub entries: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
    /// Whether each query paraphrases a clustered entry (else a random one).
    pub clustered: Vec<bool>,
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller.
    let u1: f32 = rng.random_range(f32::MIN_POSITIVE..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// `base` plus Gaussian noise of expected squared norm `spread`, normalised.
fn perturbed(rng: &mut StdRng, base: &[f32], spread: f32) -> Vec<f32> {
    let sigma = (spread / base.len() as f32).sqrt();
    let v: Vec<f32> = base.iter().map(|x| x + sigma * gaussian(rng)).collect();
    normalised(&v).unwrap_or(v)
}

fn random_unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    perturbed(rng, &vec![0.0; dims], 1.0)
}

impl Dataset {
    pub fn generate(entries: usize, queries: usize, dims: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let clustered_count = entries / 2;
        let centres: Vec<Vec<f32>> = (0..clustered_count.div_ceil(CLUSTER_SIZE))
            .map(|_| random_unit(&mut rng, dims))
            .collect();
        let mut data: Vec<Vec<f32>> = (0..entries)
            .map(|i| {
                if i < clustered_count {
                    let centre = &centres[rng.random_range(0..centres.len())];
                    perturbed(&mut rng, centre, CLUSTER_SPREAD)
                } else {
                    random_unit(&mut rng, dims)
                }
            })
            .collect();
        // Interleave the kinds so that insertion order does not follow them.
        let mut kind: Vec<bool> = (0..entries).map(|i| i < clustered_count).collect();
        for i in (1..entries).rev() {
            let j = rng.random_range(0..=i);
            data.swap(i, j);
            kind.swap(i, j);
        }
        let mut clustered = Vec::with_capacity(queries);
        let queries = (0..queries)
            .map(|_| {
                let source = rng.random_range(0..entries.max(1));
                clustered.push(kind.get(source).copied().unwrap_or(false));
                match data.get(source) {
                    Some(entry) => perturbed(&mut rng, entry, QUERY_NOISE),
                    None => random_unit(&mut rng, dims),
                }
            })
            .collect();
        Self {
            entries: data,
            queries,
            clustered,
        }
    }
}

/// The position of the entry most similar to `query`.
pub(crate) fn brute_force_top1(entries: &[Vec<f32>], query: &[f32]) -> usize {
    let mut best = (f32::NEG_INFINITY, 0);
    for (i, entry) in entries.iter().enumerate() {
        let similarity = dot(entry, query);
        if similarity > best.0 {
            best = (similarity, i);
        }
    }
    best.1
}

/// What [`bench_index`] measured.
#[derive(Debug, Clone)]
pub struct IndexBenchReport {
    pub entries: usize,
    pub queries: usize,
    pub dims: usize,
    pub params: IndexParams,
    /// Inserting all but the last `inserted` entries one by one on one thread, as the cache
    /// and [`VectorIndex::rebuild`] do (and deterministic, unlike a parallel build).
    pub build: Duration,
    /// Single inserts into the built index, one thread.
    pub inserted: usize,
    pub inserts_per_sec: f64,
    /// One `search(query, 1)` each, one thread, in microseconds.
    pub lookup_p50_us: f64,
    pub lookup_p99_us: f64,
    pub lookup_max_us: f64,
    /// For scale: one exact top-1 scan over every entry, one thread (median of a few).
    pub brute_force_us: f64,
    /// Top hit equals the brute-force top hit, over `recall_sample` queries.
    pub recall_at_1: f64,
    pub recall_clustered: f64,
    pub recall_random: f64,
    pub recall_sample: usize,
    /// [`VectorIndex::memory_bytes`] and per entry.
    pub memory_bytes: usize,
    pub bytes_per_entry: f64,
    /// Growth of the process's resident set over the build (Linux), as a check on the estimate.
    pub rss_growth_bytes: Option<usize>,
}

impl IndexBenchReport {
    /// What a [`VectorIndex::rebuild`] of every entry would take: it inserts them one by one on
    /// one thread, as the build did.
    pub fn rebuild_estimate(&self) -> Duration {
        let built = self.entries.saturating_sub(self.inserted).max(1);
        self.build.mul_f64(self.entries as f64 / built as f64)
    }
}

impl fmt::Display for IndexBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(
            f,
            "index: {} entries x {} dims (hnsw_rs, M {}, ef_construction {}, ef_search {})",
            self.entries, self.dims, p.m, p.ef_construction, p.ef_search
        )?;
        writeln!(
            f,
            "build (one thread): {:.1} s; single inserts into the full index: {:.0}/s over {}",
            self.build.as_secs_f64(),
            self.inserts_per_sec,
            self.inserted
        )?;
        writeln!(
            f,
            "lookup (k=1, {} queries, one thread): p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
            self.queries, self.lookup_p50_us, self.lookup_p99_us, self.lookup_max_us
        )?;
        writeln!(
            f,
            "brute-force scan of every entry (one thread): {:.0} µs",
            self.brute_force_us
        )?;
        writeln!(
            f,
            "recall@1 vs brute force ({} queries): {:.4} (clustered {:.4}, random {:.4})",
            self.recall_sample, self.recall_at_1, self.recall_clustered, self.recall_random
        )?;
        let rss = match self.rss_growth_bytes {
            Some(bytes) => format!("; resident set grew {:.1} MiB", mib(bytes)),
            None => String::new(),
        };
        writeln!(
            f,
            "memory: {:.1} MiB estimated, {:.0} bytes per entry{rss}",
            mib(self.memory_bytes),
            self.bytes_per_entry
        )?;
        write!(
            f,
            "rebuild (one thread, all entries live): about {:.0} s",
            self.rebuild_estimate().as_secs_f64()
        )
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Resident set size of this process, from /proc (Linux only).
fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn percentile_us(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

/// Builds an index of `entries` seeded synthetic embeddings of `dims` dimensions and measures
/// it with `queries` lookups (see the module doc for the data). Takes minutes at 100 000
/// entries; one thread except for the brute-force truth (every core).
pub fn bench_index(entries: usize, queries: usize, dims: usize, seed: u64) -> IndexBenchReport {
    bench_index_with(IndexParams::default(), entries, queries, dims, seed)
}

/// [`bench_index`] with other HNSW parameters, for tuning.
pub fn bench_index_with(
    params: IndexParams,
    entries: usize,
    queries: usize,
    dims: usize,
    seed: u64,
) -> IndexBenchReport {
    let dims = dims.max(1);
    let data = Dataset::generate(entries, queries, dims, seed);
    let index = VectorIndex::with_params(dims, params);
    let inserted = (entries / 10).clamp(entries.min(1), 1000);
    let bulk = entries - inserted;

    let rss_before = resident_bytes();
    let started = Instant::now();
    // The data set's vectors are unit length and of the index's dimensions.
    for (id, v) in data.entries[..bulk].iter().enumerate() {
        let _ = index.insert(id as u64, v);
    }
    let build = started.elapsed();

    let started = Instant::now();
    for (id, v) in data.entries.iter().enumerate().skip(bulk) {
        let _ = index.insert(id as u64, v);
    }
    let insert_time = started.elapsed();
    let rss_growth_bytes = rss_before
        .zip(resident_bytes())
        .map(|(before, after)| after.saturating_sub(before));
    let memory_bytes = index.memory_bytes();

    let mut latencies = Vec::with_capacity(queries);
    let mut top: Vec<Option<u64>> = Vec::with_capacity(queries);
    for query in &data.queries {
        let started = Instant::now();
        let hits = index.search(query, 1);
        latencies.push(started.elapsed());
        top.push(hits.first().map(|hit| hit.id));
    }
    latencies.sort_unstable();

    let mut scans: Vec<Duration> = data
        .queries
        .iter()
        .take(BRUTE_FORCE_TIMED)
        .map(|query| {
            let started = Instant::now();
            std::hint::black_box(brute_force_top1(&data.entries, query));
            started.elapsed()
        })
        .collect();
    scans.sort_unstable();

    let sample = queries.min(RECALL_SAMPLE);
    let truth = brute_force_all(&data.entries, &data.queries[..sample]);
    let (mut hits, mut clustered_hits, mut clustered_total) = (0usize, 0usize, 0usize);
    for (i, &truth) in truth.iter().enumerate() {
        // A tie with the true top hit counts as found.
        let found = top[i].is_some_and(|id| {
            id as usize == truth
                || dot(&data.entries[id as usize], &data.queries[i])
                    >= dot(&data.entries[truth], &data.queries[i])
        });
        hits += usize::from(found);
        if data.clustered[i] {
            clustered_total += 1;
            clustered_hits += usize::from(found);
        }
    }
    let ratio = |hits: usize, total: usize| {
        if total == 0 {
            1.0
        } else {
            hits as f64 / total as f64
        }
    };

    IndexBenchReport {
        entries,
        queries,
        dims,
        params: index.params(),
        build,
        inserted,
        inserts_per_sec: inserted as f64 / insert_time.as_secs_f64().max(1e-9),
        lookup_p50_us: percentile_us(&latencies, 0.50),
        lookup_p99_us: percentile_us(&latencies, 0.99),
        lookup_max_us: percentile_us(&latencies, 1.0),
        brute_force_us: percentile_us(&scans, 0.5),
        recall_at_1: ratio(hits, sample),
        recall_clustered: ratio(clustered_hits, clustered_total),
        recall_random: ratio(hits - clustered_hits, sample - clustered_total),
        recall_sample: sample,
        memory_bytes,
        bytes_per_entry: memory_bytes as f64 / entries.max(1) as f64,
        rss_growth_bytes,
    }
}

/// Brute-force top hits for `queries`, split over the cores.
fn brute_force_all(entries: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<usize> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|q| brute_force_top1(entries, q))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_benchmark_reports_sane_figures() {
        let report = bench_index(600, 100, 32, 9);
        assert_eq!(report.entries, 600);
        assert!(report.recall_at_1 >= 0.95, "{report}");
        assert!(report.lookup_p50_us <= report.lookup_p99_us);
        assert!(report.lookup_p99_us <= report.lookup_max_us);
        assert!(report.bytes_per_entry > 32.0 * 4.0);
        let text = report.to_string();
        assert!(text.contains("recall@1"), "{text}");
        assert_eq!(text.lines().count(), 7);
    }

    #[test]
    fn dataset_is_seeded_and_unit_length() {
        let a = Dataset::generate(50, 10, 8, 1);
        let b = Dataset::generate(50, 10, 8, 1);
        assert_eq!(a.entries, b.entries);
        assert_eq!(a.queries, b.queries);
        assert_eq!(a.clustered.len(), 10);
        for v in a.entries.iter().chain(&a.queries) {
            assert!((dot(v, v) - 1.0).abs() < 1e-4);
        }
    }
}
