//! Budget spend on PostgreSQL: the same rows as SQLite's `budgets.rs` (spend per tenant,
//! window and period, and the thresholds already notified). Several replicas add spend to the
//! same period at once, so adding spend and marking thresholds run in one transaction on the
//! period's row, locked (`FOR UPDATE`): each writer sees the totals and marks of the one before
//! it, and a threshold is marked, and reported `newly`, exactly once.

use super::PgStore;
use crate::store::budgets::{
    decode_notified, encode_notified, mark_crossed, round_usd, spend_of, tokens_of,
};
use crate::store::{BudgetSpendRow, SpendUpdate, StoreError};

impl PgStore {
    /// The spend of `tenant`'s `window` budget in the period starting at `period_start`.
    pub async fn budget_spend(
        &self,
        tenant: &str,
        window: &str,
        period_start: &str,
    ) -> Result<Option<BudgetSpendRow>, StoreError> {
        let row: Option<(f64, i64, String)> = sqlx::query_as(
            "SELECT used_usd, used_tokens, notified FROM budget_spend
             WHERE tenant = $1 AND win = $2 AND period_start = $3",
        )
        .bind(tenant)
        .bind(window)
        .bind(period_start)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(used_usd, used_tokens, notified)| BudgetSpendRow {
            used_usd,
            used_tokens: tokens_of(used_tokens),
            notified: decode_notified(&notified),
        }))
    }

    /// Adds `tokens` and `usd` to the period's spend, then asks `crossed` (given the new totals
    /// and the thresholds notified so far) which thresholds to mark now, and marks them — all in
    /// one transaction holding the period's row lock.
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
        let (tokens, usd) = spend_of(tokens, usd);
        let mut tx = self.pool.begin().await?;
        // The period's row exists (a writer inserting it at the same moment makes this one wait
        // for its commit), then this transaction holds it until commit.
        sqlx::query(
            "INSERT INTO budget_spend (tenant, win, period_start) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, win, period_start) DO NOTHING",
        )
        .bind(tenant)
        .bind(window)
        .bind(period_start)
        .execute(&mut *tx)
        .await?;
        let (used_usd, used_tokens, notified): (f64, i64, String) = sqlx::query_as(
            "SELECT used_usd, used_tokens, notified FROM budget_spend
             WHERE tenant = $1 AND win = $2 AND period_start = $3
             FOR UPDATE",
        )
        .bind(tenant)
        .bind(window)
        .bind(period_start)
        .fetch_one(&mut *tx)
        .await?;
        // Rounded as SQLite does: the added amount, then the sum (no float noise).
        let used_usd = round_usd(used_usd + round_usd(usd));
        let used_tokens = used_tokens.saturating_add(tokens);
        let update = mark_crossed(
            used_usd,
            tokens_of(used_tokens),
            decode_notified(&notified),
            crossed,
        );
        sqlx::query(
            "UPDATE budget_spend SET used_usd = $4, used_tokens = $5, notified = $6
             WHERE tenant = $1 AND win = $2 AND period_start = $3",
        )
        .bind(tenant)
        .bind(window)
        .bind(period_start)
        .bind(used_usd)
        .bind(used_tokens)
        .bind(encode_notified(&update.row.notified))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(update)
    }
}
