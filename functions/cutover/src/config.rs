//! The cutover function's settings, read once at cold start.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CUTOVER_SUBSCRIPTION` | `cutover_sub` | the forward (source → target) subscription on the target, and its slot on the source |
//! | `CUTOVER_REVERSE_NAME` | `cutover_reverse` | the reverse publication (target), subscription (source) and slot (target) |
//! | `CUTOVER_APP_ROLE` | the `user` parameter | the database role the application writes as: frozen on the source at `frozen` |
//! | `CUTOVER_MAX_LAG_MS` | 1000 | `in-sync` and `frozen` need replication to catch up within this |
//! | `CUTOVER_VALIDATION_MAX_AGE_MS` | 900000 | a validation run older than this is no evidence |
//! | `CUTOVER_DRAIN_TIMEOUT_MS` | 30000 | how long `drained` waits for the target to apply the frozen source |
//! | `CUTOVER_SEQUENCE_MARGIN` | 1000 | how far past the other side's value sequences are set |
//! | `CUTOVER_STABLE_WATCH_MS` | 600000 | how long after `switched` the watch window lasts |
//! | `CUTOVER_STABLE_ALARMS` | (none) | alarms that must not be in ALARM for `stable` |
//! | `CUTOVER_LEASE_TTL_MS` | 60000 | the transition lease's lifetime |

use std::time::Duration;

use cutover_core::config::{ConfigError, CoreSettings, Vars};

#[derive(Debug, Clone)]
pub struct CutoverConfig {
    pub core: CoreSettings,
    pub subscription: String,
    pub reverse: String,
    pub app_role: Option<String>,
    pub max_lag: Duration,
    pub validation_max_age: Duration,
    pub drain_timeout: Duration,
    pub sequence_margin: i64,
    pub stable_watch: Duration,
    pub stable_alarms: Vec<String>,
    pub lease_ttl: Duration,
}

/// PostgreSQL identifiers we create or name: plain lower-case names, so that
/// quoting is never a question of taste.
fn identifier(vars: &Vars, var: &str, default: &str) -> Result<String, ConfigError> {
    let value = vars.optional(var).unwrap_or_else(|| default.to_string());
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(value)
    } else {
        Err(ConfigError::Malformed {
            var: var.into(),
            value,
            form: "a PostgreSQL name of at most 63 lower-case letters, digits or _".into(),
        })
    }
}

impl CutoverConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let core = CoreSettings::from_vars(vars)?;
        let subscription = identifier(vars, "CUTOVER_SUBSCRIPTION", "cutover_sub")?;
        let reverse = identifier(vars, "CUTOVER_REVERSE_NAME", "cutover_reverse")?;
        if subscription == reverse {
            return Err(ConfigError::Malformed {
                var: "CUTOVER_REVERSE_NAME".into(),
                value: reverse,
                form: "a name other than CUTOVER_SUBSCRIPTION's".into(),
            });
        }
        let sequence_margin: i64 = vars.parse_or(
            "CUTOVER_SEQUENCE_MARGIN",
            1000,
            "a whole number of at least 1, e.g. 1000",
        )?;
        if sequence_margin < 1 {
            return Err(ConfigError::Malformed {
                var: "CUTOVER_SEQUENCE_MARGIN".into(),
                value: sequence_margin.to_string(),
                form: "a whole number of at least 1".into(),
            });
        }
        Ok(CutoverConfig {
            subscription,
            reverse,
            app_role: vars.optional("CUTOVER_APP_ROLE"),
            max_lag: vars.millis_or("CUTOVER_MAX_LAG_MS", Duration::from_secs(1))?,
            validation_max_age: vars
                .millis_or("CUTOVER_VALIDATION_MAX_AGE_MS", Duration::from_secs(900))?,
            drain_timeout: vars.millis_or("CUTOVER_DRAIN_TIMEOUT_MS", Duration::from_secs(30))?,
            sequence_margin,
            stable_watch: vars.millis_or("CUTOVER_STABLE_WATCH_MS", Duration::from_secs(600))?,
            stable_alarms: vars
                .list("CUTOVER_STABLE_ALARMS", "comma-separated alarm names")?
                .unwrap_or_default(),
            lease_ttl: vars.millis_or("CUTOVER_LEASE_TTL_MS", Duration::from_secs(60))?,
            core,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_the_suffix() {
        let c = CutoverConfig::from_vars(&Vars::from_pairs([("CUTOVER_SUFFIX", "dev")])).unwrap();
        assert_eq!(c.subscription, "cutover_sub");
        assert_eq!(c.reverse, "cutover_reverse");
        assert_eq!(c.max_lag, Duration::from_secs(1));
        assert_eq!(c.sequence_margin, 1000);
    }

    #[test]
    fn a_name_that_would_need_quoting_is_refused_by_name() {
        let err = CutoverConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_REVERSE_NAME", "Robert'); drop"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("CUTOVER_REVERSE_NAME"), "{err}");
    }

    #[test]
    fn a_margin_below_one_is_refused() {
        let err = CutoverConfig::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_SEQUENCE_MARGIN", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("CUTOVER_SEQUENCE_MARGIN"), "{err}");
    }
}
