//! The PostgreSQL [`SagaStore`] (feature `postgres`), through `sqlx`.

use super::store::{
    Commit, Committed, Instance, Outbox, OutboxEntry, SagaStore, Status, StoreError,
};
use crate::event::EventId;
use crate::handler::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// The schema this store needs, idempotent: what [`PostgresStore::migrate`] applies.
pub const MIGRATION: &str = concat!(
    include_str!("../../migrations/postgres/0001_saga_instances.sql"),
    include_str!("../../migrations/postgres/0002_saga_outbox.sql"),
);

/// Saga instances in PostgreSQL: one row per `(saga, key)` in `eventbus_saga_instances`,
/// with the state as `jsonb`, a version, the status and the processed event ids. A commit
/// writes only over the version the step read, so any number of processes may run the same
/// sagas against one database; in the same transaction it writes what the step published
/// and scheduled to `eventbus_saga_outbox` (see [`Outbox`]).
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
            let mut tx = self.pool.begin().await.map_err(StoreError::new)?;
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
                .execute(&mut *tx)
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
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?
                .rows_affected(),
            };
            if written == 0 {
                // Dropping the transaction rolls it back.
                return Ok(Committed::Conflict);
            }
            if commit.status.has_ended() {
                sqlx::query(
                    "DELETE FROM eventbus_saga_outbox WHERE saga = $1 AND key = $2 AND scheduled",
                )
                .bind(saga)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?;
            }
            for entry in &commit.outbox {
                sqlx::query(
                    "INSERT INTO eventbus_saga_outbox (id, saga, key, payload, deliver_at, scheduled) \
                     VALUES ($1, $2, $3, $4, 'epoch'::timestamptz + $5 * interval '1 microsecond', $6)",
                )
                .bind(uuid::Uuid::from_u128(entry.id.as_u128()))
                .bind(&entry.saga)
                .bind(&entry.key)
                .bind(&entry.payload)
                .bind(timestamp(entry.deliver_at)?)
                .bind(entry.scheduled)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?;
            }
            tx.commit().await.map_err(StoreError::new)?;
            Ok(Committed::Written(
                commit.expected_version.map_or(1, |v| v + 1),
            ))
        })
    }

    fn outbox(&self) -> Option<&dyn Outbox> {
        Some(self)
    }
}

/// A `SystemTime` as microseconds since the Unix epoch (PostgreSQL's resolution).
fn timestamp(time: SystemTime) -> Result<i64, StoreError> {
    let micros = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(StoreError::new)?
        .as_micros();
    i64::try_from(micros).map_err(StoreError::new)
}

impl Outbox for PostgresStore {
    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<OutboxEntry>, StoreError>> {
        Box::pin(async move {
            // One statement: rows locked by another claimer are skipped, not waited for, and
            // each claimed row is due again only when this lease runs out.
            let rows = sqlx::query(
                "UPDATE eventbus_saga_outbox SET deliver_at = now() + $2 * interval '1 microsecond' \
                 WHERE id IN (SELECT id FROM eventbus_saga_outbox WHERE deliver_at <= now() \
                              ORDER BY deliver_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, saga, key, payload, scheduled",
            )
            .bind(limit as i64)
            .bind(lease.as_micros() as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::new)?;
            rows.iter()
                .map(|row| {
                    let id: uuid::Uuid = row.try_get("id")?;
                    Ok(OutboxEntry::new(
                        EventId::from_u128(id.as_u128()),
                        (row.try_get("saga")?, row.try_get("key")?),
                        row.try_get("payload")?,
                        SystemTime::now(),
                        row.try_get("scheduled")?,
                    ))
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::new)
        })
    }

    fn delivered<'a>(&'a self, ids: &'a [EventId]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let ids: Vec<uuid::Uuid> = ids
                .iter()
                .map(|id| uuid::Uuid::from_u128(id.as_u128()))
                .collect();
            sqlx::query("DELETE FROM eventbus_saga_outbox WHERE id = ANY($1)")
                .bind(ids)
                .execute(&self.pool)
                .await
                .map_err(StoreError::new)?;
            Ok(())
        })
    }
}
