//! Todos on both backends.
//!
//! Ported from the SQLite unit tests in `store/todos.rs` (selection by title, effect keys,
//! keyset pages, kept counts), plus what only several replicas can do: the same step run by
//! two of them at once acts once.

use std::sync::Arc;

use crane_core::store::{
    MAX_CANDIDATES, Selected, Store, StoreConfig, Todo, TodoFilter, TodoLookupError, TodoMatch,
    TodoOrder, TodoSelector,
};

use crate::harness::TestStore;
use crate::store_test;

fn by_title(title: &str) -> TodoSelector {
    TodoSelector::Title(title.into())
}

fn by_id(todo: &Todo) -> TodoSelector {
    TodoSelector::Id(todo.id.clone())
}

fn key(k: &str) -> Option<String> {
    Some(k.into())
}

fn in_tenant(tenant: &str) -> TodoFilter {
    TodoFilter {
        tenant: tenant.into(),
        ..TodoFilter::default()
    }
}

/// Titles of every todo of `tenant`, oldest first (one page).
async fn titles(s: &Store, tenant: &str) -> Vec<String> {
    let page = s.todo_list(in_tenant(tenant)).await.unwrap();
    assert_eq!(page.next, None);
    page.todos.into_iter().map(|t| t.title).collect()
}

/// A second store on the same data: another replica on PostgreSQL, the same store on SQLite
/// (one process owns a SQLite data dir).
async fn second(s: &TestStore) -> Arc<Store> {
    match s.url {
        Some(_) => s.another_replica(&StoreConfig::default()).await,
        None => s.store.clone(),
    }
}

/// The titles of every page of `filter`, following `next` to the end.
async fn all_pages(s: &Store, mut filter: TodoFilter) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let page = s.todo_list(filter.clone()).await.unwrap();
        pages.push(page.todos.iter().map(|t| t.title.clone()).collect());
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return pages,
        }
    }
}

store_test!(
    todos_are_added_listed_completed_and_deleted_per_tenant,
    |s: TestStore| async move {
        let a = s
            .todo_add_in("acme", "Buy milk".into(), None)
            .await
            .unwrap();
        assert_eq!(
            (a.title.as_str(), a.done, a.completed_at),
            ("Buy milk", false, None)
        );
        let b = s
            .todo_add_in("acme", "walk dog".into(), None)
            .await
            .unwrap();
        let g = s
            .todo_add_in("globex", "Buy milk".into(), None)
            .await
            .unwrap();
        let d = s.todo_add("default todo".into(), None).await.unwrap();

        let page = s.todo_list(in_tenant("acme")).await.unwrap();
        assert_eq!(page.todos, [a.clone(), b.clone()]);
        assert_eq!((page.count, page.next), (2, None));
        assert_eq!(titles(&s, "globex").await, ["Buy milk"]);
        assert_eq!(titles(&s, "default").await, ["default todo"]);
        assert!(titles(&s, "nobody").await.is_empty());

        // Another tenant's todo is not found, by id or by title, and is left alone.
        let err = s
            .todo_complete_in("globex", by_id(&a), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, TodoLookupError::IdNotFound(a.id.clone()));
        let err = s
            .todo_delete_in("globex", by_title("walk dog"), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, TodoLookupError::TitleNotFound("walk dog".into()));
        let err = s.todo_delete(by_id(&g), None).await.unwrap().unwrap_err();
        assert_eq!(err, TodoLookupError::IdNotFound(g.id.clone()));

        // Each tenant's "Buy milk" is its own.
        let done = s
            .todo_complete_in("acme", by_title("buy MILK"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (done.todo.id.as_str(), done.matched),
            (a.id.as_str(), TodoMatch::Exact)
        );
        assert!(done.todo.done);
        let completed_at = done.todo.completed_at.unwrap();
        assert!(completed_at >= a.created_at);
        let page = s.todo_list(in_tenant("acme")).await.unwrap();
        assert_eq!(page.todos[0], done.todo);
        let page = s.todo_list(in_tenant("globex")).await.unwrap();
        assert_eq!(page.todos, std::slice::from_ref(&g));

        // Completing a done todo returns it unchanged.
        let again = s
            .todo_complete_in("acme", by_id(&a), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.todo, done.todo);
        assert_eq!(again.matched, TodoMatch::Id);

        let deleted = s
            .todo_delete_in("acme", by_id(&b), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            deleted,
            Selected {
                todo: b.clone(),
                matched: TodoMatch::Id
            }
        );
        assert_eq!(titles(&s, "acme").await, ["Buy milk"]);
        assert_eq!(titles(&s, "globex").await, ["Buy milk"]);
        let err = s
            .todo_delete_in("acme", by_id(&b), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("todo not found: no todo has id '{}'", b.id)
        );
        let deleted = s
            .todo_delete(by_title("default todo"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted.todo, d);
    }
);

store_test!(
    titles_are_kept_exactly_and_matched_case_insensitively,
    |s: TestStore| async move {
        let t = s
            .todo_add("Buy \"Milk\" 🥛 Ünïcode".into(), None)
            .await
            .unwrap();
        assert_eq!(t.title, "Buy \"Milk\" 🥛 Ünïcode");
        let done = s
            .todo_complete(by_title("  buy \"milk\" 🥛 ünïcode "), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (done.todo.id.as_str(), done.matched),
            (t.id.as_str(), TodoMatch::Exact)
        );
        assert_eq!(done.todo.title, t.title);
        assert!(done.todo.done && done.todo.completed_at.is_some());
        let err = s
            .todo_delete(by_title(" walk the dog "), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "todo not found: no todo is titled 'walk the dog' and no title contains those words (titles match case-insensitively; list todos to see them)"
        );
        // A title of no words at all matches nothing partially.
        let err = s
            .todo_delete(by_title("?!"), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, TodoLookupError::TitleNotFound("?!".into()));
    }
);

store_test!(
    a_shorter_title_finds_the_one_todo_holding_its_words,
    |s: TestStore| async move {
        let mom = s
            .todo_add("Call Mom tomorrow at 5pm".into(), None)
            .await
            .unwrap();
        s.todo_add("recall the moment".into(), None).await.unwrap();
        s.todo_add("call my mom".into(), None).await.unwrap();
        s.todo_add("call momma".into(), None).await.unwrap();
        // Another tenant's todo holding the words does not make it ambiguous.
        s.todo_add_in("other", "call mom".into(), None)
            .await
            .unwrap();
        let found = s
            .todo_complete(by_title("call mom"), key("r1:1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.todo.id.as_str(), found.matched),
            (mom.id.as_str(), TodoMatch::Partial)
        );
        assert!(found.todo.done);
        // The replay returns the recorded selection, matched kind included.
        let replay = s
            .todo_complete(by_title("call mom"), key("r1:1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replay, found);
        // Punctuation and case do not matter; word order does.
        let found = s
            .todo_delete(by_title("MOM, tomorrow!"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.todo.id, found.matched), (mom.id, TodoMatch::Partial));
        let err = s
            .todo_delete(by_title("tomorrow mom"), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, TodoLookupError::TitleNotFound("tomorrow mom".into()));
        assert_eq!(
            titles(&s, "default").await,
            ["recall the moment", "call my mom", "call momma"]
        );
        assert_eq!(titles(&s, "other").await, ["call mom"]);
    }
);

store_test!(
    an_exact_title_wins_over_titles_that_contain_it,
    |s: TestStore| async move {
        let today = s.todo_add("buy milk today".into(), None).await.unwrap();
        let exact = s.todo_add("Buy Milk".into(), None).await.unwrap();
        let eggs = s.todo_add("buy milk and eggs".into(), None).await.unwrap();
        let found = s
            .todo_delete(by_title(" buy milk "), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.todo.id, found.matched), (exact.id, TodoMatch::Exact));
        // Now only partial matches are left, and there are two: listed oldest first.
        let err = s
            .todo_delete(by_title("buy milk"), None)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err,
            TodoLookupError::Ambiguous {
                title: "buy milk".into(),
                matched: TodoMatch::Partial,
                candidates: vec![today.clone(), eggs.clone()],
                total: 2,
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "ambiguous title 'buy milk': no todo is titled exactly that and 2 todos contain those words (id {} \"buy milk today\", id {} \"buy milk and eggs\"); use the id or the full title instead",
                today.id, eggs.id
            )
        );
        // An ambiguous lookup changed nothing.
        assert_eq!(
            titles(&s, "default").await,
            ["buy milk today", "buy milk and eggs"]
        );
    }
);

store_test!(
    ambiguity_lists_at_most_ten_candidates_and_counts_the_rest,
    |s: TestStore| async move {
        let mut plants = Vec::new();
        for i in 0..13 {
            plants.push(s.todo_add(format!("water plant {i}"), None).await.unwrap());
        }
        let mut dups = Vec::new();
        for _ in 0..12 {
            dups.push(s.todo_add("Dup".into(), None).await.unwrap());
        }
        // Duplicates in another tenant are not counted.
        for _ in 0..3 {
            s.todo_add_in("other", "dup".into(), None).await.unwrap();
        }
        let err = s
            .todo_complete(by_title("water plant"), None)
            .await
            .unwrap()
            .unwrap_err();
        let TodoLookupError::Ambiguous {
            matched,
            candidates,
            total,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*matched, *total), (TodoMatch::Partial, 13));
        assert_eq!(candidates.as_slice(), &plants[..MAX_CANDIDATES]);
        assert!(
            err.to_string().contains("\"water plant 9\" and 3 more)"),
            "{err}"
        );

        let err = s
            .todo_complete(by_title("dup"), None)
            .await
            .unwrap()
            .unwrap_err();
        let TodoLookupError::Ambiguous {
            matched,
            candidates,
            total,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*matched, *total), (TodoMatch::Exact, 12));
        assert_eq!(candidates.as_slice(), &dups[..MAX_CANDIDATES]);
        assert!(
            err.to_string()
                .starts_with("ambiguous title 'dup': 12 todos match"),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with(" and 2 more); use the id instead"),
            "{err}"
        );

        // Two exact matches: both listed, no "more".
        let err = s
            .todo_complete_in("other", by_title("DUP"), None)
            .await
            .unwrap()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("ambiguous title 'DUP': 3 todos match (id "),
            "{msg}"
        );
        assert!(!msg.contains("more"), "{msg}");
        // Nothing was completed by an ambiguous lookup.
        let done = s
            .todo_list(TodoFilter {
                done: Some(true),
                ..TodoFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(done.count, 0);
    }
);

store_test!(
    an_effect_key_adds_once_and_replays_the_recorded_todo,
    |s: TestStore| async move {
        let a = s.todo_add("Buy milk".into(), key("r1:1")).await.unwrap();
        let again = s.todo_add("Buy milk".into(), key("r1:1")).await.unwrap();
        assert_eq!(a, again);
        // The recorded todo is returned even when the replay asks for something else.
        let other = s
            .todo_add_in("acme", "different".into(), key("r1:1"))
            .await
            .unwrap();
        assert_eq!(other, a);
        assert_eq!(titles(&s, "default").await, ["Buy milk"]);
        assert!(titles(&s, "acme").await.is_empty());
        // Another key, or none, adds again.
        let b = s.todo_add("buy milk".into(), key("r1:2")).await.unwrap();
        assert_ne!(a.id, b.id);
        s.todo_add("buy milk".into(), None).await.unwrap();
        let page = s.todo_list(TodoFilter::default()).await.unwrap();
        assert_eq!((page.todos.len(), page.count), (3, 3));
    }
);

store_test!(
    complete_and_delete_replay_their_recorded_selection,
    |s: TestStore| async move {
        let a = s.todo_add("Buy milk".into(), None).await.unwrap();
        let b = s.todo_add("walk dog".into(), None).await.unwrap();

        let done = s
            .todo_complete(by_title("buy milk"), key("r2:1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (done.todo.id.as_str(), done.matched),
            (a.id.as_str(), TodoMatch::Exact)
        );
        // Replaying after the todo changed returns the recorded result, not the new state.
        let deleted = s
            .todo_delete(by_id(&a), key("r2:2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(deleted.todo, done.todo);
        assert_eq!(deleted.matched, TodoMatch::Id);
        let replay = s
            .todo_complete(by_title("buy milk"), key("r2:1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replay, done);
        // Replaying a delete returns the recorded todo instead of "not found".
        let replay = s
            .todo_delete(by_id(&a), key("r2:2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replay, deleted);
        // A replay never acts, whatever it names now.
        let replay = s
            .todo_delete(by_id(&b), key("r2:2"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replay, deleted);
        assert_eq!(titles(&s, "default").await, ["walk dog"]);

        // A lookup that fails records nothing: the same key acts once the todo exists.
        let err = s
            .todo_complete(by_title("feed cat"), key("r3:1"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, TodoLookupError::TitleNotFound("feed cat".into()));
        let cat = s.todo_add("feed cat".into(), None).await.unwrap();
        let done = s
            .todo_complete(by_title("feed cat"), key("r3:1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.todo.id, cat.id);
        assert!(done.todo.done);

        // A key recorded by an add, replayed by an add only; the recorded todo comes back.
        let added = s.todo_add("x".into(), key("r4:1")).await.unwrap();
        assert_eq!(s.todo_add("y".into(), key("r4:1")).await.unwrap(), added);
    }
);

store_test!(
    effects_recorded_before_match_kinds_existed_still_replay,
    |s: TestStore| async move {
        // A previous version recorded the bare todo for a complete/delete. Only PostgreSQL's
        // table is reachable from here; the SQLite unit test in store/todos.rs covers SQLite.
        let Some(pg) = s.postgres() else { return };
        let t = s.todo_add("buy milk".into(), None).await.unwrap();
        for (k, selector, matched) in [
            ("old-run:1", by_title("buy milk"), TodoMatch::Exact),
            ("old-run:2", by_id(&t), TodoMatch::Id),
        ] {
            sqlx::query("INSERT INTO tool_effects (effect_key, output) VALUES ($1, $2)")
                .bind(k)
                .bind(serde_json::to_string(&t).unwrap())
                .execute(pg.pool())
                .await
                .unwrap();
            let replay = s.todo_delete(selector, key(k)).await.unwrap().unwrap();
            assert_eq!(
                replay,
                Selected {
                    todo: t.clone(),
                    matched
                }
            );
        }
        // Replays only: the todo is still there.
        assert_eq!(titles(&s, "default").await, ["buy milk"]);
    }
);

store_test!(
    two_replicas_running_the_same_step_at_once_act_once,
    |s: TestStore| async move {
        let b = second(&s).await;
        for round in 0..20 {
            let k = format!("run-{round}:1");
            let (x, y) = tokio::join!(
                s.todo_add_in("acme", format!("task {round}"), Some(k.clone())),
                b.todo_add_in("acme", format!("task {round}"), Some(k.clone())),
            );
            assert_eq!(x.unwrap(), y.unwrap(), "round {round}");
        }
        let page = s.todo_list(in_tenant("acme")).await.unwrap();
        assert_eq!(page.count, 20);
        let mut seen: Vec<&str> = page.todos.iter().map(|t| t.title.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 20, "a step added its todo twice");

        // Completes and deletes of one step at once: one selection, recorded once.
        for (round, todo) in page.todos.iter().enumerate() {
            let k = format!("run-{round}:2");
            let (x, y) = if round.is_multiple_of(2) {
                tokio::join!(
                    s.todo_complete_in("acme", by_title(&todo.title), Some(k.clone())),
                    b.todo_complete_in("acme", by_title(&todo.title), Some(k.clone())),
                )
            } else {
                tokio::join!(
                    s.todo_delete_in("acme", by_id(todo), Some(k.clone())),
                    b.todo_delete_in("acme", by_id(todo), Some(k.clone())),
                )
            };
            let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
            assert_eq!(x, y, "round {round}");
            assert_eq!(x.todo.id, todo.id);
        }
        let open = s
            .todo_list(TodoFilter {
                done: Some(false),
                ..in_tenant("acme")
            })
            .await
            .unwrap();
        let done = s
            .todo_list(TodoFilter {
                done: Some(true),
                ..in_tenant("acme")
            })
            .await
            .unwrap();
        assert_eq!((open.count, done.count), (0, 10));
        assert!(
            done.todos
                .iter()
                .all(|t| t.done && t.completed_at.is_some())
        );
    }
);

store_test!(
    different_steps_acting_on_one_todo_at_once_act_as_if_one_after_the_other,
    |s: TestStore| async move {
        let b = second(&s).await;
        for round in 0..10 {
            let t = s.todo_add(format!("chore {round}"), None).await.unwrap();
            // Two completes: both find it; the second returns it as the first left it.
            let (x, y) = tokio::join!(
                s.todo_complete(by_id(&t), Some(format!("a{round}"))),
                b.todo_complete(by_title(&t.title), Some(format!("b{round}"))),
            );
            let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
            assert_eq!(x.todo, y.todo, "completed twice in round {round}");
            assert!(x.todo.done);
            // Two deletes: exactly one deletes it, the other finds nothing.
            let (x, y) = tokio::join!(
                s.todo_delete(by_id(&t), Some(format!("c{round}"))),
                b.todo_delete(by_title(&t.title), Some(format!("d{round}"))),
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            match (&x, &y) {
                (Ok(del), Err(TodoLookupError::TitleNotFound(_)))
                | (Err(TodoLookupError::IdNotFound(_)), Ok(del)) => assert_eq!(del.todo.id, t.id),
                _ => panic!("round {round}: {x:?} / {y:?}"),
            }
        }
        let page = s.todo_list(TodoFilter::default()).await.unwrap();
        assert_eq!((page.todos.len(), page.count), (0, 0));
    }
);

store_test!(
    pages_cover_every_todo_once_in_either_order,
    |s: TestStore| async move {
        for t in ["a", "b", "c", "d", "e"] {
            s.todo_add(t.into(), None).await.unwrap();
        }
        s.todo_add_in("other", "z".into(), None).await.unwrap();
        let two = TodoFilter {
            limit: 2,
            ..TodoFilter::default()
        };
        assert_eq!(
            all_pages(&s, two.clone()).await,
            [vec!["a", "b"], vec!["c", "d"], vec!["e"]]
        );
        let newest = TodoFilter {
            order: TodoOrder::NewestFirst,
            ..two.clone()
        };
        assert_eq!(
            all_pages(&s, newest).await,
            [vec!["e", "d"], vec!["c", "b"], vec!["a"]]
        );
        // An exactly full last page says so: no empty page after it.
        let five = TodoFilter {
            limit: 5,
            ..TodoFilter::default()
        };
        let page = s.todo_list(five).await.unwrap();
        assert_eq!((page.todos.len(), page.count, page.next), (5, 5, None));
        // The count is every match, on every page.
        let first = s.todo_list(two.clone()).await.unwrap();
        assert_eq!((first.todos.len(), first.count), (2, 5));
        let page = s
            .todo_list(TodoFilter {
                after: first.next,
                ..two.clone()
            })
            .await
            .unwrap();
        assert_eq!((page.todos.len(), page.count), (2, 5));
        // A limit of 0 is taken as 1.
        let page = s
            .todo_list(TodoFilter {
                limit: 0,
                ..TodoFilter::default()
            })
            .await
            .unwrap();
        assert_eq!((page.todos.len(), page.count), (1, 5));
        assert!(page.next.is_some());
    }
);

store_test!(
    pages_stay_stable_while_todos_are_added_and_deleted,
    |s: TestStore| async move {
        for t in ["a", "b", "c", "d"] {
            s.todo_add(t.into(), None).await.unwrap();
        }
        let two = TodoFilter {
            limit: 2,
            ..TodoFilter::default()
        };
        let first = s.todo_list(two.clone()).await.unwrap();
        // Between pages: the first todo is deleted and two are added.
        s.todo_delete(by_title("a"), None).await.unwrap().unwrap();
        s.todo_add("e".into(), None).await.unwrap();
        s.todo_add("f".into(), None).await.unwrap();
        let second = s
            .todo_list(TodoFilter {
                after: first.next,
                ..two.clone()
            })
            .await
            .unwrap();
        // An offset would skip "c" (everything moved up by one); the keyset does not.
        let titles: Vec<&str> = second.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["c", "d"]);
        assert_eq!(second.count, 5);

        // Newest first: todos added after the first page do not push old ones onto the next.
        let newest = TodoFilter {
            order: TodoOrder::NewestFirst,
            ..two.clone()
        };
        let first = s.todo_list(newest.clone()).await.unwrap();
        let titles: Vec<&str> = first.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["f", "e"]);
        s.todo_add("g".into(), None).await.unwrap();
        s.todo_add("h".into(), None).await.unwrap();
        let second = s
            .todo_list(TodoFilter {
                after: first.next,
                ..newest
            })
            .await
            .unwrap();
        let titles: Vec<&str> = second.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(titles, ["d", "c"], "an offset would repeat f and e");
    }
);

store_test!(
    filtered_pages_follow_the_done_filter,
    |s: TestStore| async move {
        for i in 0..6 {
            let t = s.todo_add(format!("t{i}"), None).await.unwrap();
            if i % 2 == 0 {
                s.todo_complete(by_id(&t), None).await.unwrap().unwrap();
            }
        }
        let open_first = TodoFilter {
            done: Some(false),
            limit: 2,
            ..TodoFilter::default()
        };
        assert_eq!(
            all_pages(&s, open_first.clone()).await,
            [vec!["t1", "t3"], vec!["t5"]]
        );
        let page = s.todo_list(open_first).await.unwrap();
        assert_eq!(page.count, 3);
        assert!(
            page.todos
                .iter()
                .all(|t| !t.done && t.completed_at.is_none())
        );
        let done_newest = TodoFilter {
            done: Some(true),
            limit: 2,
            order: TodoOrder::NewestFirst,
            ..TodoFilter::default()
        };
        assert_eq!(
            all_pages(&s, done_newest.clone()).await,
            [vec!["t4", "t2"], vec!["t0"]]
        );
        let page = s.todo_list(done_newest).await.unwrap();
        assert_eq!(page.count, 3);
        assert!(
            page.todos
                .iter()
                .all(|t| t.done && t.completed_at.is_some())
        );
        let open_newest = TodoFilter {
            done: Some(false),
            limit: 1,
            order: TodoOrder::NewestFirst,
            ..TodoFilter::default()
        };
        assert_eq!(
            all_pages(&s, open_newest).await,
            [vec!["t5"], vec!["t3"], vec!["t1"]]
        );
        let done_oldest = TodoFilter {
            done: Some(true),
            limit: 10,
            ..TodoFilter::default()
        };
        assert_eq!(all_pages(&s, done_oldest).await, [vec!["t0", "t2", "t4"]]);
    }
);

store_test!(
    kept_counts_equal_the_todos_after_adds_completes_and_deletes,
    |s: TestStore| async move {
        for i in 0..7 {
            s.todo_add(format!("a{i}"), None).await.unwrap();
        }
        for i in 0..3 {
            s.todo_add_in("other", format!("b{i}"), None).await.unwrap();
        }
        s.todo_complete(by_title("a1"), None)
            .await
            .unwrap()
            .unwrap();
        s.todo_complete(by_title("a2"), None)
            .await
            .unwrap()
            .unwrap();
        s.todo_delete(by_title("a3"), None).await.unwrap().unwrap();
        s.todo_delete(by_title("a2"), None).await.unwrap().unwrap();
        // Completing a done todo again does not count it twice.
        s.todo_complete(by_title("a1"), None)
            .await
            .unwrap()
            .unwrap();
        s.todo_complete_in("other", by_title("b0"), None)
            .await
            .unwrap()
            .unwrap();
        s.todo_delete_in("other", by_title("b0"), None)
            .await
            .unwrap()
            .unwrap();
        for (tenant, done, want) in [
            ("default", None, 5),
            ("default", Some(true), 1),
            ("default", Some(false), 4),
            ("other", None, 2),
            ("other", Some(true), 0),
            ("other", Some(false), 2),
            ("nobody", None, 0),
            ("nobody", Some(true), 0),
        ] {
            let filter = TodoFilter {
                tenant: tenant.into(),
                done,
                ..TodoFilter::default()
            };
            // A full first page of one reads the kept count; walking every page counts rows.
            let page = s
                .todo_list(TodoFilter {
                    limit: 1,
                    ..filter.clone()
                })
                .await
                .unwrap();
            let rows: usize = all_pages(
                &s,
                TodoFilter {
                    limit: 2,
                    ..filter.clone()
                },
            )
            .await
            .iter()
            .map(Vec::len)
            .sum();
            assert_eq!(
                (page.count, rows),
                (want, want as usize),
                "{tenant} {done:?}"
            );
            // A later page reports the same count.
            if let Some(next) = page.next {
                let later = s
                    .todo_list(TodoFilter {
                        limit: 1,
                        after: Some(next),
                        ..filter.clone()
                    })
                    .await
                    .unwrap();
                assert_eq!(later.count, want, "{tenant} {done:?}");
            }
        }
    }
);

store_test!(
    counts_stay_exact_under_concurrent_changes,
    |s: TestStore| async move {
        // Many concurrent adds, completes and deletes over both stores: the kept counts (and
        // their shards on PostgreSQL) must end equal to the todos.
        let b = second(&s).await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = if i % 2 == 0 {
                s.store.clone()
            } else {
                b.clone()
            };
            tasks.push(tokio::spawn(async move {
                let t = store
                    .todo_add_in("acme", format!("job {i}"), None)
                    .await
                    .unwrap();
                match i % 4 {
                    0 => {
                        store
                            .todo_complete_in("acme", by_id(&t), None)
                            .await
                            .unwrap()
                            .unwrap();
                    }
                    1 => {
                        store
                            .todo_delete_in("acme", by_id(&t), None)
                            .await
                            .unwrap()
                            .unwrap();
                    }
                    2 => {
                        store
                            .todo_complete_in("acme", by_id(&t), None)
                            .await
                            .unwrap()
                            .unwrap();
                        store
                            .todo_delete_in("acme", by_id(&t), None)
                            .await
                            .unwrap()
                            .unwrap();
                    }
                    _ => {}
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let count = |done| {
            let s = s.store.clone();
            async move {
                s.todo_list(TodoFilter {
                    done,
                    limit: 1,
                    ..in_tenant("acme")
                })
                .await
                .unwrap()
                .count
            }
        };
        assert_eq!(
            (
                count(None).await,
                count(Some(true)).await,
                count(Some(false)).await
            ),
            (20, 10, 10)
        );
    }
);

store_test!(
    titles_with_nul_and_backslashes_are_kept_exactly,
    |s: TestStore| async move {
        for title in ["buy\0milk", "a\\0b", "path\\to\\x", "trailing\\", "\0"] {
            let added = s.todo_add_in("acme", title.into(), None).await.unwrap();
            assert_eq!(added.title, title);
        }
        let page = s
            .todo_list(TodoFilter {
                tenant: "acme".into(),
                ..TodoFilter::default()
            })
            .await
            .unwrap();
        let titles: Vec<&str> = page.todos.iter().map(|t| t.title.as_str()).collect();
        assert_eq!(
            titles,
            ["buy\0milk", "a\\0b", "path\\to\\x", "trailing\\", "\0"]
        );
        // Exact matches tell "a\0b" and "a\\0b" apart, ignoring case.
        let exact = s
            .todo_complete_in("acme", TodoSelector::Title("a\\0b".into()), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (exact.matched, exact.todo.title.as_str()),
            (TodoMatch::Exact, "a\\0b")
        );
        let exact = s
            .todo_complete_in("acme", TodoSelector::Title("BUY\0MILK".into()), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (exact.matched, exact.todo.title.as_str()),
            (TodoMatch::Exact, "buy\0milk")
        );
        // Partial matches see NUL and backslashes as word separators.
        let partial = s
            .todo_delete_in("acme", TodoSelector::Title("to x".into()), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (partial.matched, partial.todo.title.as_str()),
            (TodoMatch::Partial, "path\\to\\x")
        );
        let by_id = s
            .todo_complete_in("acme", TodoSelector::Id("x\0y".into()), None)
            .await
            .unwrap();
        assert!(
            matches!(by_id, Err(TodoLookupError::IdNotFound(_))),
            "{by_id:?}"
        );
        assert!(s.get_run("a\0b").await.unwrap().is_none());
    }
);
