//! STUB (being written): registry

use super::PgStore;
#[allow(unused_imports)]
use crate::store::*;

impl PgStore {
    pub async fn register_prompt(
        &self,
        _name: &str,
        _version: &str,
        _hash: &str,
        _source: &str,
    ) -> Result<Registration, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn register_variant(
        &self,
        _name: &str,
        _version: &str,
        _hash: &str,
        _spec: &str,
    ) -> Result<Registration, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn prompt_versions(&self) -> Result<Vec<PromptVersion>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn aliases(&self) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn move_alias(
        &self,
        _alias: &str,
        _variant: &str,
        _note: Option<&str>,
    ) -> Result<AliasMove, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn rollback_alias(
        &self,
        _alias: &str,
        _note: Option<&str>,
        _check: impl FnOnce(&str) -> Result<(), String> + Send + 'static,
    ) -> Result<Result<AliasMove, String>, RollbackError> {
        Err(StoreError::Postgres("todo".into()).into())
    }
    pub async fn alias_history(&self, _alias: Option<&str>) -> Result<Vec<AliasMove>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
}
