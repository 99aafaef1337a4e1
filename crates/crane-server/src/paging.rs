//! Cursor pagination parameters shared by the list endpoints (`GET /runs`, `GET /evals`):
//! `limit` (1-200, default 50) and `cursor` (the `next_cursor` of the previous page).

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use serde::Deserialize;

use crate::error::ApiError;

/// The query of a list endpoint that takes only `limit` and `cursor`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `limit` and the decoded `cursor` of a [`PageQuery`], or a 400 naming the known parameters.
pub fn page_query(
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<(usize, Option<i64>), ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{} (known parameters: limit, cursor)",
            e.body_text()
        ))
    })?;
    page_params(q.limit, q.cursor.as_deref())
}

/// Checks `limit` and decodes `cursor`, with errors that say how to fix them.
pub fn page_params(
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<(usize, Option<i64>), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "invalid limit {limit}: use 1-200"
        )));
    }
    let cursor = match cursor {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid cursor '{c}': pass next_cursor from the previous page"
            ))
        })?),
    };
    Ok((limit, cursor))
}
