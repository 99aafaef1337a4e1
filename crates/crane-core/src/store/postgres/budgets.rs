//! STUB (being written): budgets

use super::PgStore;
#[allow(unused_imports)]
use crate::store::*;

impl PgStore {
    pub async fn budget_spend(
        &self,
        _tenant: &str,
        _window: &str,
        _period_start: &str,
    ) -> Result<Option<BudgetSpendRow>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn add_budget_spend<F>(
        &self,
        _tenant: &str,
        _window: &str,
        _period_start: &str,
        _tokens: u64,
        _usd: f64,
        _crossed: F,
    ) -> Result<SpendUpdate, StoreError>
    where
        F: FnOnce(f64, u64, &[u8]) -> Vec<u8> + Send + 'static,
    {
        Err(StoreError::Postgres("todo".into()))
    }
}
