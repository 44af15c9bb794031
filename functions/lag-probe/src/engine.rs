//! What the database engine itself says about replication lag.
//!
//! - Aurora Global Database: `aurora_global_db_status()` on the writer gives
//!   `rpo_lag_in_msec` per secondary region (`aws_region`).
//! - Plain PostgreSQL streaming replication: `pg_stat_replication.replay_lag` on
//!   the primary, per standby (`application_name`, which must be the region
//!   name: `primary_conninfo = '… application_name=eu-west-1'`), and on each
//!   standby `now() - pg_last_xact_replay_timestamp()` (the replay age; it is
//!   fresh because the heartbeat commits every second).
//!
//! Reading `replay_lag` for other roles' connections needs `pg_monitor` (or
//! `pg_read_all_stats`); without it the column is NULL and no engine figure is
//! published for that region.

use std::str::FromStr;

/// Which engine-reported lag to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// Aurora when `aurora_global_db_status()` exists, PostgreSQL otherwise.
    Auto,
    Aurora,
    Postgres,
    Off,
}

impl FromStr for EngineMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(EngineMode::Auto),
            "aurora" => Ok(EngineMode::Aurora),
            "postgres" => Ok(EngineMode::Postgres),
            "off" => Ok(EngineMode::Off),
            other => Err(format!("unknown engine mode {other:?}")),
        }
    }
}

/// Whether the writer is an Aurora Global Database member.
pub const DETECT_AURORA: &str =
    "SELECT to_regproc('aurora_global_db_status') IS NOT NULL AS is_aurora";

/// Lag per secondary region in milliseconds, as (region, lag) rows.
pub fn lag_query(mode: EngineMode) -> Option<&'static str> {
    match mode {
        EngineMode::Aurora => Some(
            "SELECT aws_region::text, rpo_lag_in_msec::float8 \
             FROM aurora_global_db_status() WHERE rpo_lag_in_msec IS NOT NULL",
        ),
        EngineMode::Postgres => Some(
            "SELECT application_name::text, \
                    (EXTRACT(epoch FROM replay_lag) * 1000)::float8 \
             FROM pg_stat_replication WHERE replay_lag IS NOT NULL",
        ),
        EngineMode::Auto | EngineMode::Off => None,
    }
}

/// On a standby: how old the last replayed commit is, in milliseconds (0 when
/// everything received has been replayed), read in the same round trip as the
/// heartbeat poll.
pub const REPLAY_AGE_EXPR: &str = "CASE WHEN NOT pg_is_in_recovery() THEN NULL \
     WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
     ELSE (EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 END";

/// Whether heartbeat and engine disagree enough to say so in the log:
/// more than `floor_ms` and more than half the heartbeat figure.
pub fn disagree(heartbeat_ms: f64, engine_ms: f64, floor_ms: f64) -> bool {
    let diff = (heartbeat_ms - engine_ms).abs();
    diff > floor_ms && diff > heartbeat_ms * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_name_their_query() {
        assert_eq!("aurora".parse::<EngineMode>(), Ok(EngineMode::Aurora));
        assert!("mysql".parse::<EngineMode>().is_err());
        assert!(lag_query(EngineMode::Aurora)
            .unwrap()
            .contains("aurora_global_db_status()"));
        assert!(lag_query(EngineMode::Postgres)
            .unwrap()
            .contains("pg_stat_replication"));
        assert_eq!(lag_query(EngineMode::Off), None);
    }

    #[test]
    fn disagreement_needs_both_an_absolute_and_a_relative_gap() {
        assert!(!disagree(75.0, 80.0, 250.0));
        assert!(!disagree(2000.0, 2300.0, 250.0));
        assert!(disagree(80.0, 900.0, 250.0));
        assert!(disagree(2000.0, 0.0, 250.0));
    }
}
