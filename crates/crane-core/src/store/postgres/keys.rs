//! STUB (being written): keys

use super::PgStore;
#[allow(unused_imports)]
use crate::store::*;

impl PgStore {
    pub async fn insert_api_key(&self, _key: &ApiKeyRow) -> Result<(), StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn get_api_key(&self, _key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn list_api_keys(&self, _tenant: Option<&str>) -> Result<Vec<ApiKeyRow>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn revoke_api_key(
        &self,
        _key_id: &str,
        _tenant: Option<&str>,
        _at: &str,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
}
