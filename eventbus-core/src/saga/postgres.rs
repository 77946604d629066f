//! The PostgreSQL [`SagaStore`] (feature `postgres`), through `sqlx`.

use super::store::{Commit, Committed, Instance, SagaStore, Status, StoreError};
use crate::event::EventId;
use crate::handler::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::str::FromStr;

/// The schema this store needs, idempotent: what [`PostgresStore::migrate`] applies.
pub const MIGRATION: &str = include_str!("../../migrations/postgres/0001_saga_instances.sql");

/// Saga instances in PostgreSQL: one row per `(saga, key)` in `eventbus_saga_instances`,
/// with the state as `jsonb`, a version, the status and the processed event ids. A commit
/// is one statement that writes only over the version the step read, so any number of
/// processes may run the same sagas against one database.
///
/// ```no_run
/// use eventbus_core::saga::{PostgresStore, Sagas};
/// # async fn run(bus: &eventbus_core::EventBus) -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// store.migrate().await?;
/// let sagas = Sagas::builder().store(store).with_registered().start(bus)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::new)?;
        Self::connect_with(options).await
    }

    /// Connects with `options`, e.g. with `.options([("search_path", "tenant_a")])` to keep
    /// the tables in a schema of their own.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(StoreError::new)?;
        Ok(PostgresStore { pool })
    }

    /// A store on a pool you already have.
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresStore { pool }
    }

    /// Creates the tables if they do not exist ([`MIGRATION`]); safe to call at every start
    /// and from several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // Serialised by an advisory lock: two processes creating the tables at once would
        // otherwise race on the catalog.
        let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
        sqlx::query("SELECT pg_advisory_xact_lock(7263514093)")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::new)?;
        sqlx::raw_sql(MIGRATION)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::new)?;
        tx.commit().await.map_err(StoreError::new)
    }

    /// The pool it uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn status_of(row: &PgRow) -> Result<Status, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(match status.as_str() {
        "running" => Status::Running,
        "completed" => Status::Completed,
        _ => Status::Compensated(
            row.try_get::<Option<String>, _>("reason")?
                .unwrap_or_default(),
        ),
    })
}

fn columns(status: &Status) -> (&'static str, Option<&str>) {
    match status {
        Status::Running => ("running", None),
        Status::Completed => ("completed", None),
        Status::Compensated(reason) => ("compensated", Some(reason)),
    }
}

impl SagaStore for PostgresStore {
    fn load<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Instance>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT state, version, status, reason, processed FROM eventbus_saga_instances \
                 WHERE saga = $1 AND key = $2",
            )
            .bind(saga)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::new)?;
            let Some(row) = row else { return Ok(None) };
            let read = || -> Result<Instance, sqlx::Error> {
                let processed: Vec<uuid::Uuid> = row.try_get("processed")?;
                Ok(Instance::new(
                    row.try_get("state")?,
                    row.try_get::<i64, _>("version")? as u64,
                    status_of(&row)?,
                    processed
                        .into_iter()
                        .map(|id| EventId::from_u128(id.as_u128()))
                        .collect(),
                ))
            };
            read().map(Some).map_err(StoreError::new)
        })
    }

    fn commit<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
        commit: Commit,
    ) -> BoxFuture<'a, Result<Committed, StoreError>> {
        Box::pin(async move {
            let (status, reason) = columns(&commit.status);
            let event_id = uuid::Uuid::from_u128(commit.event_id.as_u128());
            let written = match commit.expected_version {
                None => sqlx::query(
                    "INSERT INTO eventbus_saga_instances \
                     (saga, key, state, version, status, reason, processed) \
                     VALUES ($1, $2, $3, 1, $4, $5, ARRAY[$6::uuid]) \
                     ON CONFLICT (saga, key) DO NOTHING",
                )
                .bind(saga)
                .bind(key)
                .bind(&commit.state)
                .bind(status)
                .bind(reason)
                .bind(event_id)
                .execute(&self.pool)
                .await
                .map_err(StoreError::new)?
                .rows_affected(),
                Some(expected) => sqlx::query(
                    "UPDATE eventbus_saga_instances \
                     SET state = $3, version = version + 1, status = $4, reason = $5, \
                         processed = array_append(processed, $6::uuid), updated_at = now() \
                     WHERE saga = $1 AND key = $2 AND version = $7",
                )
                .bind(saga)
                .bind(key)
                .bind(&commit.state)
                .bind(status)
                .bind(reason)
                .bind(event_id)
                .bind(expected as i64)
                .execute(&self.pool)
                .await
                .map_err(StoreError::new)?
                .rows_affected(),
            };
            Ok(match written {
                0 => Committed::Conflict,
                _ => Committed::Written(commit.expected_version.map_or(1, |v| v + 1)),
            })
        })
    }
}
