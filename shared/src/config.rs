//! Typed settings from environment variables, validated once at cold start.
//!
//! A missing or malformed variable is an error that names the variable and the
//! form it expects, so a misconfigured Lambda fails its first invocation with a
//! sentence an operator can act on. Secrets never come from here: only the
//! *names* of SSM parameters do (see [`crate::db`]).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {var} is not set; expected {form}")]
    Missing { var: String, form: String },
    #[error("environment variable {var} has the value {value:?}; expected {form}")]
    Malformed {
        var: String,
        value: String,
        form: String,
    },
}

/// Where settings come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, String>,
}

impl Vars {
    /// Snapshot of the process environment.
    pub fn from_env() -> Self {
        Vars {
            values: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Vars {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The value, if set and not blank.
    pub fn optional(&self, var: &str) -> Option<String> {
        self.values
            .get(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, var: &str, form: &str) -> Result<String, ConfigError> {
        self.optional(var).ok_or_else(|| ConfigError::Missing {
            var: var.to_string(),
            form: form.to_string(),
        })
    }

    /// Parses the value when set; `default` otherwise.
    pub fn parse_or<T: FromStr>(
        &self,
        var: &str,
        default: T,
        form: &str,
    ) -> Result<T, ConfigError> {
        match self.optional(var) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| ConfigError::Malformed {
                var: var.to_string(),
                value,
                form: form.to_string(),
            }),
        }
    }

    pub fn parse_required<T: FromStr>(&self, var: &str, form: &str) -> Result<T, ConfigError> {
        let value = self.required(var, form)?;
        value.parse().map_err(|_| ConfigError::Malformed {
            var: var.to_string(),
            value,
            form: form.to_string(),
        })
    }

    /// A duration given in milliseconds (`CUTOVER_X_MS=1500`).
    pub fn millis_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        let ms: u64 = self.parse_or(
            var,
            default.as_millis() as u64,
            "a whole number of milliseconds, e.g. 1500",
        )?;
        Ok(Duration::from_millis(ms))
    }

    /// A comma-separated list; blank items are an error, not silently dropped.
    pub fn list(&self, var: &str, form: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(None);
        };
        let items: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
        if items.iter().any(String::is_empty) {
            return Err(ConfigError::Malformed {
                var: var.to_string(),
                value,
                form: form.to_string(),
            });
        }
        Ok(Some(items))
    }
}

/// An AWS region name, checked for shape (`us-east-1`, `ap-southeast-1`, `us-gov-west-1`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('-').collect();
        let shape_ok = (3..=4).contains(&parts.len())
            && parts[0].len() == 2
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty();
        if shape_ok {
            Ok(Region(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not an AWS region name (expected something like us-east-1)"
            ))
        }
    }
}

impl TryFrom<String> for Region {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Region> for String {
    fn from(value: Region) -> Self {
        value.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How strictly the database server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Chain to the configured CA *and* the host name matches (the default).
    VerifyFull,
    /// Chain to the configured CA only; for endpoints reached through a tunnel
    /// under another name. Never the default.
    VerifyCa,
}

impl FromStr for SslMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "verify-full" => Ok(SslMode::VerifyFull),
            "verify-ca" => Ok(SslMode::VerifyCa),
            _ => Err(()),
        }
    }
}

/// Settings every function shares. Function crates read their own on top of
/// these with the same [`Vars`].
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// The stack's environment suffix: names are `<resource>-<suffix>`.
    pub suffix: String,
    pub primary_region: Region,
    /// Every region of the deployment, primary first.
    pub regions: Vec<Region>,
    /// DynamoDB table of the migration state.
    pub state_table: String,
    /// SNS topic for operational notifications, if any.
    pub ops_topic_arn: Option<String>,
    pub metrics_namespace: String,
    pub db: DbSettings,
}

#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `/migration/db/<suffix>`: endpoints, user, password, source DSN, CA bundle.
    pub ssm_prefix: String,
    /// `/migration/app/<suffix>`: active region, traffic policy.
    pub app_ssm_prefix: String,
    pub ssl_mode: SslMode,
    /// A CA bundle on disk; when unset the bundle is read from `<ssm_prefix>/ca-bundle`.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
}

pub const DEFAULT_REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

impl CoreSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&Vars::from_env())
    }

    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let suffix = vars.required(
            "CUTOVER_SUFFIX",
            "the stack's environment suffix, e.g. dev (letters, digits, -)",
        )?;
        if !suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
            || suffix.len() > 32
        {
            return Err(ConfigError::Malformed {
                var: "CUTOVER_SUFFIX".into(),
                value: suffix,
                form: "at most 32 letters, digits or '-'".into(),
            });
        }
        let region_form = "an AWS region name such as us-east-1";
        let primary_region: Region = vars.parse_or(
            "CUTOVER_PRIMARY_REGION",
            Region(DEFAULT_REGIONS[0].into()),
            region_form,
        )?;
        let list_form = "comma-separated AWS region names, e.g. us-east-1,eu-west-1,ap-southeast-1";
        let regions = match vars.list("CUTOVER_REGIONS", list_form)? {
            None => DEFAULT_REGIONS
                .iter()
                .map(|r| Region(r.to_string()))
                .collect(),
            Some(items) => {
                let mut regions = Vec::with_capacity(items.len());
                for item in &items {
                    let region: Region = item.parse().map_err(|_| ConfigError::Malformed {
                        var: "CUTOVER_REGIONS".into(),
                        value: items.join(","),
                        form: list_form.into(),
                    })?;
                    if regions.contains(&region) {
                        return Err(ConfigError::Malformed {
                            var: "CUTOVER_REGIONS".into(),
                            value: items.join(","),
                            form: "each region once".into(),
                        });
                    }
                    regions.push(region);
                }
                regions
            }
        };
        if !regions.contains(&primary_region) {
            return Err(ConfigError::Malformed {
                var: "CUTOVER_REGIONS".into(),
                value: regions
                    .iter()
                    .map(Region::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                form: format!("a list that includes the primary region {primary_region}"),
            });
        }
        // Primary first, the others in the configured order.
        let mut ordered = vec![primary_region.clone()];
        ordered.extend(regions.into_iter().filter(|r| *r != primary_region));

        let state_table = vars
            .optional("CUTOVER_STATE_TABLE")
            .unwrap_or_else(|| format!("migration-state-{suffix}"));
        let ops_topic_arn = vars.optional("CUTOVER_OPS_TOPIC_ARN");
        if let Some(arn) = &ops_topic_arn {
            if !arn.starts_with("arn:") || !arn.contains(":sns:") {
                return Err(ConfigError::Malformed {
                    var: "CUTOVER_OPS_TOPIC_ARN".into(),
                    value: arn.clone(),
                    form: "an SNS topic ARN, arn:aws:sns:<region>:<account>:<name>".into(),
                });
            }
        }
        let metrics_namespace = vars
            .optional("CUTOVER_METRICS_NAMESPACE")
            .unwrap_or_else(|| "Cutover".to_string());
        let ssl_mode = vars.parse_or(
            "CUTOVER_DB_SSLMODE",
            SslMode::VerifyFull,
            "verify-full (default) or verify-ca",
        )?;
        let db = DbSettings {
            ssm_prefix: vars
                .optional("CUTOVER_DB_SSM_PREFIX")
                .unwrap_or_else(|| format!("/migration/db/{suffix}")),
            app_ssm_prefix: vars
                .optional("CUTOVER_APP_SSM_PREFIX")
                .unwrap_or_else(|| format!("/migration/app/{suffix}")),
            ssl_mode,
            ca_file: vars.optional("CUTOVER_DB_CA_FILE").map(PathBuf::from),
            connect_timeout: vars
                .millis_or("CUTOVER_DB_CONNECT_TIMEOUT_MS", Duration::from_secs(5))?,
        };
        for (var, prefix) in [
            ("CUTOVER_DB_SSM_PREFIX", &db.ssm_prefix),
            ("CUTOVER_APP_SSM_PREFIX", &db.app_ssm_prefix),
        ] {
            if !prefix.starts_with('/') || prefix.ends_with('/') {
                return Err(ConfigError::Malformed {
                    var: var.into(),
                    value: prefix.clone(),
                    form: "an SSM path starting with '/' and not ending with '/'".into(),
                });
            }
        }
        Ok(CoreSettings {
            suffix,
            primary_region,
            regions: ordered,
            state_table,
            ops_topic_arn,
            metrics_namespace,
            db,
        })
    }

    /// The regions other than the primary.
    pub fn secondaries(&self) -> impl Iterator<Item = &Region> {
        self.regions
            .iter()
            .filter(move |r| **r != self.primary_region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_everything_but_the_suffix() {
        let settings =
            CoreSettings::from_vars(&Vars::from_pairs([("CUTOVER_SUFFIX", "dev")])).unwrap();
        assert_eq!(settings.state_table, "migration-state-dev");
        assert_eq!(settings.primary_region.as_str(), "us-east-1");
        let names: Vec<_> = settings.regions.iter().map(Region::as_str).collect();
        assert_eq!(names, ["us-east-1", "eu-west-1", "ap-southeast-1"]);
        assert_eq!(settings.db.ssm_prefix, "/migration/db/dev");
        assert_eq!(settings.db.app_ssm_prefix, "/migration/app/dev");
        assert_eq!(settings.db.ssl_mode, SslMode::VerifyFull);
        assert_eq!(settings.db.connect_timeout, Duration::from_secs(5));
        assert_eq!(settings.secondaries().count(), 2);
    }

    #[test]
    fn missing_suffix_names_the_variable_and_the_form() {
        let err = CoreSettings::from_vars(&Vars::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("CUTOVER_SUFFIX"), "{text}");
        assert!(text.contains("expected"), "{text}");
    }

    #[test]
    fn malformed_region_list_is_rejected_with_the_value() {
        let err = CoreSettings::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_REGIONS", "us-east-1,,eu-west-1"),
        ]))
        .unwrap_err();
        assert!(matches!(err, ConfigError::Malformed { ref var, .. } if var == "CUTOVER_REGIONS"));
        let err = CoreSettings::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_REGIONS", "us-east-1,Mars"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("Mars"));
    }

    #[test]
    fn primary_must_be_one_of_the_regions_and_comes_first() {
        let err = CoreSettings::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_PRIMARY_REGION", "us-west-2"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("primary region us-west-2"),
            "{err}"
        );
        let settings = CoreSettings::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_PRIMARY_REGION", "eu-west-1"),
        ]))
        .unwrap();
        assert_eq!(settings.regions[0].as_str(), "eu-west-1");
    }

    #[test]
    fn unknown_ssl_mode_is_rejected() {
        let err = CoreSettings::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_DB_SSLMODE", "disable"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CUTOVER_DB_SSLMODE"));
        assert!(err.to_string().contains("verify-full"));
    }

    #[test]
    fn malformed_numbers_and_topic_arns_are_named() {
        let err = CoreSettings::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_DB_CONNECT_TIMEOUT_MS", "5s"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CUTOVER_DB_CONNECT_TIMEOUT_MS"));
        let err = CoreSettings::from_vars(&Vars::from_pairs([
            ("CUTOVER_SUFFIX", "dev"),
            ("CUTOVER_OPS_TOPIC_ARN", "ops-topic"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("SNS topic ARN"));
    }

    #[test]
    fn region_names_are_checked_for_shape() {
        for good in ["us-east-1", "ap-southeast-1", "us-gov-west-1"] {
            assert!(good.parse::<Region>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "USEAST1",
            "us_east_1",
            "us-east-x",
            "u-east-1",
        ] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
    }
}
