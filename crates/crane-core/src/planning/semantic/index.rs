//! The approximate nearest-neighbour index over prompt embeddings: for a new prompt's
//! embedding (384-dim, all-MiniLM-L6-v2), the cached prompts most similar to it by cosine.
//!
//! # The crate: `hnsw_rs`
//!
//! The graph is [`hnsw_rs`] (HNSW after Malkov & Yashunin), chosen from the pure-Rust and C++
//! candidates on crates.io in 2026-12 for these reasons:
//!
//! - **hnsw_rs** (chosen): maintained since 2018, releases through 2026-10; inserts take
//!   `&self` and run while other threads search (parking_lot locks per node), so the cache can
//!   grow at run time; a custom distance is a one-method trait; no C++, no `unsafe` asked of
//!   the caller. Drawbacks: no deletion (handled below), ~13 more crates in the tree (rayon,
//!   env_logger, mmap-rs among them; none of its features can be turned off), and a graph of
//!   `Arc`s (one allocation per edge), so a point costs ~2.8 KB beside its 1.5 KB vector.
//! - **hnswlib-rs** (port of hnswlib, with mark-deleted): its kernel crate needs nightly
//!   (`#![feature(f16)]`) and does not build on our stable toolchain; its stable fork
//!   `hnsw-stable` has two releases from one downstream project; both fix the capacity at
//!   creation and pull the unmaintained bincode 1.
//! - **instant-distance**: builds once from a full batch (no incremental insert); last release
//!   2023.
//! - **hnsw** (rust-cv): inserts need `&mut self` and searches a `&mut Searcher`; no deletion;
//!   last release 2021.
//! - **usearch**: the best feature set (removal, concurrency), but a C++ build through cxx.
//! - hnswx, swarc, small-world-rs, vector-index: one-author crates with one burst of releases.
//!
//! hnsw_rs quirks handled here: it exits the process when M > 256 (clamped); its whole-graph
//! iterator re-takes a lock it holds, which deadlocks against a waiting insert (we read one
//! layer list at a time, `points_of`); tearing a graph down runs on rayon's pool (done on
//! the rebuilding thread, `release`); its own distances assert instead of clamping rounding
//! (we bring `UnitCosine`).
//!
//! # Removal and rebuilds
//!
//! hnsw_rs cannot delete a point, so [`VectorIndex::remove`] leaves a tombstone: the point
//! stays in the graph (it still routes searches) and is dropped from every result. Each
//! insert gets a fresh internal slot, so re-inserting an id (an update) tombstones its old
//! point. Once tombstones reach a fifth of the graph, [`VectorIndex::needs_rebuild`] says so;
//! [`VectorIndex::rebuild`] then builds a new graph from the live points on the calling thread
//! while searches, inserts and removals go on against the old one (inserts made meanwhile are
//! replayed into the new graph before the swap). A rebuild takes as long as inserting every
//! live point again (see the benchmark), so the cache runs it from `spawn_blocking`. No
//! brute-force buffer is needed: a new point is searchable as soon as its insert returns.
//!
//! # Searching
//!
//! Vectors are normalised on the way in (a zero or non-finite vector is refused), so the
//! distance is `1 - dot` and similarity is the dot product. A search takes the whole `ef`
//! candidate list that HNSW computes anyway and skips tombstones in it; only when that leaves
//! fewer than `k` hits does it search again with hnsw_rs's filter (slower: it does not stop
//! early). Many tasks may search at once; each search is one thread's CPU for a few ms at
//! 100 000 entries (below), so the cache should run it (with the embedding) off the async
//! workers, e.g. in `spawn_blocking`.
//!
//! # Measured (2-core machine, 100 000 entries, 384 dims, [`bench_index`])
//!
//! Parameters ([`IndexParams`]: M 16, ef_construction 100, ef_search 192) were tuned for recall@1
//! ≥ 0.99 against brute force on half clustered, half uniformly random unit vectors, queries
//! being stored vectors plus noise (seed 42, one-thread build, so reproducible): recall@1 0.993
//! (clustered 1.000, random 0.986). With a parallel build (graphs differ run to run) ef_search
//! 192 gave 0.989–0.996, 256 gave 0.995 (random 0.990) for ~30 % more time, 160 gave 0.989.
//! The lookup target of p99 < 1 ms is **not** met: p50 2.1 ms, p99 3.7 ms, max 16 ms, on a
//! machine shared with other builds (a brute-force scan: 26 ms). hnsw_rs pays ~0.6–0.8 µs per
//! distance evaluation at this size (an `Arc` per edge, a hash map of visited nodes, two
//! allocations per candidate: cache misses, not arithmetic), and the random half needs ~3 600
//! evaluations for this recall. Real sentence embeddings cluster, and clustered queries reach
//! recall 1.0 at lower ef. Memory: 4 394 bytes per entry estimated (419 MiB), matching the
//! resident set's growth (417 MiB). One-thread build 127 s, so a rebuild of 100 000 entries
//! takes ~2 minutes; single inserts into the full index ~900/s.

mod bench;

pub use bench::{IndexBenchReport, bench_index, bench_index_with};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hnsw_rs::prelude::{Distance, Hnsw, Point};
use parking_lot::{Mutex, RwLock};

/// hnsw_rs's upper bound on layers (it caps at 16).
const MAX_LAYERS: usize = 16;

/// A rebuild is due once tombstones are this fraction (1/N) of the graph.
const REBUILD_FRACTION: usize = 5;

/// The HNSW parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexParams {
    /// Links per node on the upper layers (twice as many on layer 0). hnsw_rs allows ≤ 256.
    pub m: usize,
    /// Candidate list length while inserting.
    pub ef_construction: usize,
    /// Candidate list length while searching (at least `k`).
    pub ef_search: usize,
}

impl Default for IndexParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 100,
            ef_search: 192,
        }
    }
}

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub id: u64,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// Why a vector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("the vector has {actual} dimensions; the index holds {expected}")]
    WrongDims { expected: usize, actual: usize },
    #[error("the vector is zero or has a non-finite component")]
    InvalidVector,
}

/// `1 - dot` of two unit vectors, clamped at 0 (hnsw_rs asserts distances are not negative,
/// and rounding makes a vector's dot with itself slightly above 1).
#[derive(Debug, Clone, Copy, Default)]
struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Dot product with eight independent accumulators, so the compiler vectorises it.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The vector scaled to unit length, or `None` when it is zero or not finite.
fn normalised(vector: &[f32]) -> Option<Vec<f32>> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return None;
    }
    Some(vector.iter().map(|x| x / norm).collect())
}

type Graph = Hnsw<'static, f32, UnitCosine>;

fn new_graph(params: &IndexParams, expected: usize) -> Graph {
    Hnsw::new(
        params.m.clamp(2, 256),
        expected.max(1024),
        MAX_LAYERS,
        params.ef_construction.max(params.m),
        UnitCosine,
    )
}

struct State {
    graph: Arc<Graph>,
    /// Live internal slot → external id. A slot in the graph but not here is a tombstone.
    live: HashMap<usize, u64>,
    /// External id → its live slot.
    slot_of: HashMap<u64, usize>,
    next_slot: usize,
    /// Points in `graph`, live or not (an insert counts as soon as it has a slot).
    in_graph: usize,
    /// While a rebuild runs: the inserts made since its snapshot, to replay into the new graph.
    pending: Option<Vec<(usize, Vec<f32>)>>,
}

impl State {
    fn tombstones(&self) -> usize {
        self.in_graph.saturating_sub(self.live.len())
    }

    /// Gives `vector` a new slot for `id` (tombstoning the old one) and returns the slot.
    fn allocate(&mut self, id: u64, vector: &[f32]) -> usize {
        let slot = self.next_slot;
        self.next_slot += 1;
        if let Some(old) = self.slot_of.insert(id, slot) {
            self.live.remove(&old);
        }
        self.live.insert(slot, id);
        self.in_graph += 1;
        if let Some(pending) = &mut self.pending {
            pending.push((slot, vector.to_vec()));
        }
        slot
    }

    /// Graph hits → live neighbours, best first, at most `k`.
    fn resolve(&self, hits: &[hnsw_rs::prelude::Neighbour], k: usize) -> Vec<Neighbour> {
        hits.iter()
            .filter_map(|hit| {
                self.live.get(&hit.d_id).map(|&id| Neighbour {
                    id,
                    similarity: 1.0 - hit.distance,
                })
            })
            .take(k)
            .collect()
    }
}

/// The approximate nearest-neighbour index. `Send + Sync`: share it in an `Arc`.
pub struct VectorIndex {
    dims: usize,
    params: IndexParams,
    state: RwLock<State>,
    /// Held shared by an insert from taking a slot until the graph holds the point, and
    /// exclusively by a rebuild while it snapshots, so the snapshot misses no point.
    insert_gate: RwLock<()>,
    /// One rebuild at a time.
    rebuild_lock: Mutex<()>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.read();
        f.debug_struct("VectorIndex")
            .field("dims", &self.dims)
            .field("params", &self.params)
            .field("live", &state.live.len())
            .field("tombstones", &state.tombstones())
            .finish()
    }
}

impl VectorIndex {
    /// An empty index of `dims`-dimensional vectors with the default parameters.
    pub fn new(dims: usize) -> Self {
        Self::with_params(dims, IndexParams::default())
    }

    pub fn with_params(dims: usize, params: IndexParams) -> Self {
        Self {
            dims,
            params,
            state: RwLock::new(State {
                graph: Arc::new(new_graph(&params, 0)),
                live: HashMap::new(),
                slot_of: HashMap::new(),
                next_slot: 0,
                in_graph: 0,
                pending: None,
            }),
            insert_gate: RwLock::new(()),
            rebuild_lock: Mutex::new(()),
        }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn params(&self) -> IndexParams {
        self.params
    }

    fn checked(&self, vector: &[f32]) -> Result<Vec<f32>, IndexError> {
        if vector.len() != self.dims {
            return Err(IndexError::WrongDims {
                expected: self.dims,
                actual: vector.len(),
            });
        }
        normalised(vector).ok_or(IndexError::InvalidVector)
    }

    /// Adds `vector` under `id`, replacing what `id` had. The vector is normalised.
    pub fn insert(&self, id: u64, vector: &[f32]) -> Result<(), IndexError> {
        let vector = self.checked(vector)?;
        let _gate = self.insert_gate.read();
        let (graph, slot) = {
            let mut state = self.state.write();
            let slot = state.allocate(id, &vector);
            (Arc::clone(&state.graph), slot)
        };
        graph.insert_slice((&vector, slot));
        Ok(())
    }

    /// Adds many vectors at once, inserting them in parallel on rayon's global pool (every
    /// core): for loading a saved cache at start-up, not for the request path. Nothing is
    /// added if any vector is refused.
    pub fn insert_batch<V: AsRef<[f32]>>(&self, items: &[(u64, V)]) -> Result<(), IndexError> {
        let vectors = items
            .iter()
            .map(|(_, vector)| self.checked(vector.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let _gate = self.insert_gate.read();
        let (graph, slots) = {
            let mut state = self.state.write();
            let slots: Vec<usize> = items
                .iter()
                .zip(&vectors)
                .map(|((id, _), vector)| state.allocate(*id, vector))
                .collect();
            (Arc::clone(&state.graph), slots)
        };
        let batch: Vec<(&[f32], usize)> = vectors.iter().map(Vec::as_slice).zip(slots).collect();
        graph.parallel_insert_slice(&batch);
        Ok(())
    }

    /// Tombstones `id`: no search returns it from now on. Unknown ids are ignored.
    pub fn remove(&self, id: u64) {
        let mut state = self.state.write();
        if let Some(slot) = state.slot_of.remove(&id) {
            state.live.remove(&slot);
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.state.read().slot_of.contains_key(&id)
    }

    /// The `k` live entries most similar to `query`, best first. Empty when the query has the
    /// wrong dimensions or is zero or non-finite.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        if k == 0 {
            return Vec::new();
        }
        let Ok(query) = self.checked(query) else {
            return Vec::new();
        };
        let (graph, tombstones) = {
            let state = self.state.read();
            if state.live.is_empty() {
                return Vec::new();
            }
            (Arc::clone(&state.graph), state.tombstones())
        };
        let ef = self.params.ef_search.max(k);
        // Every candidate HNSW kept, so that tombstones among them leave the live ones.
        let hits = graph.search(&query, ef, ef);
        let state = self.state.read();
        let found = state.resolve(&hits, k);
        if found.len() >= k || tombstones == 0 || found.len() >= state.live.len() {
            return found;
        }
        // Tombstones crowded the candidates out: search again skipping them inside HNSW.
        let live = |slot: &usize| state.live.contains_key(slot);
        let hits = graph.search_filter(&query, k, ef, Some(&live));
        let refound = state.resolve(&hits, k);
        if refound.len() > found.len() {
            refound
        } else {
            found
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.state.read().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removed (or replaced) points still in the graph.
    pub fn tombstones(&self) -> usize {
        self.state.read().tombstones()
    }

    /// Whether tombstones have reached a fifth of the graph.
    pub fn needs_rebuild(&self) -> bool {
        let state = self.state.read();
        let tombstones = state.tombstones();
        tombstones > 0 && tombstones * REBUILD_FRACTION >= state.in_graph
    }

    /// [`rebuild`](Self::rebuild) if [`needs_rebuild`](Self::needs_rebuild); whether it did.
    pub fn rebuild_if_needed(&self) -> bool {
        if self.needs_rebuild() {
            self.rebuild();
            true
        } else {
            false
        }
    }

    /// Builds a new graph from the live points, on this thread, and swaps it in. Searches,
    /// inserts and removals go on meanwhile; one rebuild runs at a time. Blocking: call it
    /// from `spawn_blocking`.
    pub fn rebuild(&self) {
        let _one = self.rebuild_lock.lock();
        let (old, snapshot) = {
            // No insert is between taking a slot and reaching the graph while this is held.
            let _gate = self.insert_gate.write();
            let mut state = self.state.write();
            state.pending = Some(Vec::new());
            let snapshot: HashSet<usize> = state.live.keys().copied().collect();
            (Arc::clone(&state.graph), snapshot)
        };
        let mut points = points_of(&old);
        points.retain(|point| snapshot.contains(&point.get_origin_id()));
        let new = Arc::new(new_graph(&self.params, points.len()));
        for point in &points {
            new.insert_slice((point.get_v(), point.get_origin_id()));
        }
        let mut in_new = points.len();
        drop(points);
        drop(snapshot);
        // Replay the inserts made meanwhile; swap once none is left.
        loop {
            let batch = {
                let mut state = self.state.write();
                let pending = state
                    .pending
                    .as_mut()
                    .map(std::mem::take)
                    .unwrap_or_default();
                if pending.is_empty() {
                    state.graph = Arc::clone(&new);
                    state.in_graph = in_new;
                    state.pending = None;
                    break;
                }
                pending
            };
            for (slot, vector) in &batch {
                new.insert_slice((vector, *slot));
            }
            in_new += batch.len();
        }
        drop(new);
        release(old);
    }

    /// An estimate of the memory held: vectors, graph (hnsw_rs allocates every node's layer
    /// table and every edge separately) and the id maps, with 16 bytes of allocator overhead per
    /// allocation. At 100 000 entries built on one thread it matches the resident set's growth
    /// (419 vs 417 MiB); after [`insert_batch`](Self::insert_batch) the resident set is ~35 %
    /// larger (rayon's threads keep freed memory in their own allocator arenas). Walks the
    /// graph: O(entries), for benchmarks and occasional metrics.
    pub fn memory_bytes(&self) -> usize {
        const ALLOC: usize = 16;
        const ARC: usize = 16;
        let graph = {
            let state = self.state.read();
            let maps = (state.live.capacity() + state.slot_of.capacity())
                * (std::mem::size_of::<(usize, u64)>() + 1);
            let pending = state.pending.as_ref().map_or(0, |pending| {
                pending.len() * (self.dims * 4 + std::mem::size_of::<(usize, Vec<f32>)>() + ALLOC)
            });
            (Arc::clone(&state.graph), maps + pending)
        };
        let (graph, mut total) = graph;
        let vector = self.dims * 4 + ALLOC;
        // Point (data, ids, Arc to its neighbour table) inside an Arc, plus its slot in the
        // per-layer list.
        let point = std::mem::size_of::<Point<'static, f32>>() + ARC + ALLOC + 8;
        // The neighbour table: Arc<RwLock<Vec<..>>> and its 16 per-layer Vecs.
        let table = ARC + 8 + 24 + ALLOC + MAX_LAYERS * 24 + ALLOC;
        // An edge: a pointer in the layer's Vec and an Arc<PointWithOrder> (pointer + f32).
        let edge = ARC + 16 + ALLOC;
        for point_ref in points_of(&graph) {
            total += vector + point + table;
            for layer in point_ref.get_neighborhood_id() {
                if !layer.is_empty() {
                    // A list starts at its first length and doubles on the first reverse edge
                    // past it; most lists get one.
                    total += (2 * layer.len()).max(4) * 8 + ALLOC + layer.len() * edge;
                }
            }
        }
        total
    }
}

/// Every point of `graph`. Reads one layer list at a time under its lock and nothing else:
/// hnsw_rs's own whole-graph iterator takes that lock again while holding it, which deadlocks
/// with a waiting insert (parking_lot's locks are fair), and panics on an empty graph.
fn points_of(graph: &Graph) -> Vec<Arc<Point<'static, f32>>> {
    let indexation = graph.get_point_indexation();
    let mut points = Vec::with_capacity(graph.get_nb_point());
    for layer in 0..MAX_LAYERS {
        points.extend(indexation.get_layer_iterator(layer));
    }
    points
}

/// Drops the old graph on this thread once no search holds it (a search holds it for well
/// under a millisecond), so its teardown (rayon, ~10 ms per 100 000 points) does not land on
/// a request. Gives up waiting after two seconds.
fn release(mut old: Arc<Graph>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match Arc::try_unwrap(old) {
            Ok(graph) => return drop(graph),
            Err(shared) if Instant::now() >= deadline => return drop(shared),
            Err(shared) => {
                old = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bench::{Dataset, brute_force_top1};
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0..1.0)).collect();
        normalised(&v).unwrap()
    }

    #[test]
    fn index_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<VectorIndex>();
    }

    #[test]
    fn empty_index_finds_nothing() {
        let index = VectorIndex::new(8);
        assert!(index.is_empty());
        assert_eq!(index.len(), 0);
        assert!(index.search(&[1.0; 8], 3).is_empty());
        index.remove(42);
        assert!(index.is_empty());
    }

    #[test]
    fn exact_match_comes_first() {
        let mut rng = StdRng::seed_from_u64(1);
        let index = VectorIndex::new(32);
        let vectors: Vec<Vec<f32>> = (0..500).map(|_| unit(&mut rng, 32)).collect();
        for (id, v) in vectors.iter().enumerate() {
            index.insert(id as u64, v).unwrap();
        }
        assert_eq!(index.len(), 500);
        for (id, v) in vectors.iter().enumerate().step_by(7) {
            let hits = index.search(v, 3);
            assert_eq!(hits.len(), 3);
            assert_eq!(hits[0].id, id as u64);
            assert!((hits[0].similarity - 1.0).abs() < 1e-5, "{hits:?}");
            assert!(hits[0].similarity >= hits[1].similarity);
            assert!(hits[1].similarity >= hits[2].similarity);
        }
    }

    #[test]
    fn vectors_are_normalised() {
        let index = VectorIndex::new(3);
        index.insert(1, &[3.0, 0.0, 0.0]).unwrap();
        index.insert(2, &[0.0, 5.0, 0.0]).unwrap();
        let hits = index.search(&[10.0, 1.0, 0.0], 2);
        assert_eq!(hits[0].id, 1);
        assert!((hits[0].similarity - 10.0 / 101f32.sqrt()).abs() < 1e-5);
        assert_eq!(hits[1].id, 2);
    }

    #[test]
    fn wrong_dims_and_bad_vectors_are_refused() {
        let index = VectorIndex::new(4);
        assert_eq!(
            index.insert(1, &[1.0, 0.0, 0.0]),
            Err(IndexError::WrongDims {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(index.insert(1, &[0.0; 4]), Err(IndexError::InvalidVector));
        assert_eq!(
            index.insert(1, &[f32::NAN, 1.0, 0.0, 0.0]),
            Err(IndexError::InvalidVector)
        );
        assert_eq!(
            index.insert_batch(&[(1, vec![1.0; 4]), (2, vec![1.0; 5])]),
            Err(IndexError::WrongDims {
                expected: 4,
                actual: 5
            })
        );
        assert!(index.is_empty());
        index.insert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
        assert!(index.search(&[1.0, 0.0], 1).is_empty());
        assert!(index.search(&[0.0; 4], 1).is_empty());
        assert!(index.search(&[1.0, 0.0, 0.0, 0.0], 0).is_empty());
    }

    #[test]
    fn removed_ids_are_never_returned() {
        let mut rng = StdRng::seed_from_u64(2);
        let index = VectorIndex::new(16);
        let vectors: Vec<Vec<f32>> = (0..300).map(|_| unit(&mut rng, 16)).collect();
        for (id, v) in vectors.iter().enumerate() {
            index.insert(id as u64, v).unwrap();
        }
        for id in (0..300).filter(|id| id % 3 == 0) {
            index.remove(id);
        }
        assert_eq!(index.len(), 200);
        assert_eq!(index.tombstones(), 100);
        assert!(index.needs_rebuild());
        for v in &vectors {
            let hits = index.search(v, 10);
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|hit| hit.id % 3 != 0), "{hits:?}");
        }
        // Even when the query is a removed vector and k exceeds what is left nearby.
        let hits = index.search(&vectors[0], 200);
        assert_eq!(hits.len(), 200);
        assert!(hits.iter().all(|hit| hit.id % 3 != 0));
    }

    #[test]
    fn reinserting_an_id_replaces_its_vector() {
        let index = VectorIndex::new(2);
        index.insert(7, &[1.0, 0.0]).unwrap();
        index.insert(8, &[0.0, 1.0]).unwrap();
        index.insert(7, &[-1.0, 0.0]).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.tombstones(), 1);
        let hits = index.search(&[1.0, 0.1], 2);
        assert_eq!(hits.iter().filter(|hit| hit.id == 7).count(), 1);
        assert_eq!(hits[0].id, 8);
        assert!(hits[1].similarity < 0.0);
    }

    #[test]
    fn rebuild_keeps_the_live_content() {
        let mut rng = StdRng::seed_from_u64(3);
        let index = VectorIndex::new(24);
        let vectors: Vec<Vec<f32>> = (0..400).map(|_| unit(&mut rng, 24)).collect();
        for (id, v) in vectors.iter().enumerate() {
            index.insert(id as u64, v).unwrap();
        }
        for id in 0..150 {
            index.remove(id);
        }
        assert!(index.rebuild_if_needed());
        assert_eq!(index.tombstones(), 0);
        assert!(!index.needs_rebuild());
        assert_eq!(index.len(), 250);
        for (id, v) in vectors.iter().enumerate() {
            let hits = index.search(v, 1);
            if id < 150 {
                assert_ne!(hits[0].id, id as u64);
            } else {
                assert_eq!(hits[0].id, id as u64);
            }
        }
        // Still a working index afterwards.
        index.insert(1000, &vectors[0]).unwrap();
        assert_eq!(index.search(&vectors[0], 1)[0].id, 1000);
        index.remove(1000);
        assert!(
            index
                .search(&vectors[0], 5)
                .iter()
                .all(|hit| hit.id != 1000)
        );
    }

    #[test]
    fn concurrent_inserts_searches_and_a_rebuild() {
        const TOTAL: u64 = 1000;
        const FIRST: u64 = 250;
        let index = Arc::new(VectorIndex::new(16));
        let mut rng = StdRng::seed_from_u64(4);
        let vectors: Arc<Vec<Vec<f32>>> =
            Arc::new((0..TOTAL).map(|_| unit(&mut rng, 16)).collect());
        for id in 0..FIRST {
            index.insert(id, &vectors[id as usize]).unwrap();
        }
        // Enough tombstones that searches take the filtered path now and then.
        for id in 0..100 {
            index.remove(id);
        }
        let per_writer = (TOTAL - FIRST) / 2;
        std::thread::scope(|scope| {
            for writer in 0..2 {
                let (index, vectors) = (Arc::clone(&index), Arc::clone(&vectors));
                scope.spawn(move || {
                    let start = FIRST + writer * per_writer;
                    for id in start..start + per_writer {
                        index.insert(id, &vectors[id as usize]).unwrap();
                        if id % 10 == 0 {
                            index.remove(id);
                        }
                    }
                });
            }
            for reader in 0..2 {
                let (index, vectors) = (Arc::clone(&index), Arc::clone(&vectors));
                scope.spawn(move || {
                    for i in 0..600 {
                        let hits = index.search(&vectors[(i * 7 + reader) % TOTAL as usize], 5);
                        assert!(hits.iter().all(|hit| hit.id >= 100));
                        assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
                    }
                });
            }
            let index = Arc::clone(&index);
            scope.spawn(move || index.rebuild());
        });
        let live = (100..TOTAL).filter(|id| *id < FIRST || id % 10 != 0);
        assert_eq!(index.len(), live.clone().count());
        index.rebuild();
        assert_eq!(index.tombstones(), 0);
        assert_eq!(index.len(), live.clone().count());
        for id in live {
            assert_eq!(index.search(&vectors[id as usize], 1)[0].id, id, "id {id}");
        }
    }

    #[test]
    fn batch_insert_is_searchable() {
        let mut rng = StdRng::seed_from_u64(5);
        let index = VectorIndex::new(16);
        let items: Vec<(u64, Vec<f32>)> = (0..1000).map(|id| (id, unit(&mut rng, 16))).collect();
        index.insert_batch(&items).unwrap();
        assert_eq!(index.len(), 1000);
        for (id, v) in items.iter().step_by(13) {
            assert_eq!(index.search(v, 1)[0].id, *id);
        }
    }

    #[test]
    fn recall_on_a_small_seeded_dataset() {
        // Clustered and random points; queries are stored vectors plus noise (paraphrases).
        let data = Dataset::generate(1500, 200, 32, 6);
        let index = VectorIndex::new(32);
        for (id, v) in data.entries.iter().enumerate() {
            index.insert(id as u64, v).unwrap();
        }
        let hits = data
            .queries
            .iter()
            .filter(|q| {
                let truth = brute_force_top1(&data.entries, q);
                index.search(q, 1).first().map(|hit| hit.id as usize) == Some(truth)
            })
            .count();
        let recall = hits as f64 / data.queries.len() as f64;
        assert!(recall >= 0.99, "recall@1 {recall}");
    }

    #[test]
    fn memory_estimate_grows_with_entries() {
        let mut rng = StdRng::seed_from_u64(7);
        let index = VectorIndex::new(384);
        let empty = index.memory_bytes();
        for id in 0..200 {
            index.insert(id, &unit(&mut rng, 384)).unwrap();
        }
        let per_entry = (index.memory_bytes() - empty) / 200;
        // At least the vector itself, and not absurdly more.
        assert!((384 * 4..384 * 4 * 6).contains(&per_entry), "{per_entry}");
    }

    /// The benchmark at full size; run with
    /// `cargo test -p crane-core --release --lib planning::semantic::index -- --ignored --nocapture`
    /// (`CRANE_INDEX_BENCH_ENTRIES`, `_M`, `_EF_CONSTRUCTION`, `_EF_SEARCH` override the defaults).
    #[test]
    #[ignore = "a benchmark: minutes at 100 000 entries"]
    fn bench_100k() {
        let var = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(default)
        };
        let defaults = IndexParams::default();
        let params = IndexParams {
            m: var("CRANE_INDEX_BENCH_M", defaults.m),
            ef_construction: var(
                "CRANE_INDEX_BENCH_EF_CONSTRUCTION",
                defaults.ef_construction,
            ),
            ef_search: var("CRANE_INDEX_BENCH_EF_SEARCH", defaults.ef_search),
        };
        let entries = var("CRANE_INDEX_BENCH_ENTRIES", 100_000);
        let report = bench_index_with(params, entries, 2000, 384, 42);
        println!("{report}");
    }
}
