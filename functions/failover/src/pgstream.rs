//! `postgres-streaming`: failover for plain PostgreSQL streaming replication,
//! done for real in the local rehearsal.
//!
//! Switchover: fence the old primary (`default_transaction_read_only = on`,
//! reload, end every client session), wait until the target has replayed the
//! old primary's last WAL position, `pg_promote()` the target, re-point every
//! other standby at it (primary_conninfo + a replication slot on the new
//! primary, reload). Failover: the same without the fence and the wait. The old
//! primary is left fenced (or dead) for an operator to rebuild as a standby.
//! Safe to repeat: a target that already writes (`NOT pg_is_in_recovery()`) was
//! promoted by a previous holder, so a resumed switchover neither fences nor
//! waits again; the lease is checked before the fence, the promotion and the
//! re-pointing, and kept alive while the target catches up.
//! Connects as the failover function's own role (`users/failover`), which
//! infra/sql/roles.sql grants exactly what this needs: pg_promote, pg_reload_conf,
//! ALTER SYSTEM on the two settings, pg_signal_backend, reading every session and
//! setting, REPLICATION for the slot.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cutover_core::config::SslMode;
use cutover_core::db::{self, Endpoint, Password, PgTarget, Tls};
use cutover_core::state::now_ms;
use tokio_postgres::Client;

use crate::driver::{Driver, DriverReport, Fence, Health, Step};
use crate::FailoverError;

pub struct PgStreaming {
    /// region → that region's one server (loaded from `reader-endpoint/<region>`;
    /// once promoted it is the region's writer too).
    pub endpoints: BTreeMap<String, Endpoint>,
    pub database: String,
    pub admin_user: String,
    pub admin_password: Password,
    pub tls: Tls,
    pub timeout: Duration,
    /// How long a switchover waits for the target to catch up.
    pub catch_up: Duration,
}

fn sql_err(region: &str, what: &str, e: &tokio_postgres::Error) -> FailoverError {
    FailoverError::Driver(format!(
        "{region}: {what}: {}",
        e.as_db_error().map_or_else(
            || cutover_core::error::describe_chain(e),
            |d| d.message().to_string()
        )
    ))
}

/// A string literal for ALTER SYSTEM (which takes no parameters).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `primary_conninfo` pointed at another host and port, everything else kept.
pub fn repoint(conninfo: &str, to: &Endpoint) -> String {
    let mut parts: Vec<String> = conninfo
        .split_whitespace()
        .filter(|p| {
            !p.starts_with("host=") && !p.starts_with("port=") && !p.starts_with("hostaddr=")
        })
        .map(str::to_string)
        .collect();
    parts.insert(0, format!("port={}", to.port));
    parts.insert(0, format!("host={}", to.host));
    parts.join(" ")
}

impl PgStreaming {
    async fn connect(&self, region: &str) -> Result<Client, FailoverError> {
        let endpoint = self.endpoints.get(region).ok_or_else(|| {
            FailoverError::InvalidInput(format!("no endpoint for region {region}"))
        })?;
        let target = PgTarget::new(
            region,
            endpoint.clone(),
            self.database.clone(),
            self.admin_user.clone(),
        );
        Ok(db::connect(&target, &self.admin_password, &self.tls, self.timeout).await?)
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.tls.mode()
    }

    async fn fence(&self, region: &str, steps: &mut Vec<String>) -> Result<String, FailoverError> {
        let c = self.connect(region).await?;
        c.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
            .await
            .map_err(|e| sql_err(region, "fencing (read-only)", &e))?;
        c.batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(|e| sql_err(region, "reload", &e))?;
        let ended: i64 = c
            .query_one(
                // A superuser's sessions are an operator's: pg_signal_backend may not
                // end them (and the reloaded read-only default reaches them too). A
                // session of this function's own role is another holder's (in another
                // region, fencing at the same moment): ending it would fail that
                // holder's run, which would then find the move done under the lock.
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
                   AND usename <> current_user \
                   AND usesysid NOT IN (SELECT oid FROM pg_roles WHERE rolsuper)",
                &[],
            )
            .await
            .map_err(|e| sql_err(region, "ending client sessions", &e))?
            .get(0);
        let lsn: String = c
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| sql_err(region, "reading the WAL position", &e))?
            .get(0);
        steps.push(format!(
            "{region}: fenced (default_transaction_read_only = on, {ended} client sessions ended) at WAL {lsn}"
        ));
        Ok(lsn)
    }

    async fn wait_replayed(
        &self,
        region: &str,
        lsn: &str,
        steps: &mut Vec<String>,
        fence: &impl Fence,
    ) -> Result<(), FailoverError> {
        let c = self.connect(region).await?;
        let started = Instant::now();
        loop {
            fence.keep_alive().await?;
            let done: bool = c
                .query_one(
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                    &[&lsn],
                )
                .await
                .map_err(|e| sql_err(region, "reading the replay position", &e))?
                .get(0);
            if done {
                steps.push(format!(
                    "{region}: replayed up to {lsn} after {} ms",
                    started.elapsed().as_millis()
                ));
                return Ok(());
            }
            if started.elapsed() > self.catch_up {
                return Err(FailoverError::Driver(format!(
                    "{region} did not replay up to {lsn} within {} s; the old primary stays fenced, nothing was promoted",
                    self.catch_up.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Does `region` already write (a previous holder promoted it)?
    async fn writes(&self, region: &str) -> Result<bool, FailoverError> {
        let c = self.connect(region).await?;
        let in_recovery: bool = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| sql_err(region, "pg_is_in_recovery", &e))?
            .get(0);
        Ok(!in_recovery)
    }

    /// Promotes `region` once, whoever asks, and only while no other member writes.
    /// The promotion lock (a session advisory lock; they work on a hot standby) is
    /// taken on every member but the old primary that answers, in region order, and
    /// held until the promotion is done. Two holders in two regions (each region's
    /// lease is its own replica of a global table, see the README) therefore
    /// serialize on the first member both reach, whether they chose the same target
    /// or not: the second finds the target already promoted (`None`), or another
    /// member writing, and stops. A member that does not answer is not locked (the
    /// steps say so): holders that reach no member in common are not serialized.
    async fn promote(
        &self,
        from: &str,
        region: &str,
        regions: &[String],
        steps: &mut Vec<String>,
        fence: &impl Fence,
    ) -> Result<Option<u64>, FailoverError> {
        fence.check(Step::Promote).await?;
        let mut members: Vec<&String> = regions.iter().filter(|r| r.as_str() != from).collect();
        members.sort();
        let mut target = None;
        let mut locked = Vec::new();
        for m in members {
            let c = if m == region {
                self.connect(m).await?
            } else {
                match tokio::time::timeout(self.timeout, self.connect(m)).await {
                    Ok(Ok(c)) => c,
                    _ => {
                        steps.push(format!(
                            "{m}: no answer; the promotion lock not taken there"
                        ));
                        continue;
                    }
                }
            };
            c.query_one("SELECT pg_advisory_lock($1)", &[&PROMOTION_LOCK])
                .await
                .map_err(|e| sql_err(m, "pg_advisory_lock", &e))?;
            if m == region {
                target = Some(c);
            } else {
                locked.push(c);
            }
        }
        let Some(c) = target else {
            return Err(FailoverError::Internal(format!(
                "{region}: not among the members"
            )));
        };
        // The locks may have been waited for: a holder that lost its lease meanwhile
        // (a higher epoch took over) must not promote.
        fence.check(Step::Promote).await?;
        let in_recovery: bool = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| sql_err(region, "pg_is_in_recovery", &e))?
            .get(0);
        if !in_recovery {
            steps.push(format!(
                "{region}: already promoted (by a concurrent holder; found under the promotion lock)"
            ));
            return Ok(None);
        }
        if let Some(other) = self.other_writer(from, region, regions).await {
            return Err(FailoverError::Driver(format!(
                "{other} already writes (promoted by another holder; found under the promotion lock); not promoting {region} as well"
            )));
        }
        let started = Instant::now();
        let ok: bool = c
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .map_err(|e| sql_err(region, "pg_promote", &e))?
            .get(0);
        if !ok {
            return Err(FailoverError::Driver(format!(
                "{region}: pg_promote did not finish within 60 s"
            )));
        }
        let at = now_ms();
        steps.push(format!(
            "{region}: promoted in {} ms (promotion lock held on {} member(s))",
            started.elapsed().as_millis(),
            locked.len() + 1
        ));
        drop(locked);
        Ok(Some(at))
    }

    /// Another region than `from` and `to` that takes writes (out of recovery and
    /// not fenced read-only): promoted by a holder in another region that chose
    /// another target. Promoting `to` too would make two writers; the run stops
    /// instead. An old primary left fenced by an earlier move does not count.
    async fn other_writer(&self, from: &str, to: &str, regions: &[String]) -> Option<String> {
        for r in regions.iter().filter(|r| *r != from && *r != to) {
            let takes_writes = async {
                let c = self.connect(r).await.ok()?;
                let row = c
                    .query_one(
                        "SELECT NOT pg_is_in_recovery() AND NOT current_setting('default_transaction_read_only')::bool",
                        &[],
                    )
                    .await
                    .ok()?;
                Some(row.get::<_, bool>(0))
            };
            if let Ok(Some(true)) = tokio::time::timeout(self.timeout, takes_writes).await {
                return Some(r.clone());
            }
        }
        None
    }

    async fn repoint_standbys(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
        steps: &mut Vec<String>,
        fence: &impl Fence,
    ) -> Result<(), FailoverError> {
        let Some(new_primary) = self.endpoints.get(to).cloned() else {
            return Ok(());
        };
        fence.check(Step::Repoint).await?;
        for region in regions
            .iter()
            .filter(|r| r.as_str() != from && r.as_str() != to)
        {
            let result: Result<(), FailoverError> = async {
                let c = self.connect(region).await?;
                let row = c
                    .query_one(
                        "SELECT pg_is_in_recovery(), current_setting('primary_conninfo'), current_setting('primary_slot_name')",
                        &[],
                    )
                    .await
                    .map_err(|e| sql_err(region, "reading its replication settings", &e))?;
                let (in_recovery, conninfo, slot): (bool, String, String) = (row.get(0), row.get(1), row.get(2));
                if !in_recovery {
                    return Err(FailoverError::Driver(format!("{region} is not a standby")));
                }
                if !slot.is_empty() {
                    let p = self.connect(to).await?;
                    p.execute(
                        "SELECT pg_create_physical_replication_slot($1) \
                         WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                        &[&slot],
                    )
                    .await
                    .map_err(|e| sql_err(to, "creating the replication slot", &e))?;
                }
                let new = repoint(&conninfo, &new_primary);
                c.batch_execute(&format!("ALTER SYSTEM SET primary_conninfo = {}", literal(&new)))
                    .await
                    .map_err(|e| sql_err(region, "setting primary_conninfo", &e))?;
                c.batch_execute("SELECT pg_reload_conf()")
                    .await
                    .map_err(|e| sql_err(region, "reload", &e))?;
                Ok(())
            }
            .await;
            steps.push(match result {
                Ok(()) => format!("{region}: now streams from {to} ({new_primary})"),
                Err(e) => {
                    format!("{region}: NOT re-pointed ({e}); rebuild it as a standby of {to}")
                }
            });
        }
        Ok(())
    }
}

impl Driver for PgStreaming {
    fn name(&self) -> &'static str {
        "postgres-streaming"
    }

    /// The region's server itself: one server per region, so once promoted its
    /// address is the region's writer endpoint.
    async fn writer_endpoint(&self, region: &str) -> Result<String, FailoverError> {
        self.endpoints
            .get(region)
            .map(ToString::to_string)
            .ok_or_else(|| FailoverError::InvalidInput(format!("no endpoint for region {region}")))
    }

    async fn secondaries(&self, primary: &str, regions: &[String]) -> Vec<Health> {
        // Every candidate at once: each is a TLS connection to another region.
        let checks = regions.iter().filter(|r| r.as_str() != primary).map(|region| async move {
            let probe = async {
                let c = self.connect(region).await?;
                let row = c
                    .query_one(
                        "SELECT pg_is_in_recovery(), (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint",
                        &[],
                    )
                    .await
                    .map_err(|e| sql_err(region, "health", &e))?;
                Ok::<_, FailoverError>((row.get::<_, bool>(0), row.get::<_, Option<i64>>(1)))
            };
            match tokio::time::timeout(self.timeout, probe).await {
                Ok(Ok((true, pos))) => Health {
                    region: region.clone(),
                    healthy: true,
                    note: None,
                    position: pos.map(|p| p as u64),
                    timed_out: false,
                },
                Ok(Ok((false, _))) => Health {
                    region: region.clone(),
                    healthy: false,
                    note: Some("not a standby (in recovery: no)".into()),
                    position: None,
                    timed_out: false,
                },
                Ok(Err(e)) => Health {
                    region: region.clone(),
                    healthy: false,
                    note: Some(e.to_string()),
                    position: None,
                    timed_out: false,
                },
                Err(_) => Health {
                    region: region.clone(),
                    healthy: false,
                    note: Some(format!("no answer within {} ms", self.timeout.as_millis())),
                    position: None,
                    timed_out: true,
                },
            }
        });
        futures::future::join_all(checks).await
    }

    async fn switchover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError> {
        let mut steps = Vec::new();
        // Read the world first: a target that already writes was fenced for and
        // promoted by a previous holder; fencing and waiting again would only fail
        // (the old primary may be gone by now).
        let promoted_at_ms = if self.writes(to).await? {
            steps.push(format!(
                "{to}: already promoted; not fencing {from} or waiting again"
            ));
            None
        } else {
            fence.check(Step::Fence).await?;
            let lsn = self.fence(from, &mut steps).await?;
            self.wait_replayed(to, &lsn, &mut steps, fence).await?;
            self.promote(from, to, regions, &mut steps, fence).await?
        };
        self.repoint_standbys(from, to, regions, &mut steps, fence)
            .await?;
        steps.push(format!(
            "{from}: left fenced (read-only); rebuild it as a standby of {to} to fail back"
        ));
        Ok(DriverReport {
            steps,
            promoted_at_ms,
        })
    }

    async fn failover(
        &self,
        from: &str,
        to: &str,
        regions: &[String],
        fence: &impl Fence,
    ) -> Result<DriverReport, FailoverError> {
        let mut steps = Vec::new();
        let promoted = self.writes(to).await?;
        // If the old primary comes back, it must not take writes: fence it when it
        // answers — on a resumed run too, since it may have come back since.
        fence.check(Step::Fence).await?;
        match tokio::time::timeout(self.timeout, self.fence(from, &mut steps)).await {
            Ok(Ok(_)) => {}
            _ => steps.push(format!(
                "{from}: unreachable; not fenced (it must not be restarted as a primary)"
            )),
        }
        let promoted_at_ms = if promoted {
            steps.push(format!("{to}: already promoted"));
            None
        } else {
            // promote() asks whether another member writes, under the promotion lock.
            self.promote(from, to, regions, &mut steps, fence).await?
        };
        self.repoint_standbys(from, to, regions, &mut steps, fence)
            .await?;
        Ok(DriverReport {
            steps,
            promoted_at_ms,
        })
    }
}

/// The advisory lock key promotions take on the target (`cutover-promote`).
const PROMOTION_LOCK: i64 = 0x0063_7574_6f76_6572;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repoint_keeps_everything_but_host_and_port() {
        let to = Endpoint {
            host: "localhost".into(),
            port: 54322,
        };
        let old = "user=replicator password=x host=localhost port=54333 sslmode=verify-full sslrootcert=/ca.crt application_name=ap-southeast-1";
        let new = repoint(old, &to);
        assert_eq!(
            new,
            "host=localhost port=54322 user=replicator password=x sslmode=verify-full sslrootcert=/ca.crt application_name=ap-southeast-1"
        );
        assert_eq!(literal("a'b"), "'a''b'");
    }
}
