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

fn decode_notified(text: &str) -> Vec<u8> {
    let mut list: Vec<u8> = text
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    list.sort_unstable();
    list.dedup();
    list
}

fn encode_notified(list: &[u8]) -> String {
    list.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

fn tokens_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
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
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let usd = if usd.is_finite() { usd.max(0.0) } else { 0.0 };
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
            let mut newly = crossed(used_usd, used_tokens, &notified);
            newly.retain(|t| !notified.contains(t));
            newly.sort_unstable();
            newly.dedup();
            let mut all = notified;
            if !newly.is_empty() {
                all.extend_from_slice(&newly);
                all.sort_unstable();
                conn.prepare_cached(
                    "UPDATE budget_spend SET notified = ?4
                     WHERE tenant = ?1 AND win = ?2 AND period_start = ?3",
                )?
                .execute(params![tenant, window, start, encode_notified(&all)])?;
            }
            Ok(SpendUpdate {
                row: BudgetSpendRow {
                    used_usd,
                    used_tokens,
                    notified: all,
                },
                newly,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::StoreConfig;

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
