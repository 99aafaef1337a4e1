//! Spend per tenant, budget window and period (`budget_spend`): tokens and USD added after each
//! planning, and the alert thresholds already notified in that period. Adding spend and marking
//! the thresholds it crossed happen in one transaction, so a threshold is marked exactly once
//! however many writers add spend at the same time, and a restart never notifies it again.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, StoreError};

/// A period's spend as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetSpendRow {
    pub used_usd: f64,
    pub used_tokens: u64,
    /// Thresholds (percent) already notified in this period, ascending.
    pub notified: Vec<u8>,
}

/// What [`Store::add_budget_spend`] did: the period's spend afterwards (thresholds marked
/// included) and the thresholds this write marked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpendUpdate {
    pub row: BudgetSpendRow,
    pub newly: Vec<u8>,
}

/// The thresholds of a stored `notified` list (`80,95`), ascending.
pub(super) fn decode_notified(text: &str) -> Vec<u8> {
    let mut list: Vec<u8> = text
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    list.sort_unstable();
    list.dedup();
    list
}

/// The stored form of a `notified` list.
pub(super) fn encode_notified(list: &[u8]) -> String {
    list.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// A stored token count (never negative).
pub(super) fn tokens_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The spend to add as stored: tokens as a (saturated) integer, USD as a finite non-negative
/// amount.
pub(super) fn spend_of(tokens: u64, usd: f64) -> (i64, f64) {
    let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
    let usd = if usd.is_finite() { usd.max(0.0) } else { 0.0 };
    (tokens, usd)
}

/// `usd` rounded to 12 decimals as SQLite's `round(usd, 12)` does it (print with 12 decimals,
/// read back; values too large to have a fraction unchanged), for the backends that round in
/// Rust: costs carry no float noise (like `crane_llm::add_usd`).
pub(super) fn round_usd(usd: f64) -> f64 {
    if !usd.is_finite() || usd.abs() > 4_503_599_627_370_496.0 {
        return usd;
    }
    format!("{usd:.12}").parse().unwrap_or(usd)
}

/// Asks `crossed` which thresholds the new totals cross, given those `notified` already, and
/// returns the period's spend with them marked and the ones this write marks (new ones only,
/// ascending); the caller stores the marks when `newly` is not empty.
pub(super) fn mark_crossed<F>(
    used_usd: f64,
    used_tokens: u64,
    notified: Vec<u8>,
    crossed: F,
) -> SpendUpdate
where
    F: FnOnce(f64, u64, &[u8]) -> Vec<u8>,
{
    let mut newly = crossed(used_usd, used_tokens, &notified);
    newly.retain(|t| !notified.contains(t));
    newly.sort_unstable();
    newly.dedup();
    let mut all = notified;
    if !newly.is_empty() {
        all.extend_from_slice(&newly);
        all.sort_unstable();
    }
    SpendUpdate {
        row: BudgetSpendRow {
            used_usd,
            used_tokens,
            notified: all,
        },
        newly,
    }
}

impl SqliteStore {
    /// The spend of `tenant`'s `window` budget in the period starting at `period_start`.
    pub async fn budget_spend(
        &self,
        tenant: &str,
        window: &str,
        period_start: &str,
    ) -> Result<Option<BudgetSpendRow>, StoreError> {
        let (tenant, window, start) = (
            tenant.to_owned(),
            window.to_owned(),
            period_start.to_owned(),
        );
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT used_usd, used_tokens, notified FROM budget_spend
                     WHERE tenant = ?1 AND win = ?2 AND period_start = ?3",
                )?
                .query_row(params![tenant, window, start], |r| {
                    Ok(BudgetSpendRow {
                        used_usd: r.get(0)?,
                        used_tokens: tokens_of(r.get(1)?),
                        notified: decode_notified(&r.get::<_, String>(2)?),
                    })
                })
                .optional()?)
        })
        .await
    }

    /// Adds `tokens` and `usd` to the period's spend, then asks `crossed` (given the new totals
    /// and the thresholds notified so far) which thresholds to mark now, and marks them — all in
    /// one transaction.
    pub async fn add_budget_spend<F>(
        &self,
        tenant: &str,
        window: &str,
        period_start: &str,
        tokens: u64,
        usd: f64,
        crossed: F,
    ) -> Result<SpendUpdate, StoreError>
    where
        F: FnOnce(f64, u64, &[u8]) -> Vec<u8> + Send + 'static,
    {
        let (tenant, window, start) = (
            tenant.to_owned(),
            window.to_owned(),
            period_start.to_owned(),
        );
        let (tokens, usd) = spend_of(tokens, usd);
        self.write(move |conn| {
            // Costs carry no float noise (sums rounded to 1e-12 USD, like crane_llm::add_usd).
            let (used_usd, used_tokens, notified) = conn
                .prepare_cached(
                    "INSERT INTO budget_spend (tenant, win, period_start, used_usd, used_tokens, notified)
                     VALUES (?1, ?2, ?3, round(?4, 12), ?5, '')
                     ON CONFLICT (tenant, win, period_start) DO UPDATE SET
                        used_usd = round(used_usd + excluded.used_usd, 12),
                        used_tokens = used_tokens + excluded.used_tokens
                     RETURNING used_usd, used_tokens, notified",
                )?
                .query_row(params![tenant, window, start, usd, tokens], |r| {
                    Ok((
                        r.get::<_, f64>(0)?,
                        tokens_of(r.get(1)?),
                        decode_notified(&r.get::<_, String>(2)?),
                    ))
                })?;
            let update = mark_crossed(used_usd, used_tokens, notified, crossed);
            if !update.newly.is_empty() {
                conn.prepare_cached(
                    "UPDATE budget_spend SET notified = ?4
                     WHERE tenant = ?1 AND win = ?2 AND period_start = ?3",
                )?
                .execute(params![tenant, window, start, encode_notified(&update.row.notified)])?;
            }
            Ok(update)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::StoreConfig;

    #[test]
    fn round_usd_rounds_like_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut values = vec![
            0.0,
            0.00014,
            0.00028,
            1e-13,
            5e-13,
            1.5e-12,
            123.456_789_012_345_6,
        ];
        let mut x = 0.0_f64;
        for i in 0..2000 {
            // Sums of small prices, as spend accumulates.
            x += 0.000_001_37 * f64::from(i % 17) + 0.000_000_000_000_3;
            values.push(x);
        }
        for v in values {
            let sqlite: f64 = conn
                .query_row("SELECT round(?1, 12)", [v], |r| r.get(0))
                .unwrap();
            assert_eq!(round_usd(v).to_bits(), sqlite.to_bits(), "{v}");
        }
    }

    #[tokio::test]
    async fn spend_adds_up_per_period_and_marks_thresholds_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let day = "2026-05-01T00:00:00Z";
        assert_eq!(store.budget_spend("acme", "day", day).await.unwrap(), None);

        let update = store
            .add_budget_spend("acme", "day", day, 120, 0.00014, |_, _, _| vec![80])
            .await
            .unwrap();
        assert_eq!(update.newly, vec![80]);
        // Already marked: asking again marks nothing; the callback sees the marks.
        let update = store
            .add_budget_spend("acme", "day", day, 120, 0.00014, |usd, tokens, notified| {
                assert_eq!(tokens, 240);
                assert!((usd - 0.00028).abs() < 1e-15, "{usd}");
                assert_eq!(notified, [80]);
                vec![80, 95, 90]
            })
            .await
            .unwrap();
        assert_eq!(update.newly, vec![90, 95]);
        assert_eq!(
            update.row,
            BudgetSpendRow {
                used_usd: 0.00028,
                used_tokens: 240,
                notified: vec![80, 90, 95],
            }
        );

        // Other periods, windows and tenants are separate rows.
        store
            .add_budget_spend("acme", "day", "2026-05-02T00:00:00Z", 1, 0.0, |_, _, _| {
                Vec::new()
            })
            .await
            .unwrap();
        store
            .add_budget_spend("beta", "day", day, 7, 0.0, |_, _, _| Vec::new())
            .await
            .unwrap();
        let row = store
            .budget_spend("acme", "day", day)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.used_tokens, row.notified), (240, vec![80, 90, 95]));

        // Stored: a new process sees the same spend and marks.
        drop(store);
        let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
        let row = store
            .budget_spend("acme", "day", day)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.notified, vec![80, 90, 95]);
        assert_eq!(
            store
                .budget_spend("beta", "day", day)
                .await
                .unwrap()
                .unwrap()
                .used_tokens,
            7
        );
    }
}
