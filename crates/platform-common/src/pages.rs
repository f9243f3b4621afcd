//! Store lists come a page at a time, each page naming the next by a continuation token
//! (Apple's `paginationToken`, Google's `nextPageToken`, Huawei's `continuationToken`).
//! Reconciliation and refund checks want every entry: `collect_pages` walks the pages so that
//! each adapter only says how one page is fetched and read.

use std::future::Future;

/// One page of a store's list: its entries, and the token of the page after it.
#[derive(Debug)]
pub struct Page<T> {
    /// The entries of this page, as the adapter reads them.
    pub items: Vec<T>,
    /// The token the next page is asked for with; `None` on the last page.
    pub next: Option<String>,
}

/// Every entry of a paged list, first page first: `fetch` is called without a token for the
/// first page, then with each page's `next` until a page names none. The first error ends the
/// walk (the pages read until then are dropped).
pub async fn collect_pages<T, E, F, Fut>(mut fetch: F) -> Result<Vec<T>, E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, E>>,
{
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = fetch(token).await?;
        all.extend(page.items);
        token = page.next;
        if token.is_none() {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_are_read_in_order_until_one_names_no_next() {
        let mut asked = Vec::new();
        let all = collect_pages(|token: Option<String>| {
            asked.push(token.clone());
            async move {
                Ok::<_, ()>(match token.as_deref() {
                    None => Page {
                        items: vec![1, 2],
                        next: Some("b".into()),
                    },
                    Some("b") => Page {
                        items: vec![3],
                        next: Some("c".into()),
                    },
                    _ => Page {
                        items: vec![],
                        next: None,
                    },
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all, vec![1, 2, 3]);
        assert_eq!(asked, vec![None, Some("b".into()), Some("c".into())]);
    }

    #[tokio::test]
    async fn an_error_ends_the_walk() {
        let mut calls = 0;
        let result = collect_pages(|_token| {
            calls += 1;
            let n = calls;
            async move {
                if n == 2 {
                    Err("down")
                } else {
                    Ok(Page {
                        items: vec![n],
                        next: Some("more".into()),
                    })
                }
            }
        })
        .await;
        assert_eq!(result, Err("down"));
        assert_eq!(calls, 2);
    }
}
