//! STUB (being written): audit

use super::PgStore;
#[allow(unused_imports)]
use crate::store::*;

impl PgStore {
    pub async fn audit(&self, _entry: AuditEntry) -> Result<(), StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn list_audit(
        &self,
        _tenant: &str,
        _limit: usize,
        _cursor: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
}
