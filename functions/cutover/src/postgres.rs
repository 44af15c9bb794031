//! Freeze, drain, sequences and reverse replication on PostgreSQL: the local source,
//! and Aurora PostgreSQL as the target. Every step reads the world first and does
//! only what is not done yet, so a step cut short is finished by running it again.
//!
//! Identifiers are quoted with [`quote`]; values travel as bind parameters, except
//! where PostgreSQL takes no parameters (role and subscription DDL), and there the
//! only literal is the reverse connection string, escaped by [`literal`].

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use crate::{step_error, CutoverError};

/// `"name"`, with embedded quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with embedded quotes doubled (standard_conforming_strings is on since 9.1).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A replicated table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
}

impl Table {
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The tables of the forward subscription, with how many are not yet ready.
pub async fn subscribed_tables(
    target: &Client,
    subscription: &str,
) -> Result<(Vec<Table>, Vec<String>), CutoverError> {
    let rows = target
        .query(
            "SELECT n.nspname::text, c.relname::text, r.srsubstate::text \
             FROM pg_subscription_rel r \
             JOIN pg_subscription s ON s.oid = r.srsubid \
             JOIN pg_class c ON c.oid = r.srrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE s.subname = $1 ORDER BY 1, 2",
            &[&subscription],
        )
        .await
        .map_err(|e| step_error("listing the subscription's tables", e))?;
    let mut tables = Vec::new();
    let mut copying = Vec::new();
    for row in rows {
        let table = Table {
            schema: row.get(0),
            name: row.get(1),
        };
        let state: String = row.get(2);
        // r = ready, s = synchronized with the apply worker; everything else is copying.
        if state != "r" && state != "s" {
            copying.push(format!("{} ({state})", table.display()));
        }
        tables.push(table);
    }
    Ok((tables, copying))
}

/// The subscription exists and whether it is enabled.
pub async fn subscription_enabled(db: &Client, name: &str) -> Result<Option<bool>, CutoverError> {
    let row = db
        .query_opt(
            "SELECT subenabled FROM pg_subscription WHERE subname = $1",
            &[&name],
        )
        .await
        .map_err(|e| step_error("reading the subscription", e))?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn set_subscription_enabled(
    db: &Client,
    name: &str,
    enabled: bool,
) -> Result<(), CutoverError> {
    if subscription_enabled(db, name).await? == Some(!enabled) {
        let verb = if enabled { "ENABLE" } else { "DISABLE" };
        db.batch_execute(&format!("ALTER SUBSCRIPTION {} {verb}", quote(name)))
            .await
            .map_err(|e| step_error(&format!("ALTER SUBSCRIPTION {name} {verb}"), e))?;
    }
    Ok(())
}

/// The server's current WAL position, as text (`0/16B3748`).
pub async fn current_lsn(db: &Client) -> Result<String, CutoverError> {
    Ok(db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(|e| step_error("reading the WAL position", e))?
        .get(0))
}

/// The slot's confirmed position and whether it has passed `lsn`; `None` without the slot.
pub async fn slot_position(
    db: &Client,
    slot: &str,
    lsn: &str,
) -> Result<Option<(String, bool, bool)>, CutoverError> {
    let row = db
        .query_opt(
            "SELECT coalesce(confirmed_flush_lsn::text, ''), \
                    coalesce(confirmed_flush_lsn >= $2::text::pg_lsn, false), active \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot, &lsn],
        )
        .await
        .map_err(|e| step_error("reading the replication slot", e))?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// Waits until the subscriber of `slot` confirmed everything up to `lsn`; the wait, or
/// the position reached when `within` ran out.
///
/// An idle stream confirms only when the walsender sends a keepalive, which it does
/// when it has decoded WAL the subscriber has not confirmed: a non-transactional
/// logical message (ignored by pgoutput, never applied) gives it some to decode, once
/// at the start and again every 100 ms of waiting.
pub async fn wait_applied(
    db: &Client,
    slot: &str,
    lsn: &str,
    within: Duration,
) -> Result<Result<Duration, String>, CutoverError> {
    let started = Instant::now();
    let mut nudged = None::<Instant>;
    loop {
        if nudged.is_none_or(|at| at.elapsed() >= Duration::from_millis(100)) {
            db.batch_execute("SELECT pg_logical_emit_message(false, 'cutover', 'keepalive')")
                .await
                .map_err(|e| step_error("nudging the replication stream", e))?;
            nudged = Some(Instant::now());
        }
        match slot_position(db, slot, lsn).await? {
            None => return Ok(Err(format!("the replication slot {slot} does not exist"))),
            Some((_, true, _)) => return Ok(Ok(started.elapsed())),
            Some((at, false, _)) if started.elapsed() >= within => {
                return Ok(Err(format!(
                    "slot {slot} confirmed {at}, short of {lsn} after {} ms",
                    started.elapsed().as_millis()
                )))
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// What a freeze did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freeze {
    /// The database clock right after the freeze setting was made.
    pub frozen_at: String,
    /// The WAL position after the last session of the role ended: everything the
    /// application committed is at or before it.
    pub lsn: String,
    pub sessions_ended: i64,
}

/// Makes the application role's transactions read-only by default in `database` and
/// ends its sessions (waiting up to 5 s for each to exit), so nothing it opened before
/// can still write. Idempotent.
pub async fn freeze(db: &Client, database: &str, role: &str) -> Result<Freeze, CutoverError> {
    db.batch_execute(&format!(
        "ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on",
        quote(role),
        quote(database)
    ))
    .await
    .map_err(|e| step_error(&format!("freezing role {role}"), e))?;
    let frozen_at: String = db
        .query_one("SELECT clock_timestamp()::text", &[])
        .await
        .map_err(|e| step_error("reading the clock", e))?
        .get(0);
    let mut sessions_ended = end_sessions(db, database, role).await?;
    // A session that was starting while the setting changed can have read the old
    // default yet not been listed yet: look again until none from before the freeze is left.
    for _ in 0..20 {
        let leaked = writable_sessions(db, database, role, &frozen_at).await?;
        if leaked == 0 {
            break;
        }
        sessions_ended += end_sessions_before(db, database, role, &frozen_at).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leaked = writable_sessions(db, database, role, &frozen_at).await?;
    if leaked > 0 {
        return Err(CutoverError::Step(format!(
            "{leaked} sessions of {role} opened before the freeze would not end; the freeze does not hold"
        )));
    }
    Ok(Freeze {
        frozen_at,
        lsn: current_lsn(db).await?,
        sessions_ended,
    })
}

/// Lifts the freeze and ends the role's sessions opened during it (they keep their
/// read-only default for life), so that the application reconnects read-write.
pub async fn unfreeze(db: &Client, database: &str, role: &str) -> Result<i64, CutoverError> {
    if !is_frozen(db, database, role).await? {
        return Ok(0);
    }
    db.batch_execute(&format!(
        "ALTER ROLE {} IN DATABASE {} RESET default_transaction_read_only",
        quote(role),
        quote(database)
    ))
    .await
    .map_err(|e| step_error(&format!("unfreezing role {role}"), e))?;
    end_sessions(db, database, role).await
}

async fn end_sessions(db: &Client, database: &str, role: &str) -> Result<i64, CutoverError> {
    Ok(db
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity \
             WHERE usename = $1 AND datname = $2 AND pid <> pg_backend_pid()",
            &[&role, &database],
        )
        .await
        .map_err(|e| step_error(&format!("ending the sessions of {role}"), e))?
        .get(0))
}

async fn end_sessions_before(
    db: &Client,
    database: &str,
    role: &str,
    before: &str,
) -> Result<i64, CutoverError> {
    Ok(db
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity \
             WHERE usename = $1 AND datname = $2 AND pid <> pg_backend_pid() \
               AND backend_start < $3::text::timestamptz",
            &[&role, &database, &before],
        )
        .await
        .map_err(|e| step_error(&format!("ending the sessions of {role}"), e))?
        .get(0))
}

pub async fn is_frozen(db: &Client, database: &str, role: &str) -> Result<bool, CutoverError> {
    Ok(db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s \
               JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase \
               WHERE r.rolname = $1 AND d.datname = $2 \
                 AND 'default_transaction_read_only=on' = ANY (s.setconfig))",
            &[&role, &database],
        )
        .await
        .map_err(|e| step_error("reading the role's settings", e))?
        .get(0))
}

/// Sessions of the role opened before `frozen_at` (the database clock when the freeze
/// setting was made): their default was read-write. The freeze ended them all, so any is a leak.
pub async fn writable_sessions(
    db: &Client,
    database: &str,
    role: &str,
    frozen_at: &str,
) -> Result<i64, CutoverError> {
    Ok(db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE usename = $1 AND datname = $2 AND pid <> pg_backend_pid() \
               AND backend_start < $3::text::timestamptz",
            &[&role, &database, &frozen_at],
        )
        .await
        .map_err(|e| step_error("counting the role's sessions", e))?
        .get(0))
}

/// The source's change counters (rows inserted + updated + deleted since statistics
/// began) of `tables`, keyed `schema.table`. Read after the freeze ended the
/// application's sessions: a backend flushes its counters when it exits.
pub async fn change_counters(
    db: &Client,
    tables: &[Table],
) -> Result<std::collections::BTreeMap<String, i64>, CutoverError> {
    let mut out = std::collections::BTreeMap::new();
    for t in tables {
        let n: i64 = db
            .query_opt(
                "SELECT (coalesce(n_tup_ins, 0) + coalesce(n_tup_upd, 0) + coalesce(n_tup_del, 0))::bigint \
                 FROM pg_stat_all_tables WHERE schemaname = $1 AND relname = $2",
                &[&t.schema, &t.name],
            )
            .await
            .map_err(|e| step_error("reading change counters", e))?
            .map_or(-1, |r| r.get(0));
        out.insert(t.display(), n);
    }
    Ok(out)
}

/// Exact row counts of `tables` on one side, in one snapshot.
pub async fn counts(db: &mut Client, tables: &[Table]) -> Result<Vec<i64>, CutoverError> {
    let tx = db
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| step_error("starting the count", e))?;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {}", t.qualified()), &[])
            .await
            .map_err(|e| step_error(&format!("counting {}", t.display()), e))?
            .get(0);
        out.push(n);
    }
    tx.commit()
        .await
        .map_err(|e| step_error("ending the count", e))?;
    Ok(out)
}

/// A sequence moved past the other side's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequenceMove {
    pub sequence: String,
    /// The value on the side writes come from (what logical replication did not carry).
    pub from_value: Option<i64>,
    pub before: Option<i64>,
    pub after: Option<i64>,
}

/// Every sequence of `schemas` with its last value (NULL when never used).
async fn sequences(
    db: &Client,
    schemas: &[String],
) -> Result<Vec<(String, String, Option<i64>)>, CutoverError> {
    Ok(db
        .query(
            "SELECT schemaname::text, sequencename::text, last_value FROM pg_sequences \
             WHERE schemaname = ANY ($1) ORDER BY 1, 2",
            &[&schemas],
        )
        .await
        .map_err(|e| step_error("reading sequences", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Sets every sequence of `schemas` on `to` past its value on `from` by `margin`
/// (never backwards), then reads them back. A sequence missing on `to` is an error.
pub async fn sync_sequences(
    from: &Client,
    to: &Client,
    schemas: &[String],
    margin: i64,
) -> Result<Vec<SequenceMove>, CutoverError> {
    let theirs = sequences(from, schemas).await?;
    let ours = sequences(to, schemas).await?;
    let mut moves = Vec::new();
    for (schema, name, value) in theirs {
        let display = format!("{schema}.{name}");
        let Some((_, _, before)) = ours.iter().find(|(s, n, _)| *s == schema && *n == name) else {
            return Err(CutoverError::Step(format!(
                "sequence {display} exists on the source but not on the target"
            )));
        };
        let wanted = value.map(|v| v.saturating_add(margin));
        let after = match (wanted, before) {
            (Some(w), Some(b)) if *b >= w => Some(*b),
            (Some(w), _) => {
                let regclass = format!("{}.{}", quote(&schema), quote(&name));
                let set: i64 = to
                    .query_one(
                        "SELECT setval($1::text::regclass, $2, true)",
                        &[&regclass, &w],
                    )
                    .await
                    .map_err(|e| step_error(&format!("setval({display})"), e))?
                    .get(0);
                Some(set)
            }
            (None, b) => *b,
        };
        moves.push(SequenceMove {
            sequence: display,
            from_value: value,
            before: *before,
            after,
        });
    }
    Ok(moves)
}

/// Reverse replication (target → source) from this moment, without an initial copy:
/// a publication of `tables` on the target, a subscription on the source that creates
/// its slot on the target now. Idempotent; returns the slot's starting position.
pub async fn start_reverse(
    target: &Client,
    source: &Client,
    name: &str,
    tables: &[Table],
    conninfo: &str,
) -> Result<String, CutoverError> {
    publish_reverse(target, name, tables).await?;
    if subscription_enabled(source, name).await?.is_none() {
        source
            .batch_execute(&format!(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} \
                 WITH (copy_data = false, synchronous_commit = 'local')",
                quote(name),
                literal(conninfo),
                quote(name)
            ))
            .await
            .map_err(|e| step_error("creating the reverse subscription on the source", e))?;
    } else {
        set_subscription_enabled(source, name, true).await?;
    }
    match slot_position(target, name, "0/0").await? {
        Some((lsn, _, _)) => Ok(lsn),
        None => Err(CutoverError::Step(format!(
            "the reverse subscription exists but its slot {name} is not on the target"
        ))),
    }
}

/// The reverse publication on the target (idempotent).
pub async fn publish_reverse(
    target: &Client,
    name: &str,
    tables: &[Table],
) -> Result<(), CutoverError> {
    let published: bool = target
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
            &[&name],
        )
        .await
        .map_err(|e| step_error("reading publications", e))?
        .get(0);
    if !published {
        let list: Vec<String> = tables.iter().map(Table::qualified).collect();
        target
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                quote(name),
                list.join(", ")
            ))
            .await
            .map_err(|e| step_error("creating the reverse publication on the target", e))?;
    }
    Ok(())
}

/// Ends reverse replication: the subscription on the source (and with it the slot on the
/// target), then the publication. Idempotent.
pub async fn end_reverse(target: &Client, source: &Client, name: &str) -> Result<(), CutoverError> {
    if subscription_enabled(source, name).await?.is_some() {
        set_subscription_enabled(source, name, false).await?;
        source
            .batch_execute(&format!("DROP SUBSCRIPTION {}", quote(name)))
            .await
            .map_err(|e| step_error("dropping the reverse subscription", e))?;
    }
    target
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote(name)))
        .await
        .map_err(|e| step_error("dropping the reverse publication", e))?;
    Ok(())
}

/// Ends forward replication: the subscription on the target and its slot on the source.
pub async fn end_forward(target: &Client, name: &str) -> Result<(), CutoverError> {
    if subscription_enabled(target, name).await?.is_some() {
        set_subscription_enabled(target, name, false).await?;
        target
            .batch_execute(&format!("DROP SUBSCRIPTION {}", quote(name)))
            .await
            .map_err(|e| step_error("dropping the forward subscription", e))?;
    }
    Ok(())
}

/// Moves the (inactive) forward slot on the source to the source's current position:
/// what reverse replication applied to the source must not travel back to the target.
/// Waits up to `within` for the slot's walsender to let go after the subscription was
/// disabled.
pub async fn skip_reverse_applied(
    source: &Client,
    slot: &str,
    within: Duration,
) -> Result<String, CutoverError> {
    let started = Instant::now();
    loop {
        let row = source
            .query_opt(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| step_error("reading the forward slot", e))?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => {
                return Err(CutoverError::Step(format!(
                    "the forward slot {slot} is gone from the source"
                )))
            }
            Some(false) => break,
            Some(true) if started.elapsed() >= within => {
                return Err(CutoverError::Step(format!(
                "the forward slot {slot} is still in use {} ms after its subscription was disabled",
                started.elapsed().as_millis()
            )))
            }
            Some(true) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    Ok(source
        .query_one(
            "SELECT end_lsn::text FROM pg_replication_slot_advance($1, pg_current_wal_lsn())",
            &[&slot],
        )
        .await
        .map_err(|e| step_error("advancing the forward slot", e))?
        .get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted_whatever_they_hold() {
        assert_eq!(quote("app"), "\"app\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("host=x password=it's"), "'host=x password=it''s'");
        let t = Table {
            schema: "App".into(),
            name: "order items".into(),
        };
        assert_eq!(t.qualified(), "\"App\".\"order items\"");
    }
}
