//! STUB (being written): evals

use super::PgStore;
#[allow(unused_imports)]
use crate::store::*;

impl PgStore {
    pub async fn insert_eval(
        &self,
        _tenant: &str,
        _eval_id: &str,
        _created_at: &str,
        _summary: &serde_json::Value,
        _report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn get_eval(
        &self,
        _tenant: &str,
        _eval_id: &str,
    ) -> Result<Option<StoredEval>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn list_evals(
        &self,
        _tenant: &str,
        _limit: usize,
        _cursor: Option<i64>,
    ) -> Result<EvalPage, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
}
