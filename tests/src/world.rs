//! The local three-region world as `tests/env/world.sh up` left it.
//!
//! `world.sh` writes `.rehearsal/world.env`; this module reads that file (so a
//! plain `cargo test` works once the world is up) and hands out what tests and
//! the rehearsal need: AWS clients pointed at moto, the core settings the
//! functions would read, and admin connections to each PostgreSQL node.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use aws_config::BehaviorVersion;
use cutover_core::aws::Aws;
use cutover_core::config::{CoreSettings, SslMode, Vars};
use cutover_core::db::{self, Endpoint, Password, PgTarget, Tls};

/// One PostgreSQL server of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// Stands in for the on-premises Oracle database.
    Source,
    UsEast1,
    EuWest1,
    ApSoutheast1,
}

impl Node {
    pub const ALL: [Node; 4] = [
        Node::Source,
        Node::UsEast1,
        Node::EuWest1,
        Node::ApSoutheast1,
    ];
    pub const TARGETS: [Node; 3] = [Node::UsEast1, Node::EuWest1, Node::ApSoutheast1];

    pub fn name(self) -> &'static str {
        match self {
            Node::Source => "source",
            Node::UsEast1 => "us-east-1",
            Node::EuWest1 => "eu-west-1",
            Node::ApSoutheast1 => "ap-southeast-1",
        }
    }

    pub fn role(self) -> &'static str {
        match self {
            Node::Source => "source (on-prem stand-in, publisher)",
            Node::UsEast1 => "primary (subscriber, writer)",
            Node::EuWest1 | Node::ApSoutheast1 => "streaming standby",
        }
    }

    /// The suffix of this node's variables in world.env (`CUTOVER_PORT_<SUFFIX>`).
    fn env_suffix(self) -> &'static str {
        match self {
            Node::Source => "SOURCE",
            Node::UsEast1 => "US_EAST_1",
            Node::EuWest1 => "EU_WEST_1",
            Node::ApSoutheast1 => "AP_SOUTHEAST_1",
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("the local world is not up ({0} not found): run `make env-up` first, or use `make test` / `make demo`, which bring it up")]
    NotUp(String),
    #[error("{path}: {message}")]
    Malformed { path: String, message: String },
    #[error("world.env has no {0}; re-run `make env-up`")]
    Missing(String),
    #[error(transparent)]
    Core(#[from] cutover_core::Error),
    #[error("{0}")]
    Setup(String),
}

#[derive(Clone, Debug)]
pub struct World {
    vars: HashMap<String, String>,
    root: PathBuf,
}

/// The repository root: `CUTOVER_ROOT` when set, else the workspace above this crate.
pub fn repo_root() -> PathBuf {
    if let Ok(root) = std::env::var("CUTOVER_ROOT") {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Parses `export KEY=value` / `KEY=value` lines, with optional single or double quotes.
pub fn parse_env_file(text: &str) -> Result<HashMap<String, String>, String> {
    let mut vars = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=value", n + 1))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.insert(key.trim().to_string(), value.to_string());
    }
    Ok(vars)
}

impl World {
    /// Reads `<root>/.rehearsal/world.env` (or `CUTOVER_WORLD_ENV`).
    pub fn load() -> Result<World, WorldError> {
        let root = repo_root();
        let path = std::env::var("CUTOVER_WORLD_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".rehearsal/world.env"));
        let text = std::fs::read_to_string(&path)
            .map_err(|_| WorldError::NotUp(path.display().to_string()))?;
        let vars = parse_env_file(&text).map_err(|message| WorldError::Malformed {
            path: path.display().to_string(),
            message,
        })?;
        Ok(World { vars, root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn get(&self, key: &str) -> Result<&str, WorldError> {
        self.vars
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| WorldError::Missing(key.to_string()))
    }

    /// Every variable of world.env, as the functions would see them in their environment.
    pub fn vars(&self) -> Vars {
        Vars::from_pairs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The variables as `(key, value)` pairs, e.g. to pass to a child process.
    pub fn env_pairs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.vars.iter()
    }

    pub fn core_settings(&self) -> Result<CoreSettings, WorldError> {
        CoreSettings::from_vars(&self.vars()).map_err(|e| WorldError::Core(e.into()))
    }

    /// The SDK configuration pointed at moto, built without touching the process environment.
    pub async fn aws(&self) -> Result<Aws, WorldError> {
        let endpoint = self.get("AWS_ENDPOINT_URL")?.to_string();
        let region = self.get("AWS_REGION").unwrap_or("us-east-1").to_string();
        let key = self
            .get("AWS_ACCESS_KEY_ID")
            .unwrap_or("testing")
            .to_string();
        let secret = self
            .get("AWS_SECRET_ACCESS_KEY")
            .unwrap_or("testing")
            .to_string();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .endpoint_url(endpoint)
            .credentials_provider(aws_credential_types::Credentials::from_keys(
                key, secret, None,
            ))
            .load()
            .await;
        Ok(Aws::from_sdk_config(sdk))
    }

    pub fn port(&self, node: Node) -> Result<u16, WorldError> {
        let key = format!("CUTOVER_PORT_{}", node.env_suffix());
        self.get(&key)?.parse().map_err(|_| WorldError::Malformed {
            path: "world.env".into(),
            message: format!("{key} is not a port"),
        })
    }

    /// The configured apply delay of a standby, in ms (0 for the others).
    pub fn configured_delay_ms(&self, node: Node) -> u64 {
        match node {
            Node::EuWest1 | Node::ApSoutheast1 => self
                .get(&format!("CUTOVER_DELAY_{}_MS", node.env_suffix()))
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            _ => 0,
        }
    }

    pub fn ca_file(&self) -> Result<PathBuf, WorldError> {
        Ok(PathBuf::from(self.get("CUTOVER_DB_CA_FILE")?))
    }

    pub fn tls(&self, mode: SslMode) -> Result<Tls, WorldError> {
        let pem = std::fs::read(self.ca_file()?).map_err(|e| WorldError::Malformed {
            path: "CUTOVER_DB_CA_FILE".into(),
            message: e.to_string(),
        })?;
        Ok(Tls::from_pem(&pem, mode)?)
    }

    pub fn admin_password(&self) -> Result<Password, WorldError> {
        let path = self.get("CUTOVER_REHEARSAL_ADMIN_PASSWORD_FILE")?;
        let text = std::fs::read_to_string(path).map_err(|e| WorldError::Malformed {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        Ok(Password::new(text.trim()))
    }

    /// The superuser target of one node, over TLS to `localhost`.
    pub fn admin_target(&self, node: Node) -> Result<PgTarget, WorldError> {
        self.admin_target_db(node, "app")
    }

    /// The superuser target of one database of one node.
    pub fn admin_target_db(&self, node: Node, database: &str) -> Result<PgTarget, WorldError> {
        let user = self
            .get("CUTOVER_REHEARSAL_ADMIN_USER")
            .unwrap_or("rehearsal_admin");
        Ok(PgTarget::new(
            node.name(),
            Endpoint {
                host: "localhost".into(),
                port: self.port(node)?,
            },
            database,
            user,
        ))
    }

    /// An admin connection (verify-full against the world's CA).
    pub async fn admin(&self, node: Node) -> Result<tokio_postgres::Client, WorldError> {
        self.admin_db(node, "app").await
    }

    /// An admin connection to another database of a node.
    pub async fn admin_db(
        &self,
        node: Node,
        database: &str,
    ) -> Result<tokio_postgres::Client, WorldError> {
        let tls = self.tls(SslMode::VerifyFull)?;
        let client = db::connect(
            &self.admin_target_db(node, database)?,
            &self.admin_password()?,
            &tls,
            std::time::Duration::from_secs(5),
        )
        .await?;
        Ok(client)
    }
}

impl World {
    /// Sets a standby's `recovery_min_apply_delay` and reloads its configuration
    /// (the rehearsal's stand-in for distance and for lag spikes).
    pub async fn set_apply_delay(&self, node: Node, ms: u64) -> Result<(), WorldError> {
        let admin = self.admin(node).await?;
        // ALTER SYSTEM refuses to run inside a transaction block: two round trips.
        for sql in [
            format!("ALTER SYSTEM SET recovery_min_apply_delay = '{ms}ms'"),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            admin.batch_execute(&sql).await.map_err(|e| {
                WorldError::Setup(format!(
                    "{}: setting the apply delay: {}",
                    node.name(),
                    cutover_core::error::describe_chain(&e)
                ))
            })?;
        }
        Ok(())
    }

    /// Sets the network delay of a standby's WAL stream (its delay-proxy re-reads
    /// the file every 100 ms).
    pub async fn set_network_delay(&self, node: Node, ms: u64) -> Result<(), WorldError> {
        let file =
            PathBuf::from(self.get("CUTOVER_NET_DIR")?).join(format!("{}.delay_ms", node.name()));
        std::fs::write(&file, format!("{ms}\n"))
            .map_err(|e| WorldError::Setup(format!("{}: {e}", file.display())))?;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        Ok(())
    }

    /// The processes of one server: the postmaster and its children.
    fn server_pids(&self, node: Node) -> Result<Vec<u32>, WorldError> {
        let dir = PathBuf::from(self.get("CUTOVER_PG_DATA")?).join(node.name());
        let text = std::fs::read_to_string(dir.join("postmaster.pid"))
            .map_err(|e| WorldError::Setup(format!("{}: postmaster.pid: {e}", node.name())))?;
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| {
                WorldError::Setup(format!("{}: unreadable postmaster.pid", node.name()))
            })?;
        let out = std::process::Command::new("pgrep")
            .args(["-P", &postmaster.to_string()])
            .output()
            .map_err(|e| WorldError::Setup(format!("pgrep: {e}")))?;
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
        Ok(pids)
    }

    /// Signals every process of a node's server, one by one: a backend that exits
    /// between the listing and the signal (a walsender whose standby's link was just
    /// cut) is gone already, which is not a failure; signalling none of them is.
    fn signal(&self, node: Node, signal: &str) -> Result<(), WorldError> {
        let pids = self.server_pids(node)?;
        let mut signalled = 0;
        for pid in &pids {
            let status = std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .stderr(std::process::Stdio::null())
                .status()
                .map_err(|e| WorldError::Setup(format!("kill: {e}")))?;
            if status.success() {
                signalled += 1;
            }
        }
        if signalled > 0 {
            Ok(())
        } else {
            Err(WorldError::Setup(format!(
                "kill -{signal} {}: none of its {} processes could be signalled",
                node.name(),
                pids.len()
            )))
        }
    }

    /// Freezes a server (SIGSTOP to every one of its processes): its sockets
    /// stay open and nothing answers, as with a region cut off by the network.
    pub fn freeze(&self, node: Node) -> Result<(), WorldError> {
        self.signal(node, "STOP")
    }

    pub fn thaw(&self, node: Node) -> Result<(), WorldError> {
        self.signal(node, "CONT")
    }

    /// Rebuilds the world afresh (`world.sh down --purge`, then `up`): after a drill
    /// that killed servers, for the test binaries that run after it.
    pub fn rebuild(&self) -> Result<(), WorldError> {
        let script = self.root().join("tests/env/world.sh");
        let ok = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "bash {0} down --purge >/dev/null && bash {0} up >/dev/null",
                script.display()
            ))
            .status()
            .map_err(|e| WorldError::Setup(format!("world.sh: {e}")))?
            .success();
        if ok {
            Ok(())
        } else {
            Err(WorldError::Setup("the world could not be rebuilt".into()))
        }
    }

    /// Kills a server outright (SIGKILL to every process): a lost region.
    pub fn kill(&self, node: Node) -> Result<(), WorldError> {
        self.signal(node, "KILL")
    }

    /// Kills a standby's delay-proxy: what it holds in flight is lost.
    pub fn cut_network(&self, node: Node) -> Result<(), WorldError> {
        let pidfile =
            PathBuf::from(self.get("CUTOVER_NET_DIR")?).join(format!("{}.pid", node.name()));
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid.trim()])
                .status();
            let _ = std::fs::remove_file(&pidfile);
        }
        Ok(())
    }

    /// Starts a delay-proxy for `node` towards `target`'s port (after a failover moved
    /// the primary), with the node's configured delay; returns the port it listens on.
    pub fn reconnect_network(&self, node: Node, target: Node) -> Result<u16, WorldError> {
        self.cut_network(node)?;
        let net = PathBuf::from(self.get("CUTOVER_NET_DIR")?);
        let listen = self.port(node)? + 10;
        let bin = self.root().join("target/debug/delay-proxy");
        let log = std::fs::File::create(net.join(format!("{}.log", node.name())))
            .map_err(|e| WorldError::Setup(e.to_string()))?;
        let child = std::process::Command::new(bin)
            .args([
                listen.to_string(),
                self.port(target)?.to_string(),
                net.join(format!("{}.delay_ms", node.name()))
                    .display()
                    .to_string(),
            ])
            .stdout(
                log.try_clone()
                    .map_err(|e| WorldError::Setup(e.to_string()))?,
            )
            .stderr(log)
            .spawn()
            .map_err(|e| WorldError::Setup(format!("delay-proxy: {e}")))?;
        std::fs::write(
            net.join(format!("{}.pid", node.name())),
            child.id().to_string(),
        )
        .map_err(|e| WorldError::Setup(e.to_string()))?;
        Ok(listen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_exports_and_quotes() {
        let vars =
            parse_env_file("# comment\nexport A=1\nB='two words'\nexport C=\"x=y\"\n\n").unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "x=y");
        assert!(parse_env_file("no equals sign").is_err());
    }
}
