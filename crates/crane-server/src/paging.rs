//! Cursor pagination parameters shared by the list endpoints (`GET /runs`, `GET /evals`):
//! `limit` (1-200, default 50) and `cursor` (the `next_cursor` of the previous page).

use crate::error::ApiError;

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
