//! One side of a comparison: a PostgreSQL or an Oracle connection that runs
//! the queries of [`crate::sql`] and returns their text rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;

use cutover_core::error::describe_chain;

use crate::canonical::Dialect;
use crate::sql::Query;
use crate::stream::{Bucket, BucketHasher, KeyedBatch, KeyedParser, RowHash};
use crate::ValidatorError;

pub type TextRow = Vec<Option<String>>;

pub enum Side {
    Postgres {
        label: String,
        client: tokio_postgres::Client,
    },
    Oracle {
        label: String,
        connection: Arc<oracle::Connection>,
    },
}

impl Side {
    /// A PostgreSQL side with the session settings of [`POSTGRES_SESSION_SETUP`].
    pub async fn postgres(
        label: &str,
        client: tokio_postgres::Client,
    ) -> Result<Side, ValidatorError> {
        client
            .batch_execute(POSTGRES_SESSION_SETUP)
            .await
            .map_err(|e| ValidatorError::Query {
                side: label.to_string(),
                message: describe_chain(&e),
            })?;
        Ok(Side::Postgres {
            label: label.to_string(),
            client,
        })
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Side::Postgres { .. } => Dialect::Postgres,
            Side::Oracle { .. } => Dialect::Oracle,
        }
    }

    pub fn label(&self) -> &str {
        match self {
            Side::Postgres { label, .. } | Side::Oracle { label, .. } => label,
        }
    }

    pub async fn query(&self, query: &Query) -> Result<Vec<TextRow>, ValidatorError> {
        match self {
            Side::Postgres { label, client } => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = query
                    .params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let rows = client
                    .query(query.sql.as_str(), &params)
                    .await
                    .map_err(|e| ValidatorError::Query {
                        side: label.clone(),
                        message: describe_chain(&e),
                    })?;
                Ok(rows
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.get::<_, Option<String>>(i))
                            .collect()
                    })
                    .collect())
            }
            Side::Oracle { label, connection } => {
                let connection = Arc::clone(connection);
                let query = query.clone();
                let label = label.clone();
                tokio::task::spawn_blocking(move || oracle_query(&connection, &query))
                    .await
                    .map_err(|e| ValidatorError::Query {
                        side: label.clone(),
                        message: e.to_string(),
                    })?
                    .map_err(|message| ValidatorError::Query {
                        side: label,
                        message,
                    })
            }
        }
    }
}

impl Side {
    /// PostgreSQL: runs a binary COPY made by [`crate::sql::SideSql::bucket_copy`] and
    /// sums its rows' hashes per bucket as they arrive (memory stays flat).
    pub async fn copy_buckets(
        &self,
        copy: &str,
        sql: &crate::sql::SideSql,
        boundaries: &[String],
        hash: RowHash,
    ) -> Result<BTreeMap<i64, Bucket>, ValidatorError> {
        let Side::Postgres { label, client } = self else {
            return Err(ValidatorError::Internal(
                "only a PostgreSQL side streams its rows".into(),
            ));
        };
        let failed = |e: tokio_postgres::Error| ValidatorError::Query {
            side: label.clone(),
            message: describe_chain(&e),
        };
        let stream = client.copy_out(copy).await.map_err(failed)?;
        let mut hasher = BucketHasher::new(sql.wires.iter().map(|(w, _)| *w).collect(), hash);
        if sql.buckets_text_lead_here() && !boundaries.is_empty() {
            hasher = hasher.by_text_lead(boundaries);
        }
        // A task of its own, so the two sides of a comparison hash on two cores.
        let label = label.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ValidatorError::Query {
                    side: label.clone(),
                    message: describe_chain(&e),
                })?;
                hasher.feed(&chunk)?;
            }
            hasher.finish()
        })
        .await
        .map_err(|e| ValidatorError::Internal(format!("hashing task: {e}")))?
    }
}

/// Rows parsed per batch handed to a key-ordered merge.
const KEYED_BATCH_ROWS: usize = 4096;

impl Side {
    /// PostgreSQL: runs a key-ordered binary COPY ([`crate::sql::SideSql::keyed_copy`])
    /// on a task of its own, parsing and hashing its rows as they arrive and sending
    /// them on in batches. The channel is short, so a side that runs ahead waits
    /// (memory stays flat). Returns the task; it ends with the rows it read.
    pub async fn copy_keyed(
        &self,
        copy: &str,
        parser: KeyedParser,
        batches: tokio::sync::mpsc::Sender<KeyedBatch>,
    ) -> Result<tokio::task::JoinHandle<Result<u64, ValidatorError>>, ValidatorError> {
        let Side::Postgres { label, client } = self else {
            return Err(ValidatorError::Internal(
                "only a PostgreSQL side streams its rows".into(),
            ));
        };
        let stream = client
            .copy_out(copy)
            .await
            .map_err(|e| ValidatorError::Query {
                side: label.clone(),
                message: describe_chain(&e),
            })?;
        let label = label.clone();
        let mut parser = parser;
        Ok(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ValidatorError::Query {
                    side: label.clone(),
                    message: describe_chain(&e),
                })?;
                parser.feed(&chunk)?;
                // [`KeyedParser::take`] hands on whole batches; the merge stopping early
                // (a deadline) closes the channel, and this task then stops reading.
                if parser.pending() >= KEYED_BATCH_ROWS
                    && batches.send(parser.take()).await.is_err()
                {
                    return Ok(parser.rows);
                }
            }
            if !parser.finished() {
                return Err(ValidatorError::Internal(format!(
                    "{label}: the key-ordered stream ended before its trailer"
                )));
            }
            let last = parser.take();
            if !last.is_empty() {
                let _ = batches.send(last).await;
            }
            Ok(parser.rows)
        }))
    }
}

fn oracle_query(connection: &oracle::Connection, query: &Query) -> Result<Vec<TextRow>, String> {
    let params: Vec<&dyn oracle::sql_type::ToSql> = query
        .params
        .iter()
        .map(|p| p as &dyn oracle::sql_type::ToSql)
        .collect();
    let rows = connection
        .query(&query.sql, &params)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in rows {
        let row = row.map_err(|e| e.to_string())?;
        let values = (0..row.sql_values().len())
            .map(|i| {
                row.get::<usize, Option<String>>(i)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(values);
    }
    Ok(out)
}

/// The session settings an Oracle source needs so its text forms are the canonical ones,
/// and so it compares and sorts text keys in byte order (BINARY), as PostgreSQL's "C"
/// collation does: key ranges cut on one side must hold the same rows on the other.
pub const ORACLE_SESSION_SETUP: &str = "ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,' \
     NLS_DATE_FORMAT = 'YYYY-MM-DD HH24:MI:SS' \
     NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6' \
     NLS_TIMESTAMP_TZ_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6 TZH:TZM' \
     NLS_COMP = BINARY NLS_SORT = BINARY TIME_ZONE = 'UTC'";

/// The session settings a PostgreSQL side gets, so that nothing this program reads
/// depends on a server's or role's defaults (which differ between real servers).
pub const POSTGRES_SESSION_SETUP: &str =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_sessions_sort_in_byte_order_and_print_explicit_formats() {
        for setting in [
            "NLS_COMP = BINARY",
            "NLS_SORT = BINARY",
            "NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6'",
            "NLS_TIMESTAMP_TZ_FORMAT",
            "TIME_ZONE = 'UTC'",
        ] {
            assert!(ORACLE_SESSION_SETUP.contains(setting), "{setting}");
        }
        assert!(POSTGRES_SESSION_SETUP.contains("SET TimeZone = 'UTC'"));
    }
}
