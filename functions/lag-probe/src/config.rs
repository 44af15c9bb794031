//! The probe's settings, read once at cold start.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CUTOVER_LAG_WINDOW_MS` | 55000 | how long one invocation samples |
//! | `CUTOVER_LAG_CADENCE_MS` | 1000 | one heartbeat every … |
//! | `CUTOVER_LAG_POLL_TIMEOUT_MS` | 2000 | a poll or write slower than this makes the region unreachable |
//! | `CUTOVER_LAG_HEARTBEAT_TABLE` | `cutover.heartbeat` | schema.table of the heartbeat |
//! | `CUTOVER_LAG_PROBE_ID` | `lag-probe` | the heartbeat row this probe writes |
//! | `CUTOVER_LAG_ENGINE` | `auto` | auto, aurora, postgres or off |
//! | `CUTOVER_LAG_DISAGREEMENT_MS` | 250 | heartbeat vs engine gap worth a warning |
//! | `CUTOVER_LAG_FLUSH_MS` | 10000 | how often metrics and the latest sample are published |
//!
//! The probe's vantage point — the region it measures from, which keys its lag
//! samples (`LAG#<region>` / `FROM#<vantage>`) and its reachability record of the
//! writer (`REACH#<writer>` / `FROM#<vantage>`) — is its own region,
//! `CUTOVER_PRIMARY_REGION` (each region's copy is given its own region there).

use std::time::Duration;

use cutover_core::config::{ConfigError, CoreSettings, Vars};

use crate::engine::EngineMode;

/// A schema-qualified table name, always emitted quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn parse(text: &str) -> Option<Self> {
        let (schema, table) = text.split_once('.')?;
        let ok = |s: &str| !s.is_empty() && s.len() <= 63 && !s.contains('\0');
        (ok(schema) && ok(table) && !table.contains('.')).then(|| TableName {
            schema: schema.to_string(),
            table: table.to_string(),
        })
    }

    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.table))
    }

    pub fn quoted_schema(&self) -> String {
        quote(&self.schema)
    }
}

/// A PostgreSQL identifier, quoted.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub core: CoreSettings,
    pub window: Duration,
    pub cadence: Duration,
    pub poll_timeout: Duration,
    pub heartbeat_table: TableName,
    pub probe_id: String,
    pub engine: EngineMode,
    pub disagreement_ms: f64,
    pub flush_every: Duration,
}

impl ProbeConfig {
    /// The region this probe measures from: its own.
    pub fn vantage(&self) -> &str {
        self.core.primary_region.as_str()
    }

    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let core = CoreSettings::from_vars(vars)?;
        let window = vars.millis_or("CUTOVER_LAG_WINDOW_MS", Duration::from_secs(55))?;
        let cadence = vars.millis_or("CUTOVER_LAG_CADENCE_MS", Duration::from_secs(1))?;
        let poll_timeout = vars.millis_or("CUTOVER_LAG_POLL_TIMEOUT_MS", Duration::from_secs(2))?;
        let flush_every = vars.millis_or("CUTOVER_LAG_FLUSH_MS", Duration::from_secs(10))?;
        let malformed = |var: &str, value: String, form: &str| ConfigError::Malformed {
            var: var.into(),
            value,
            form: form.into(),
        };
        if cadence < Duration::from_millis(100) {
            return Err(malformed(
                "CUTOVER_LAG_CADENCE_MS",
                cadence.as_millis().to_string(),
                "at least 100 milliseconds",
            ));
        }
        if window < cadence || window > Duration::from_secs(14 * 60) {
            return Err(malformed(
                "CUTOVER_LAG_WINDOW_MS",
                window.as_millis().to_string(),
                "at least one cadence and at most 840000 (14 minutes, inside the Lambda limit)",
            ));
        }
        if poll_timeout.is_zero() {
            return Err(malformed(
                "CUTOVER_LAG_POLL_TIMEOUT_MS",
                "0".into(),
                "a positive number of milliseconds",
            ));
        }
        let table_text = vars
            .optional("CUTOVER_LAG_HEARTBEAT_TABLE")
            .unwrap_or_else(|| "cutover.heartbeat".into());
        let heartbeat_table = TableName::parse(&table_text).ok_or_else(|| {
            malformed(
                "CUTOVER_LAG_HEARTBEAT_TABLE",
                table_text.clone(),
                "schema.table, e.g. cutover.heartbeat",
            )
        })?;
        let probe_id = vars
            .optional("CUTOVER_LAG_PROBE_ID")
            .unwrap_or_else(|| "lag-probe".into());
        if probe_id.is_empty() || probe_id.len() > 64 {
            return Err(malformed(
                "CUTOVER_LAG_PROBE_ID",
                probe_id,
                "1 to 64 characters",
            ));
        }
        let engine = vars.parse_or(
            "CUTOVER_LAG_ENGINE",
            EngineMode::Auto,
            "auto, aurora, postgres or off",
        )?;
        let disagreement_ms = vars.parse_or(
            "CUTOVER_LAG_DISAGREEMENT_MS",
            250.0_f64,
            "milliseconds, e.g. 250",
        )?;
        Ok(ProbeConfig {
            core,
            window,
            cadence,
            poll_timeout,
            heartbeat_table,
            probe_id,
            engine,
            disagreement_ms,
            flush_every,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ProbeConfig::from_vars(&Vars::from_pairs([("CUTOVER_SUFFIX", "dev")])).unwrap();
        assert_eq!(c.window, Duration::from_secs(55));
        assert_eq!(c.cadence, Duration::from_secs(1));
        assert_eq!(c.heartbeat_table.quoted(), "\"cutover\".\"heartbeat\"");
        assert_eq!(c.engine, EngineMode::Auto);
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (var, value) in [
            ("CUTOVER_LAG_CADENCE_MS", "10"),
            ("CUTOVER_LAG_CADENCE_MS", "soon"),
            ("CUTOVER_LAG_WINDOW_MS", "900000"),
            ("CUTOVER_LAG_HEARTBEAT_TABLE", "heartbeat"),
            ("CUTOVER_LAG_ENGINE", "mysql"),
            ("CUTOVER_LAG_POLL_TIMEOUT_MS", "0"),
        ] {
            let err = ProbeConfig::from_vars(&Vars::from_pairs([
                ("CUTOVER_SUFFIX", "dev"),
                (var, value),
            ]))
            .unwrap_err();
            assert!(err.to_string().contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn names_with_quotes_are_quoted() {
        let t = TableName::parse("my \"ops\".beat").unwrap();
        assert_eq!(t.quoted(), "\"my \"\"ops\"\"\".\"beat\"");
        assert!(TableName::parse("a.b.c").is_none());
        assert!(TableName::parse(".b").is_none());
    }
}
