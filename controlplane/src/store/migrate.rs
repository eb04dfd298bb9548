//! Schema migrations: numbered SQL files in `controlplane/migrations/`, embedded in the binary,
//! the same text for SQLite and PostgreSQL. `weft_schema` records which ran. Each migration runs
//! in its own transaction; on PostgreSQL an advisory lock keeps two controllers starting at
//! once from migrating together.

use sqlx::{AnyPool, Row};

use super::{Backend, StoreError};

/// (version, name, SQL), in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../../migrations/0001_initial.sql"),
)];

/// The statements of a migration file: split at semicolons that end a line, comments dropped.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let line = line.split("--").next().unwrap_or("").trim_end();
        if line.trim().is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if line.ends_with(';') {
            let s = cur.trim().trim_end_matches(';').trim().to_owned();
            if !s.is_empty() {
                out.push(s);
            }
            cur.clear();
        }
    }
    let rest = cur.trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// Brings the schema up to date.
pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS weft_schema (version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    for &(version, name, sql) in MIGRATIONS {
        let fail = |source| StoreError::Migration {
            version,
            name,
            source,
        };
        let mut tx = match backend {
            Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await.map_err(fail)?,
            Backend::Postgres => pool.begin().await.map_err(fail)?,
        };
        if backend == Backend::Postgres {
            // Any constant, the same in every weft: the key of "weft schema migrations".
            sqlx::query("SELECT pg_advisory_xact_lock(775665116)")
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        let done = sqlx::query("SELECT COUNT(*) FROM weft_schema WHERE version = $1")
            .bind(version)
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?
            .try_get::<i64, _>(0)
            .map_err(fail)?;
        if done > 0 {
            tx.rollback().await.map_err(fail)?;
            continue;
        }
        for stmt in statements(sql) {
            sqlx::query(&stmt).execute(&mut *tx).await.map_err(fail)?;
        }
        sqlx::query("INSERT INTO weft_schema (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(name)
            .bind(crate::model::Timestamp::now().to_string())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(version, name, "applied schema migration");
    }
    let newest: Option<i64> = sqlx::query("SELECT MAX(version) FROM weft_schema")
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    if let Some(v) = newest
        && v > known
    {
        return Err(StoreError::SchemaTooNew(v, known));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements() {
        let s = statements(
            "-- c\nCREATE TABLE a (x TEXT);\n\nCREATE INDEX i ON a (x); -- trailing\nINSERT INTO a VALUES ('1');\n",
        );
        assert_eq!(
            s,
            vec![
                "CREATE TABLE a (x TEXT)",
                "CREATE INDEX i ON a (x)",
                "INSERT INTO a VALUES ('1')"
            ]
        );
        assert!(statements(MIGRATIONS[0].2).len() > 10);
    }
}
