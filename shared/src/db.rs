//! Database connections: PostgreSQL over TLS (rustls, `verify-full` by default)
//! and Oracle over TCPS through the `oracle` crate.
//!
//! Credentials come only from SSM SecureString parameters and live in a
//! [`Password`], which never prints itself: not in logs, not in errors, not in
//! `Debug` output. The CA bundle comes from a file or an SSM parameter.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{DbSettings, SslMode};
use crate::error::{describe_chain, Error, Result};

/// A secret that never shows itself in `Debug`, `Display` or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    /// The secret itself, for the one place that needs it: the connection.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// `host:port` as stored in the endpoint parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (host, port) = match s.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("{s:?} has no valid port (expected host:port)"))?,
            ),
            None => (s, 5432),
        };
        if host.is_empty() || host.contains('/') || host.contains(' ') {
            return Err(format!("{s:?} is not a host name (expected host:port)"));
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Where to connect and as whom; the password travels separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// What errors and logs call it, e.g. the region.
    pub label: String,
    pub endpoint: Endpoint,
    pub database: String,
    pub user: String,
    /// Connect to this address but verify the certificate against `endpoint.host`.
    pub hostaddr: Option<std::net::IpAddr>,
}

impl PgTarget {
    pub fn new(
        label: impl Into<String>,
        endpoint: Endpoint,
        database: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        PgTarget {
            label: label.into(),
            endpoint,
            database: database.into(),
            user: user.into(),
            hostaddr: None,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}@{}/{})",
            self.label, self.user, self.endpoint, self.database
        )
    }
}

/// The TLS client configuration for database connections; build once per cold start.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    mode: SslMode,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).finish()
    }
}

impl Tls {
    /// Trusts exactly the certificates in `ca_pem` (no system roots: an Aurora
    /// endpoint is vouched for by the RDS CA bundle, nothing else).
    pub fn from_pem(ca_pem: &[u8], mode: SslMode) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert =
                cert.map_err(|e| Error::invalid(format!("the CA bundle is not valid PEM: {e}")))?;
            roots.add(cert).map_err(|e| {
                Error::invalid(format!("the CA bundle holds an unusable certificate: {e}"))
            })?;
            count += 1;
        }
        if count == 0 {
            return Err(Error::invalid("the CA bundle holds no certificate"));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?;
        let roots = Arc::new(roots);
        let config = match mode {
            SslMode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
            SslMode::VerifyCa => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                    .with_no_client_auth()
            }
        };
        Ok(Tls {
            config: Arc::new(config),
            mode,
        })
    }

    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

/// `verify-ca`: the chain must reach the CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Reads the CA bundle from `ca_file` when set, else from `<ssm_prefix>/ca-bundle`.
pub async fn load_ca_pem(settings: &DbSettings, ssm: &aws_sdk_ssm::Client) -> Result<Vec<u8>> {
    match &settings.ca_file {
        Some(path) => read_ca_file(path),
        None => Ok(
            parameter(ssm, &format!("{}/ca-bundle", settings.ssm_prefix))
                .await?
                .into_bytes(),
        ),
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(format!(
            "cannot read the CA bundle {} (CUTOVER_DB_CA_FILE): {e}",
            path.display()
        ))
    })
}

async fn get_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    decrypt: bool,
) -> Result<aws_sdk_ssm::types::Parameter> {
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(decrypt)
        .send()
        .await
        .map_err(|e| {
            let not_found = e
                .as_service_error()
                .is_some_and(|se| se.is_parameter_not_found());
            if not_found {
                Error::invalid(format!("SSM parameter {name} does not exist"))
            } else {
                Error::aws("SSM", "GetParameter", e)
            }
        })?;
    out.parameter
        .ok_or_else(|| Error::Internal(format!("SSM returned no parameter for {name}")))
}

/// A plain (String) parameter.
pub async fn parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<String> {
    let p = get_parameter(ssm, name, false).await?;
    p.value
        .ok_or_else(|| Error::invalid(format!("SSM parameter {name} has no value")))
}

/// A secret: it must be a SecureString, so that a secret stored in the clear is
/// refused rather than quietly used.
pub async fn secure_string(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Password> {
    let p = get_parameter(ssm, name, true).await?;
    if p.r#type != Some(aws_sdk_ssm::types::ParameterType::SecureString) {
        return Err(Error::invalid(format!(
            "SSM parameter {name} must be a SecureString (secrets are never stored in the clear)"
        )));
    }
    p.value
        .map(Password)
        .ok_or_else(|| Error::invalid(format!("SSM parameter {name} has no value")))
}

/// Opens one PostgreSQL connection over TLS and drives it on a background task.
pub async fn connect(
    target: &PgTarget,
    password: &Password,
    tls: &Tls,
    timeout: Duration,
) -> Result<tokio_postgres::Client> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&target.endpoint.host)
        .port(target.endpoint.port)
        .dbname(&target.database)
        .user(&target.user)
        .password(password.expose())
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .application_name("cutover")
        .connect_timeout(timeout);
    if let Some(addr) = target.hostaddr {
        config.hostaddr(addr);
    }
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls.config).clone());
    let connecting = config.connect(connector);
    let (client, connection) = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            return Err(Error::Database {
                target: target.describe(),
                message: format!("no connection within {} ms", timeout.as_millis()),
                retryable: true,
            })
        }
        Ok(Err(e)) => return Err(classify(target, &e)),
        Ok(Ok(pair)) => pair,
    };
    let label = target.label.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(target_db = %label, error = %describe_chain(&e), "database connection ended");
        }
    });
    Ok(client)
}

/// Turns a driver error into ours: TLS and authentication failures are not
/// retried (they will fail the same way), network failures are.
pub fn classify(target: &PgTarget, err: &tokio_postgres::Error) -> Error {
    let message = describe_chain(err);
    let lower = message.to_lowercase();
    let permanent = lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("password authentication failed")
        || err.code().is_some_and(|c| {
            matches!(
                c.code(),
                // invalid_password, invalid_authorization_specification, insufficient_privilege,
                // undefined_table, undefined_column, syntax_error
                "28P01" | "28000" | "42501" | "42P01" | "42703" | "42601"
            )
        });
    Error::Database {
        target: target.describe(),
        message,
        retryable: !permanent,
    }
}

/// Everything needed to open connections to the target databases, loaded from
/// SSM once per cold start.
#[derive(Clone, Debug)]
pub struct DbAccess {
    pub database: String,
    pub user: String,
    password: Password,
    pub tls: Tls,
    pub connect_timeout: Duration,
    ssm_prefix: String,
}

impl DbAccess {
    /// The access of one function, as its own database role (infra/sql/roles.sql):
    /// `<prefix>/users/<function>` and the SecureString `<prefix>/passwords/<function>`.
    /// No fallback to a shared user: a missing parameter is an error naming it.
    pub async fn load(
        settings: &DbSettings,
        ssm: &aws_sdk_ssm::Client,
        function: &str,
    ) -> Result<Self> {
        let (user, password) = function_login(&settings.ssm_prefix, function);
        Self::load_login(settings, ssm, &user, &password)
            .await
            .map_err(|e| match e {
                Error::InvalidInput(m) if m.contains("does not exist") => Error::invalid(format!(
                    "{m}: the {function} function connects as its own database role \
                     (created by infra/sql/roles.sql); put its user in {user} and its \
                     password in the SecureString {password}"
                )),
                other => other,
            })
    }

    /// The application's access (`<prefix>/user`, `<prefix>/password`): the role the
    /// cutover freezes. No function connects with it; the rehearsal's application does.
    pub async fn load_application(
        settings: &DbSettings,
        ssm: &aws_sdk_ssm::Client,
    ) -> Result<Self> {
        let prefix = &settings.ssm_prefix;
        Self::load_login(
            settings,
            ssm,
            &format!("{prefix}/user"),
            &format!("{prefix}/password"),
        )
        .await
    }

    async fn load_login(
        settings: &DbSettings,
        ssm: &aws_sdk_ssm::Client,
        user_name: &str,
        password_name: &str,
    ) -> Result<Self> {
        let prefix = &settings.ssm_prefix;
        let database_name = format!("{prefix}/database");
        let (database, user, password, ca) = tokio::try_join!(
            parameter(ssm, &database_name),
            parameter(ssm, user_name),
            secure_string(ssm, password_name),
            load_ca_pem(settings, ssm),
        )?;
        Ok(DbAccess {
            database,
            user,
            password,
            tls: Tls::from_pem(&ca, settings.ssl_mode)?,
            connect_timeout: settings.connect_timeout,
            ssm_prefix: prefix.clone(),
        })
    }

    /// The password, for a driver that opens its own connections as this role.
    pub fn password(&self) -> &Password {
        &self.password
    }

    /// The writer endpoint as the parameter says now (failover rewrites it).
    pub async fn writer_endpoint(&self, ssm: &aws_sdk_ssm::Client) -> Result<Endpoint> {
        let name = format!("{}/writer-endpoint", self.ssm_prefix);
        endpoint_parameter(ssm, &name).await
    }

    /// The reader endpoint of one region.
    pub async fn reader_endpoint(
        &self,
        ssm: &aws_sdk_ssm::Client,
        region: &str,
    ) -> Result<Endpoint> {
        let name = format!("{}/reader-endpoint/{region}", self.ssm_prefix);
        endpoint_parameter(ssm, &name).await
    }

    pub fn target(&self, label: impl Into<String>, endpoint: Endpoint) -> PgTarget {
        PgTarget::new(label, endpoint, self.database.clone(), self.user.clone())
    }

    pub async fn connect(&self, target: &PgTarget) -> Result<tokio_postgres::Client> {
        connect(target, &self.password, &self.tls, self.connect_timeout).await
    }
}

/// The SSM names of one function's database user and password.
pub fn function_login(ssm_prefix: &str, function: &str) -> (String, String) {
    (
        format!("{ssm_prefix}/users/{function}"),
        format!("{ssm_prefix}/passwords/{function}"),
    )
}

async fn endpoint_parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Endpoint> {
    let value = parameter(ssm, name).await?;
    value
        .parse()
        .map_err(|e| Error::invalid(format!("SSM parameter {name}: {e}")))
}

/// The migration source as named by the `source-dsn` SecureString:
/// `postgresql://user:password@host:port/database` or
/// `oracle://user:password@host:port/service_name[?wallet_location=/opt/oracle/wallet]`
/// (always TCPS; see [`OracleTarget::connect_string`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDsn {
    Postgres {
        target: PgTarget,
        password: Password,
    },
    Oracle {
        target: OracleTarget,
        password: Password,
    },
}

/// An Oracle listener, always reached over TCPS: the server's certificate is checked
/// against the CA in the wallet and its DN against the host name (or `server_cert_dn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleTarget {
    pub endpoint: Endpoint,
    pub service: String,
    pub user: String,
    /// The directory of the wallet holding the listener's CA certificate (the DSN's
    /// `wallet_location`); without it the Instant Client's sqlnet.ora / TNS_ADMIN decides.
    pub wallet_location: Option<String>,
    /// The server certificate's exact DN (the DSN's `ssl_server_cert_dn`), for a
    /// certificate whose CN is not the host name.
    pub server_cert_dn: Option<String>,
}

impl OracleTarget {
    /// The full connect descriptor: TCPS, server DN matching on, never plain TCP.
    pub fn connect_string(&self) -> String {
        let mut security = String::from("(SSL_SERVER_DN_MATCH=YES)");
        if let Some(dn) = &self.server_cert_dn {
            security.push_str(&format!("(SSL_SERVER_CERT_DN=\"{dn}\")"));
        }
        if let Some(wallet) = &self.wallet_location {
            security.push_str(&format!("(MY_WALLET_DIRECTORY={wallet})"));
        }
        format!(
            "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCPS)(HOST={})(PORT={}))(CONNECT_DATA=(SERVICE_NAME={}))(SECURITY={security}))",
            self.endpoint.host, self.endpoint.port, self.service
        )
    }
}

/// The DSN's `?key=value&…` options of an Oracle source; anything else is refused, so
/// that a misspelt option does not quietly leave the connection unverified.
fn oracle_options(query: &str) -> std::result::Result<(Option<String>, Option<String>), String> {
    let (mut wallet, mut dn) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("has the option {pair:?} without a value"))?;
        let value = percent_decode(value)
            .filter(|v| !v.is_empty() && !v.contains(['(', ')']))
            .ok_or_else(|| format!("has an invalid value for {key}"))?;
        match key {
            "wallet_location" => wallet = Some(value),
            "ssl_server_cert_dn" => dn = Some(value),
            other => {
                return Err(format!(
                "has the unknown option {other:?} (expected wallet_location or ssl_server_cert_dn)"
            ))
            }
        }
    }
    Ok((wallet, dn))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl SourceDsn {
    /// Parses the DSN; errors describe the problem without echoing the DSN,
    /// since it carries a password.
    pub fn parse(dsn: &str, label: &str) -> Result<Self> {
        let bad = |what: &str| Error::invalid(format!("the source DSN ({label}) {what}"));
        let (scheme, rest) = dsn
            .split_once("://")
            .ok_or_else(|| bad("has no scheme; expected postgresql://… or oracle://…"))?;
        let (credentials, location) = rest
            .rsplit_once('@')
            .ok_or_else(|| bad("has no user:password@ part"))?;
        let (user, password) = credentials
            .split_once(':')
            .ok_or_else(|| bad("has a user but no password"))?;
        let user = percent_decode(user).ok_or_else(|| bad("has a badly percent-encoded user"))?;
        let password =
            percent_decode(password).ok_or_else(|| bad("has a badly percent-encoded password"))?;
        let (location, query) = location.split_once('?').unwrap_or((location, ""));
        let (hostport, database) = location
            .split_once('/')
            .ok_or_else(|| bad("names no database or service after the host"))?;
        if user.is_empty() || database.is_empty() {
            return Err(bad("has an empty user or database"));
        }
        let endpoint: Endpoint = hostport
            .parse()
            .map_err(|_| bad("has an invalid host:port"))?;
        match scheme {
            "postgres" | "postgresql" => Ok(SourceDsn::Postgres {
                target: PgTarget::new(label, endpoint, database, user),
                password: Password(password),
            }),
            "oracle" => {
                let (wallet_location, server_cert_dn) =
                    oracle_options(query).map_err(|e| bad(&e))?;
                let endpoint = if hostport.contains(':') {
                    endpoint
                } else {
                    Endpoint {
                        port: 1521,
                        ..endpoint
                    }
                };
                Ok(SourceDsn::Oracle {
                    target: OracleTarget {
                        endpoint,
                        service: database.to_string(),
                        user,
                        wallet_location,
                        server_cert_dn,
                    },
                    password: Password(password),
                })
            }
            other => Err(bad(&format!(
                "has the scheme {other:?}; expected postgresql or oracle"
            ))),
        }
    }
}

/// What to tell an operator when the Oracle client library cannot be loaded.
pub const ORACLE_CLIENT_HINT: &str = "Oracle Instant Client is not installed or not on LD_LIBRARY_PATH: install Oracle Instant Client 19c or later (basic or basiclite) and add its directory to LD_LIBRARY_PATH (in Lambda, attach the Instant Client layer: infra config key oracleInstantClientLayerArn)";

/// Opens a blocking Oracle connection; call it from `spawn_blocking`.
pub fn connect_oracle(target: &OracleTarget, password: &Password) -> Result<oracle::Connection> {
    oracle::Connection::connect(&target.user, password.expose(), target.connect_string())
        .map_err(|e| oracle_error(target, &e))
}

fn oracle_error(target: &OracleTarget, err: &oracle::Error) -> Error {
    let text = err.to_string();
    // DPI-1047: the ODPI-C layer could not load libclntsh.
    if text.contains("DPI-1047") || text.contains("libclntsh") {
        return Error::OracleClientMissing(ORACLE_CLIENT_HINT.to_string());
    }
    let permanent = text.contains("ORA-01017") || text.contains("ORA-12514");
    Error::Database {
        target: format!("oracle {}@{}", target.user, target.connect_string()),
        message: text,
        retryable: !permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_themselves() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        let dsn =
            SourceDsn::parse("postgresql://app:hunter2@db.example.com:5432/app", "source").unwrap();
        assert!(!format!("{dsn:?}").contains("hunter2"));
    }

    #[test]
    fn dsn_errors_do_not_echo_the_secret() {
        for bad in [
            "hunter2",
            "postgresql://app@host/db",
            "mysql://app:hunter2@host:3306/db",
            "postgresql://app:hunter2@host:notaport/db",
            "postgresql://app:hunter2@host:5432",
        ] {
            let err = SourceDsn::parse(bad, "source").unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(err.to_string().contains("source DSN"), "{err}");
        }
    }

    #[test]
    fn oracle_dsns_default_to_port_1521_and_decode_passwords() {
        let dsn = SourceDsn::parse(
            "oracle://scott:t%40ger@onprem-oracle.example.com/ORCLPDB1",
            "source",
        )
        .unwrap();
        let SourceDsn::Oracle { target, password } = dsn else {
            panic!("expected an Oracle DSN")
        };
        assert_eq!(target.endpoint.port, 1521);
        assert_eq!(password.expose(), "t@ger");
    }

    #[test]
    fn oracle_connects_over_tcps_with_the_server_dn_checked() {
        let dsn = SourceDsn::parse(
            "oracle://scott:tiger@onprem-oracle.example.com:2484/ORCLPDB1",
            "source",
        )
        .unwrap();
        let SourceDsn::Oracle { target, .. } = dsn else {
            panic!("expected an Oracle DSN")
        };
        assert_eq!(
            target.connect_string(),
            "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCPS)(HOST=onprem-oracle.example.com)(PORT=2484))\
             (CONNECT_DATA=(SERVICE_NAME=ORCLPDB1))(SECURITY=(SSL_SERVER_DN_MATCH=YES)))"
        );
        assert!(!target.connect_string().contains("PROTOCOL=TCP)"));
    }

    #[test]
    fn oracle_wallet_and_server_dn_come_from_the_dsn() {
        let dsn = SourceDsn::parse(
            "oracle://scott:tiger@db.example.com:2484/ORCL?wallet_location=/opt/oracle/wallet\
             &ssl_server_cert_dn=CN%3Ddb.example.com%2CO%3DExample",
            "source",
        )
        .unwrap();
        let SourceDsn::Oracle { target, .. } = dsn else {
            panic!("expected an Oracle DSN")
        };
        assert_eq!(
            target.wallet_location.as_deref(),
            Some("/opt/oracle/wallet")
        );
        assert_eq!(
            target.connect_string(),
            "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCPS)(HOST=db.example.com)(PORT=2484))\
             (CONNECT_DATA=(SERVICE_NAME=ORCL))(SECURITY=(SSL_SERVER_DN_MATCH=YES)\
             (SSL_SERVER_CERT_DN=\"CN=db.example.com,O=Example\")(MY_WALLET_DIRECTORY=/opt/oracle/wallet)))"
        );
    }

    #[test]
    fn unknown_or_unsafe_oracle_options_are_refused_without_the_secret() {
        for bad in [
            "oracle://scott:hunter2@db:2484/ORCL?sslmode=disable",
            "oracle://scott:hunter2@db:2484/ORCL?wallet_location",
            "oracle://scott:hunter2@db:2484/ORCL?wallet_location=/x)(PROTOCOL=TCP",
        ] {
            let err = SourceDsn::parse(bad, "source").unwrap_err().to_string();
            assert!(err.contains("source DSN"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn each_function_has_its_own_user_and_password_parameters() {
        assert_eq!(
            function_login("/migration/db/dev", "lag-probe"),
            (
                "/migration/db/dev/users/lag-probe".to_string(),
                "/migration/db/dev/passwords/lag-probe".to_string()
            )
        );
    }

    #[test]
    fn endpoints_parse_host_and_port() {
        assert_eq!(
            "localhost:54321".parse::<Endpoint>().unwrap(),
            Endpoint {
                host: "localhost".into(),
                port: 54321
            }
        );
        assert_eq!("db.example.com".parse::<Endpoint>().unwrap().port, 5432);
        assert!("db:99999".parse::<Endpoint>().is_err());
        assert!(":5432".parse::<Endpoint>().is_err());
    }

    #[test]
    fn an_empty_or_garbled_ca_bundle_is_refused() {
        assert!(Tls::from_pem(b"", SslMode::VerifyFull)
            .unwrap_err()
            .to_string()
            .contains("no certificate"));
        let garbled = b"-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n";
        assert!(Tls::from_pem(garbled, SslMode::VerifyFull).is_err());
    }

    #[test]
    fn missing_instant_client_is_one_line_saying_what_to_install() {
        let target = OracleTarget {
            endpoint: "127.0.0.1:1".parse().unwrap(),
            service: "ORCL".into(),
            user: "scott".into(),
            wallet_location: None,
            server_cert_dn: None,
        };
        let err = connect_oracle(&target, &Password::new("tiger")).unwrap_err();
        // This machine has no Instant Client, which is exactly the case under test.
        let text = err.to_string();
        assert!(matches!(err, Error::OracleClientMissing(_)), "{text}");
        assert!(!text.contains('\n'));
        assert!(text.contains("install Oracle Instant Client"));
    }
}
