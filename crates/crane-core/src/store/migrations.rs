//! Schema migrations, applied in order at open and tracked in `PRAGMA user_version`.
//!
//! Hand-written: the whole mechanism is a list of SQL scripts and one integer; a migration
//! crate would add a dependency for no extra safety. Migrations only ever append.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: runs, todos and the once-only record of tool side effects.
    "CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        user_id TEXT,
        idempotency_key TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        body TEXT NOT NULL
     );
     CREATE INDEX runs_status ON runs(status, seq);
     CREATE UNIQUE INDEX runs_idempotency_key ON runs(idempotency_key) WHERE idempotency_key IS NOT NULL;
     CREATE TABLE todos (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        title_key TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        completed_at TEXT
     );
     CREATE INDEX todos_title_key ON todos(title_key);
     CREATE TABLE tool_effects (
        effect_key TEXT PRIMARY KEY,
        output TEXT NOT NULL
     ) WITHOUT ROWID;",
    // 2: evaluation results (`crane eval`): a summary for listings and the full JSON report.
    "CREATE TABLE evals (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        eval_id TEXT UNIQUE NOT NULL,
        created_at TEXT NOT NULL,
        summary TEXT NOT NULL,
        report TEXT NOT NULL
     );",
    // 3: the planner registry: registered prompt-template and variant versions (a released
    // version's content never changes), aliases, and every alias move.
    "CREATE TABLE prompt_versions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        hash TEXT NOT NULL,
        source TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
     ) WITHOUT ROWID;
     CREATE TABLE variant_versions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        hash TEXT NOT NULL,
        spec TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
     ) WITHOUT ROWID;
     CREATE TABLE aliases (
        alias TEXT PRIMARY KEY,
        variant TEXT NOT NULL,
        updated_at TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE alias_moves (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alias TEXT NOT NULL,
        from_variant TEXT,
        to_variant TEXT NOT NULL,
        kind TEXT NOT NULL,
        note TEXT,
        moved_at TEXT NOT NULL
     );
     CREATE INDEX alias_moves_alias ON alias_moves(alias, seq);",
    // 4: todo pages and counts filtered by done/open: the index orders each `done` value by
    // rowid (= seq), so a keyset page is an index search in key order and a count is a
    // covering-index range scan.
    "CREATE INDEX todos_done ON todos(done);",
    // 5: tenants. Runs, todos and evals belong to a tenant (existing rows to `default`);
    // idempotency keys are unique per tenant; API keys (hash only), the audit log, and each
    // tenant's spend per budget window (with the thresholds already notified).
    "ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
     DROP INDEX runs_idempotency_key;
     CREATE UNIQUE INDEX runs_idempotency_key ON runs(tenant, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
     CREATE INDEX runs_tenant ON runs(tenant, seq);
     ALTER TABLE todos ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
     DROP INDEX todos_title_key;
     DROP INDEX todos_done;
     CREATE INDEX todos_tenant ON todos(tenant);
     CREATE INDEX todos_tenant_title ON todos(tenant, title_key);
     CREATE INDEX todos_tenant_done ON todos(tenant, done);
     ALTER TABLE evals ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
     CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT,
        hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
     ) WITHOUT ROWID;
     CREATE INDEX api_keys_tenant ON api_keys(tenant);
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        at TEXT NOT NULL
     );
     CREATE INDEX audit_tenant ON audit(tenant, seq);
     CREATE TABLE budget_spend (
        tenant TEXT NOT NULL,
        win TEXT NOT NULL,
        period_start TEXT NOT NULL,
        used_usd REAL NOT NULL DEFAULT 0,
        used_tokens INTEGER NOT NULL DEFAULT 0,
        notified TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (tenant, win, period_start)
     ) WITHOUT ROWID;",
    // 6: todo counts per tenant and done/open, kept by triggers in the transaction that
    // changes the todos: a todo list reports how many todos match without counting the rows
    // (COUNT(*) over a growing table was 29% of the server's CPU under the mixed benchmark).
    "CREATE TABLE todo_counts (
        tenant TEXT NOT NULL,
        done INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (tenant, done)
     ) WITHOUT ROWID;
     INSERT INTO todo_counts (tenant, done, n)
        SELECT tenant, done, COUNT(*) FROM todos GROUP BY tenant, done;
     CREATE TRIGGER todo_counts_insert AFTER INSERT ON todos BEGIN
        INSERT INTO todo_counts (tenant, done, n) VALUES (NEW.tenant, NEW.done, 1)
           ON CONFLICT (tenant, done) DO UPDATE SET n = n + 1;
     END;
     CREATE TRIGGER todo_counts_delete AFTER DELETE ON todos BEGIN
        UPDATE todo_counts SET n = n - 1 WHERE tenant = OLD.tenant AND done = OLD.done;
     END;
     CREATE TRIGGER todo_counts_update AFTER UPDATE OF done, tenant ON todos
        WHEN OLD.done IS NOT NEW.done OR OLD.tenant IS NOT NEW.tenant BEGIN
        UPDATE todo_counts SET n = n - 1 WHERE tenant = OLD.tenant AND done = OLD.done;
        INSERT INTO todo_counts (tenant, done, n) VALUES (NEW.tenant, NEW.done, 1)
           ON CONFLICT (tenant, done) DO UPDATE SET n = n + 1;
     END;",
    // 7: A/B experiments (issue 16): one row per experiment (a name is unique per tenant
    // forever; at most one running per tenant), and per arm the totals of its finished runs,
    // with a latency histogram as one row per bucket: every update is an increment.
    "CREATE TABLE experiments (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'stopped')),
        spec TEXT NOT NULL,
        created_at TEXT NOT NULL,
        stopped_at TEXT,
        winner TEXT,
        note TEXT,
        PRIMARY KEY (tenant, name)
     ) WITHOUT ROWID;
     CREATE UNIQUE INDEX experiments_running ON experiments(tenant) WHERE status = 'running';
     CREATE TABLE experiment_arms (
        tenant TEXT NOT NULL,
        experiment TEXT NOT NULL,
        arm INTEGER NOT NULL,
        runs INTEGER NOT NULL DEFAULT 0,
        successes INTEGER NOT NULL DEFAULT 0,
        cost_sum REAL NOT NULL DEFAULT 0,
        cost_sq REAL NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        latency_sum_ms REAL NOT NULL DEFAULT 0,
        latency_sq_ms REAL NOT NULL DEFAULT 0,
        feedback_n INTEGER NOT NULL DEFAULT 0,
        feedback_sum REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, experiment, arm)
     ) WITHOUT ROWID;
     CREATE TABLE experiment_latency (
        tenant TEXT NOT NULL,
        experiment TEXT NOT NULL,
        arm INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        n INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, experiment, arm, bucket)
     ) WITHOUT ROWID;",
    // 8: the rollback guard of a promoted experiment (opaque JSON the caller owns) and its
    // status (`watching`, `passed`, `rolled_back`; NULL without a guard).
    "ALTER TABLE experiments ADD COLUMN guard TEXT;
     ALTER TABLE experiments ADD COLUMN guard_status TEXT;",
    // 9: the semantic plan cache (issue 17): append-only entries, and a generation per tenant
    // that clearing bumps (replicas drop what they hold).
    "CREATE TABLE plan_cache (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        prompt TEXT NOT NULL,
        model TEXT NOT NULL,
        template TEXT NOT NULL,
        embedding BLOB NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
     );
     CREATE UNIQUE INDEX plan_cache_key ON plan_cache (tenant, key);
     CREATE INDEX plan_cache_expiry ON plan_cache (expires_at);
     CREATE TABLE plan_cache_generations (
        tenant TEXT PRIMARY KEY,
        generation INTEGER NOT NULL
     ) WITHOUT ROWID;",
];

/// Applies every migration newer than the database's version, each in its own transaction.
pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Migration 6 fills `todo_counts` from the todos a database already holds.
    #[test]
    fn todo_counts_are_filled_from_existing_todos() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        for (i, (tenant, done)) in [("default", 0), ("default", 1), ("default", 0), ("t2", 1)]
            .into_iter()
            .enumerate()
        {
            conn.execute(
                "INSERT INTO todos (id, title, title_key, done, created_at, tenant) VALUES (?1, 'x', 'x', ?2, '2026-01-01T00:00:00Z', ?3)",
                rusqlite::params![format!("id{i}"), done, tenant],
            )
            .unwrap();
        }
        apply(&mut conn).unwrap();
        let counts: Vec<(String, i64, i64)> = conn
            .prepare("SELECT tenant, done, n FROM todo_counts ORDER BY tenant, done")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            counts,
            [
                ("default".into(), 0, 2),
                ("default".into(), 1, 1),
                ("t2".into(), 1, 1)
            ]
        );
    }
}
