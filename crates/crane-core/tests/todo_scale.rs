//! `todo_list` and title lookups with 50 000 todos: every page walk covers each todo once, and
//! the time of each query is printed. Ignored by default (it inserts 50 000 rows); run with
//! `cargo test -p crane-core --release --test todo_scale -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crane_core::store::{Store, StoreConfig, TodoFilter, TodoOrder, TodoSelector};

const TODOS: usize = 50_000;

async fn fill(store: &Arc<Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..64 {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (worker..TODOS).step_by(64) {
                store
                    .todo_add(format!("errand {i} buy item {}", i % 997), None)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // Every third todo done, through the tool's own path.
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        let mut filter = TodoFilter {
            limit: 1000,
            ..TodoFilter::default()
        };
        loop {
            let page = store.todo_list(filter.clone()).await.unwrap();
            ids.extend(page.todos.into_iter().map(|t| t.id));
            match page.next {
                Some(n) => filter.after = Some(n),
                None => break,
            }
        }
        ids
    };
    for id in ids.iter().step_by(3) {
        store
            .todo_complete(TodoSelector::Id(id.clone()), None)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Median time of `reps` runs of `f`.
async fn median<F, Fut>(reps: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    times.sort();
    times[reps / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inserts 50 000 todos; run with --ignored --nocapture for the timings"]
async fn todo_list_with_50k_todos() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();
    fill(&store).await;
    // Timings of a settled database: reopened, so the inserts' WAL is checkpointed.
    store.close().await;
    drop(store);
    let store = Store::open(dir.path(), &StoreConfig::default()).unwrap();

    // Walking every page sees each todo exactly once, in either order and with a filter.
    for (done, order, expected) in [
        (None, TodoOrder::OldestFirst, TODOS),
        (None, TodoOrder::NewestFirst, TODOS),
        (Some(true), TodoOrder::NewestFirst, TODOS.div_ceil(3)),
    ] {
        let mut seen = HashSet::new();
        let mut filter = TodoFilter {
            done,
            order,
            limit: 1000,
            after: None,
            ..TodoFilter::default()
        };
        loop {
            let page = store.todo_list(filter.clone()).await.unwrap();
            assert_eq!(page.count as usize, expected);
            for t in page.todos {
                assert!(seen.insert(t.id), "a todo was listed twice");
            }
            match page.next {
                Some(n) => filter.after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), expected);
    }

    let near_end = store
        .todo_list(TodoFilter {
            limit: TODOS - 150,
            ..TodoFilter::default()
        })
        .await
        .unwrap()
        .next;
    let cases: Vec<(&str, TodoFilter)> = vec![
        ("first page, default limit 100", TodoFilter::default()),
        (
            "first page, limit 1000",
            TodoFilter {
                limit: 1000,
                ..TodoFilter::default()
            },
        ),
        (
            "newest_first, limit 1",
            TodoFilter {
                limit: 1,
                order: TodoOrder::NewestFirst,
                ..TodoFilter::default()
            },
        ),
        (
            "done=false, limit 100",
            TodoFilter {
                done: Some(false),
                ..TodoFilter::default()
            },
        ),
        (
            "page near the end via cursor, limit 100",
            TodoFilter {
                after: near_end,
                ..TodoFilter::default()
            },
        ),
    ];
    for (name, filter) in cases {
        let t = median(51, || async {
            store.todo_list(filter.clone()).await.unwrap();
        })
        .await;
        println!("todo_list {name}: {:.3} ms", t.as_secs_f64() * 1e3);
    }
    for (name, title) in [
        ("exact title (index)", "errand 49999 buy item 149"),
        ("partial title, one match (LIKE scan)", "errand 49999"),
        ("partial title, no match (LIKE scan)", "walk the dog"),
    ] {
        let t = median(21, || async {
            // A title that does not resolve changes nothing; completing a done todo again
            // changes nothing either.
            let _ = store
                .todo_complete(TodoSelector::Title(title.into()), None)
                .await
                .unwrap();
        })
        .await;
        println!("todo_complete by {name}: {:.3} ms", t.as_secs_f64() * 1e3);
    }
}
