//! The schema's versions: embedded SQL files applied in order, each in one transaction
//! that also records it in `schema_migrations`, under a session advisory lock so that
//! several gateways starting at once against one database migrate it once.

use tokio_postgres::Client;

use crate::partition::PartitionBy;

/// One schema version.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub description: &'static str,
    pub sql: &'static str,
}

/// Every version, in order. Never edit an applied one: add the next.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "catalog, contexts, samples and events",
        sql: include_str!("../migrations/001_core.sql"),
    },
    Migration {
        version: 2,
        description: "typed views over events",
        sql: include_str!("../migrations/002_event_views.sql"),
    },
    Migration {
        version: 3,
        description: "views for BI and MES users",
        sql: include_str!("../migrations/003_bi_views.sql"),
    },
    Migration {
        version: 4,
        description: "one index on samples: the unique key leads with tag and time",
        sql: include_str!("../migrations/004_one_sample_index.sql"),
    },
];

/// The newest version this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Takes the schema's lock (waits while another gateway holds it). Session-level: call
/// [`unlock`] after, or close the session.
pub async fn lock(client: &Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock_name(schema)])
        .await
        .map(drop)
}

pub async fn unlock(client: &Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock_name(schema)])
        .await
        .map(drop)
}

fn lock_name(schema: &str) -> String {
    format!("backplane-schema:{schema}")
}

/// Creates the schema if needed and applies every version above the applied ones, up to
/// `target` (all when `None`). Returns the versions applied now. The caller holds the lock.
pub async fn migrate(
    client: &mut Client,
    schema: &str,
    partition: PartitionBy,
    target: Option<i32>,
) -> Result<Vec<i32>, tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                 version integer PRIMARY KEY,
                 description text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await?;
    let applied: Vec<i32> = client
        .query(&format!("SELECT version FROM {schema}.schema_migrations"), &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if applied.contains(&m.version) || target.is_some_and(|t| m.version > t) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL search_path TO {schema}, public; SET LOCAL backplane.partition_interval = '{}';",
            partition.interval()
        ))
        .await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, description) VALUES ($1, $2)"),
            &[&m.version, &m.description],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            schema,
            version = m.version,
            description = m.description,
            "postgresql: schema migrated"
        );
        done.push(m.version);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
            assert!(!m.sql.trim().is_empty());
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }
}
