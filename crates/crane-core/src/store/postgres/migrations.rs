//! PostgreSQL schema migrations, applied in order at connect and tracked in
//! `crane_schema_version`.
//!
//! Hand-written like the SQLite ones (a list of SQL scripts and one integer); PostgreSQL DDL is
//! transactional, so each migration and its version bump commit together, and a transaction-level
//! advisory lock makes replicas that start at the same moment apply each migration once (the
//! others wait, then find nothing left to do). Migrations only ever append.
//!
//! The schema mirrors the SQLite one (same tables, columns and text encodings, so records
//! decode the same way), plus the run leases of the scale-out queue. Timestamps stay RFC 3339
//! text like in SQLite, except `lease_until`, which is compared with the database clock.

use sqlx::PgPool;

use crate::store::StoreError;

/// Key of the advisory lock held while migrating ("crane" in ASCII).
const MIGRATION_LOCK: i64 = 0x63_7261_6e65;

const MIGRATIONS: &[&str] = &[
    // 1: every record of SQLite's migrations 1–6, and run leases.
    "CREATE TABLE runs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL DEFAULT 'default',
        status TEXT NOT NULL,
        user_id TEXT,
        idempotency_key TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        body TEXT NOT NULL,
        lease_owner TEXT,
        lease_until TIMESTAMPTZ
     );
     CREATE UNIQUE INDEX runs_idempotency_key ON runs (tenant, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
     CREATE INDEX runs_tenant ON runs (tenant, seq);
     CREATE INDEX runs_status ON runs (status, seq);
     CREATE INDEX runs_unfinished ON runs (lease_until) WHERE status IN ('pending', 'running');
     CREATE INDEX runs_lease_owner ON runs (lease_owner) WHERE status IN ('pending', 'running');
     CREATE TABLE todos (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL DEFAULT 'default',
        title TEXT NOT NULL,
        title_key TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TEXT NOT NULL,
        completed_at TEXT
     );
     CREATE INDEX todos_tenant ON todos (tenant, seq);
     CREATE INDEX todos_tenant_title ON todos (tenant, title_key);
     CREATE INDEX todos_tenant_done ON todos (tenant, done, seq);
     -- Counts per tenant and done/open, kept by triggers in the transaction that changes the
     -- todos. Spread over 16 shards (by todo id): one row per tenant would serialize every
     -- concurrent todo change of a tenant on its row lock. Readers sum the shards.
     CREATE TABLE todo_counts (
        tenant TEXT NOT NULL,
        done BOOLEAN NOT NULL,
        shard SMALLINT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (tenant, done, shard)
     );
     CREATE FUNCTION crane_todo_counts() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
           UPDATE todo_counts SET n = n - 1
              WHERE tenant = OLD.tenant AND done = OLD.done AND shard = (hashtext(OLD.id) & 15);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
           INSERT INTO todo_counts (tenant, done, shard, n)
              VALUES (NEW.tenant, NEW.done, hashtext(NEW.id) & 15, 1)
              ON CONFLICT (tenant, done, shard) DO UPDATE SET n = todo_counts.n + 1;
        END IF;
        RETURN NULL;
     END $$;
     CREATE TRIGGER todo_counts_insert_delete AFTER INSERT OR DELETE ON todos
        FOR EACH ROW EXECUTE FUNCTION crane_todo_counts();
     CREATE TRIGGER todo_counts_update AFTER UPDATE OF done, tenant ON todos
        FOR EACH ROW WHEN (OLD.done IS DISTINCT FROM NEW.done OR OLD.tenant IS DISTINCT FROM NEW.tenant)
        EXECUTE FUNCTION crane_todo_counts();
     CREATE TABLE tool_effects (
        effect_key TEXT PRIMARY KEY,
        output TEXT NOT NULL
     );
     CREATE TABLE evals (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        eval_id TEXT UNIQUE NOT NULL,
        tenant TEXT NOT NULL DEFAULT 'default',
        created_at TEXT NOT NULL,
        summary TEXT NOT NULL,
        report TEXT NOT NULL
     );
     CREATE TABLE prompt_versions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        hash TEXT NOT NULL,
        source TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
     );
     CREATE TABLE variant_versions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        hash TEXT NOT NULL,
        spec TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        PRIMARY KEY (name, version)
     );
     CREATE TABLE aliases (
        alias TEXT PRIMARY KEY,
        variant TEXT NOT NULL,
        updated_at TEXT NOT NULL
     );
     CREATE TABLE alias_moves (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        alias TEXT NOT NULL,
        from_variant TEXT,
        to_variant TEXT NOT NULL,
        kind TEXT NOT NULL,
        note TEXT,
        moved_at TEXT NOT NULL
     );
     CREATE INDEX alias_moves_alias ON alias_moves (alias, seq);
     CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT,
        hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
     );
     CREATE INDEX api_keys_tenant ON api_keys (tenant);
     CREATE TABLE audit (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        details TEXT NOT NULL,
        at TEXT NOT NULL
     );
     CREATE INDEX audit_tenant ON audit (tenant, seq);
     CREATE TABLE budget_spend (
        tenant TEXT NOT NULL,
        win TEXT NOT NULL,
        period_start TEXT NOT NULL,
        used_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        used_tokens BIGINT NOT NULL DEFAULT 0,
        notified TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (tenant, win, period_start)
     );",
    // 2: A/B experiments (SQLite's migration 7). Arms are BIGINT so every u32 fits; buckets
    // INTEGER so every u16 does.
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
     );
     CREATE UNIQUE INDEX experiments_running ON experiments (tenant) WHERE status = 'running';
     CREATE TABLE experiment_arms (
        tenant TEXT NOT NULL,
        experiment TEXT NOT NULL,
        arm BIGINT NOT NULL,
        runs BIGINT NOT NULL DEFAULT 0,
        successes BIGINT NOT NULL DEFAULT 0,
        cost_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
        cost_sq DOUBLE PRECISION NOT NULL DEFAULT 0,
        tokens BIGINT NOT NULL DEFAULT 0,
        latency_sum_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        latency_sq_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        feedback_n BIGINT NOT NULL DEFAULT 0,
        feedback_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, experiment, arm)
     );
     CREATE TABLE experiment_latency (
        tenant TEXT NOT NULL,
        experiment TEXT NOT NULL,
        arm BIGINT NOT NULL,
        bucket INTEGER NOT NULL,
        n BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, experiment, arm, bucket)
     );",
    // 3: the rollback guard of a promoted experiment (SQLite's migration 8).
    "ALTER TABLE experiments ADD COLUMN guard TEXT;
     ALTER TABLE experiments ADD COLUMN guard_status TEXT;",
    // 4: the semantic plan cache (SQLite's migration 9).
    "CREATE TABLE plan_cache (
        id BIGSERIAL PRIMARY KEY,
        tenant TEXT NOT NULL,
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        prompt TEXT NOT NULL,
        model TEXT NOT NULL,
        template TEXT NOT NULL,
        embedding BYTEA NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
     );
     CREATE UNIQUE INDEX plan_cache_key ON plan_cache (tenant, key);
     CREATE INDEX plan_cache_expiry ON plan_cache (expires_at);
     CREATE TABLE plan_cache_generations (
        tenant TEXT PRIMARY KEY,
        generation BIGINT NOT NULL
     );",
];

/// Applies every migration newer than the database's version, each in its own transaction,
/// under the migration lock.
pub async fn apply(pool: &PgPool) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS crane_schema_version (
                only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                version BIGINT NOT NULL
             );
             INSERT INTO crane_schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;",
        )
        .execute(&mut *tx)
        .await?;
        let (current,): (i64,) = sqlx::query_as("SELECT version FROM crane_schema_version")
            .fetch_one(&mut *tx)
            .await?;
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        let Some(sql) = MIGRATIONS.get(current as usize) else {
            tx.commit().await?;
            return Ok(());
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE crane_schema_version SET version = $1")
            .bind(current + 1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = current + 1, "applied PostgreSQL migration");
    }
}
