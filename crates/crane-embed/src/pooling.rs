//! The arithmetic after the BERT forward pass, on plain slices: mean pooling over the
//! attention mask, L2 normalisation (both as sentence-transformers' `Pooling` and `Normalize`
//! modules compute them) and cosine similarity.
//!
//! Kept apart from candle so that it is tested exactly, without a model.

/// Smallest token count divided by in mean pooling (sentence-transformers clamps the mask sum
/// to 1e-9 so that an all-masked row gives zeros rather than NaN).
const MIN_TOKEN_COUNT: f32 = 1e-9;

/// Smallest norm divided by in normalisation (`torch.nn.functional.normalize`'s eps).
const MIN_NORM: f32 = 1e-12;

/// Mean of the rows of `hidden` (`tokens × dims`, row-major) whose `mask` entry is non-zero.
///
/// Rows beyond the mask or a mask beyond the rows are ignored; no row counted gives zeros.
pub(crate) fn mean_pool(hidden: &[f32], dims: usize, mask: &[u32]) -> Vec<f32> {
    let mut sum = vec![0.0f32; dims];
    if dims == 0 {
        return sum;
    }
    let mut count = 0.0f32;
    for (row, &m) in hidden.chunks_exact(dims).zip(mask) {
        if m == 0 {
            continue;
        }
        count += 1.0;
        for (acc, &x) in sum.iter_mut().zip(row) {
            *acc += x;
        }
    }
    let count = count.max(MIN_TOKEN_COUNT);
    for acc in &mut sum {
        *acc /= count;
    }
    sum
}

/// Scales `v` to unit L2 norm in place; a zero vector stays zero.
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(MIN_NORM);
    for x in v {
        *x /= norm;
    }
}

/// Cosine similarity of two vectors, in `[-1, 1]`.
///
/// For crane-embed's (unit-norm) vectors this is their dot product. Vectors of different
/// lengths come from different models and are not comparable: the result is `0.0`, as it is
/// when either vector is all zeros. Sums run in f64 so long vectors lose no precision.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = (na * nb).sqrt();
    if denom == 0.0 || !denom.is_finite() {
        return 0.0;
    }
    // Rounding can put the ratio a hair outside [-1, 1]; `as` saturates, clamp keeps the range.
    ((dot / denom).clamp(-1.0, 1.0)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn mean_pool_counts_only_masked_rows() {
        // 3 tokens × 2 dims; the last token is padding.
        let hidden = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let pooled = mean_pool(&hidden, 2, &[1, 1, 0]);
        assert_eq!(pooled, vec![2.0, 3.0]);
    }

    #[test]
    fn mean_pool_of_no_tokens_is_zero_not_nan() {
        let pooled = mean_pool(&[5.0, 5.0], 2, &[0]);
        assert_eq!(pooled, vec![0.0, 0.0]);
        assert_eq!(mean_pool(&[], 3, &[]), vec![0.0; 3]);
        assert!(mean_pool(&[1.0], 0, &[1]).is_empty());
    }

    #[test]
    fn normalize_gives_unit_norm_and_leaves_zero_alone() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!(close(v[0], 0.6) && close(v[1], 0.8), "{v:?}");
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    #[test]
    fn cosine_of_known_pairs() {
        assert!(close(cosine(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0));
        assert!(close(cosine(&[1.0, 0.0], &[0.0, 5.0]), 0.0));
        assert!(close(cosine(&[1.0, 1.0], &[-2.0, -2.0]), -1.0));
        assert!(close(
            cosine(&[2.0, 0.0], &[1.0, 1.0]),
            std::f32::consts::FRAC_1_SQRT_2
        ));
    }

    #[test]
    fn cosine_of_incomparable_vectors_is_zero() {
        assert_eq!(cosine(&[1.0, 2.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
        assert_eq!(cosine(&[], &[]), 0.0);
        assert_eq!(cosine(&[f32::INFINITY], &[1.0]), 0.0);
    }

    #[test]
    fn cosine_stays_in_range() {
        let v = [0.1f32; 384];
        let c = cosine(&v, &v);
        assert!((-1.0..=1.0).contains(&c), "{c}");
    }
}
