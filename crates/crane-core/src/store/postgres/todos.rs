//! STUB (being written): todos

use super::PgStore;
#[allow(unused_imports)]
use crate::store::*;

impl PgStore {
    pub async fn todo_add_in(
        &self,
        _tenant: &str,
        _title: String,
        _effect_key: Option<String>,
    ) -> Result<Todo, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn todo_list(&self, _filter: TodoFilter) -> Result<TodoPage, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn todo_complete_in(
        &self,
        _tenant: &str,
        _selector: TodoSelector,
        _effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
    pub async fn todo_delete_in(
        &self,
        _tenant: &str,
        _selector: TodoSelector,
        _effect_key: Option<String>,
    ) -> Result<Result<Selected, TodoLookupError>, StoreError> {
        Err(StoreError::Postgres("todo".into()))
    }
}
