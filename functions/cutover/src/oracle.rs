//! The cutover's steps for an Oracle source replicated by AWS DMS, as SQL and
//! conditions. Not executed here: this machine has no Oracle server or Instant
//! Client, so the statements are unit-tested as text and documented in the README.
//!
//! - Freeze: the application role loses its write privileges on every migrated
//!   table (targeted, reversible, and it holds for sessions already open, unlike a
//!   logon trigger), and its sessions are killed so no open transaction commits later.
//!   `ALTER SYSTEM QUIESCE RESTRICTED` would also stop DMS's own LogMiner session's
//!   peers and needs the Resource Manager; it is the fallback, not the default.
//! - Freeze position: `CURRENT_SCN` after the sessions are gone.
//! - Drain: the DMS task's CDC latency is within the budget and its recovery
//!   checkpoint has passed the freeze SCN ([`dms_drained`]).

/// `"NAME"`, with embedded quotes doubled; Oracle folds unquoted names to upper case,
/// so the caller passes names as the dictionary spells them.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements that freeze the application role's writes on `tables` (schema, table).
pub fn freeze_statements(role: &str, tables: &[(String, String)]) -> Vec<String> {
    tables
        .iter()
        .map(|(schema, table)| {
            format!(
                "REVOKE INSERT, UPDATE, DELETE ON {}.{} FROM {}",
                quote(schema),
                quote(table),
                quote(role)
            )
        })
        .collect()
}

/// The statements that give the writes back (the rollback before `switched`).
pub fn unfreeze_statements(role: &str, tables: &[(String, String)]) -> Vec<String> {
    tables
        .iter()
        .map(|(schema, table)| {
            format!(
                "GRANT INSERT, UPDATE, DELETE ON {}.{} TO {}",
                quote(schema),
                quote(table),
                quote(role)
            )
        })
        .collect()
}

/// Lists the role's sessions to kill, as `ALTER SYSTEM KILL SESSION '<sid>,<serial#>' IMMEDIATE`
/// statements, built by the database itself from a bind variable (`:role`).
pub const SESSIONS_TO_KILL: &str =
    "SELECT 'ALTER SYSTEM KILL SESSION ''' || sid || ',' || serial# || ''' IMMEDIATE' \
     FROM v$session WHERE username = :role AND type = 'USER'";

/// The freeze position.
pub const FREEZE_SCN: &str = "SELECT current_scn FROM v$database";

/// The SCN in a DMS Oracle recovery checkpoint (`checkpoint:V1#<seq>#<scn>#...`, as
/// DescribeReplicationTasks reports `RecoveryCheckpoint`); `None` when it has another shape.
pub fn checkpoint_scn(checkpoint: &str) -> Option<u64> {
    let rest = checkpoint.strip_prefix("checkpoint:V1#")?;
    let mut parts = rest.split('#');
    let _sequence = parts.next()?;
    parts.next()?.parse().ok()
}

/// Whether DMS has applied everything the source committed before the freeze.
pub fn dms_drained(
    freeze_scn: u64,
    recovery_checkpoint: &str,
    cdc_latency_target_s: f64,
    budget_s: f64,
) -> Result<(), String> {
    let Some(scn) = checkpoint_scn(recovery_checkpoint) else {
        return Err(format!(
            "the task's recovery checkpoint {recovery_checkpoint:?} has no SCN this tool can read"
        ));
    };
    if scn < freeze_scn {
        return Err(format!(
            "the task's recovery checkpoint is at SCN {scn}, before the freeze SCN {freeze_scn}"
        ));
    }
    if cdc_latency_target_s > budget_s {
        return Err(format!(
            "CDCLatencyTarget is {cdc_latency_target_s} s, over the {budget_s} s budget"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_freeze_revokes_writes_table_by_table_and_the_rollback_grants_them_back() {
        let tables = vec![("APP".to_string(), "ORDERS".to_string())];
        assert_eq!(
            freeze_statements("APP_RW", &tables),
            ["REVOKE INSERT, UPDATE, DELETE ON \"APP\".\"ORDERS\" FROM \"APP_RW\""]
        );
        assert_eq!(
            unfreeze_statements("APP_RW", &tables),
            ["GRANT INSERT, UPDATE, DELETE ON \"APP\".\"ORDERS\" TO \"APP_RW\""]
        );
        assert_eq!(quote("A\"B"), "\"A\"\"B\"");
        assert!(SESSIONS_TO_KILL.contains(":role"));
    }

    #[test]
    fn drained_means_the_checkpoint_passed_the_freeze_scn_and_latency_is_in_budget() {
        let cp = "checkpoint:V1#27#0000000000123456#0#0#*#0#0";
        assert_eq!(checkpoint_scn(cp), Some(123_456));
        assert!(dms_drained(123_000, cp, 0.5, 1.0).is_ok());
        assert!(dms_drained(200_000, cp, 0.5, 1.0)
            .unwrap_err()
            .contains("before the freeze SCN 200000"));
        assert!(dms_drained(123_000, cp, 3.0, 1.0)
            .unwrap_err()
            .contains("CDCLatencyTarget"));
        assert!(dms_drained(1, "garbage", 0.0, 1.0).is_err());
    }
}
