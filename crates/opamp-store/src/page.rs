//! Cursor pagination.
//!
//! A cursor is an opaque string returned as `next_cursor`; pass it back to get the next page.
//! Cursors are stable under inserts (they name the last row seen, not an offset), so paging
//! through a list that grows never repeats or skips an existing row.

use serde::{Deserialize, Serialize};

/// The largest page a list call returns, whatever `limit` asks for.
pub const MAX_PAGE: u32 = 1000;
/// The page size when `limit` is 0.
pub const DEFAULT_PAGE: u32 = 100;

/// Which page to fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PageRequest {
    /// `None` for the first page, else a `next_cursor` from the previous page.
    pub cursor: Option<String>,
    /// Rows per page: 0 means [`DEFAULT_PAGE`], more than [`MAX_PAGE`] means `MAX_PAGE`.
    pub limit: u32,
}

impl PageRequest {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self {
            cursor: None,
            limit,
        }
    }

    /// The page after `cursor`.
    pub fn after(cursor: impl Into<String>, limit: u32) -> Self {
        Self {
            cursor: Some(cursor.into()),
            limit,
        }
    }

    /// The effective page size.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        }
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row, if any, only tells
    /// that there is a next page, and `cursor_of` names the last row kept.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        limit: u32,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped() {
        assert_eq!(PageRequest::first(0).effective_limit(), DEFAULT_PAGE);
        assert_eq!(PageRequest::first(5).effective_limit(), 5);
        assert_eq!(PageRequest::first(50_000).effective_limit(), MAX_PAGE);
    }

    #[test]
    fn extra_row_makes_a_cursor() {
        let p = Page::from_rows(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let p = Page::from_rows(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(p.next_cursor, None);
    }
}
