//! The lost-write reconciliation of the killed-primary drill: the killed primary's
//! data directory started on its own on another port (the stand-in for Aurora's
//! snapshot of the old primary, restored to a temporary cluster), and what checks the
//! failover function's `reconcile` and `replay` commands (run by the drill, in
//! `failover_stage`) from outside: the reconciliation and the validator between the old
//! and the new primary as the administrator. The old primary is stopped again after.

use std::path::PathBuf;
use std::process::Command;

use cutover_core::config::SslMode;
use cutover_core::db::{self, Endpoint, PgTarget};
use data_validator::engine::{Options, Pair, SegmentResult};
use data_validator::ident::TableRef;
use data_validator::run::describe;
use data_validator::schema::compare;
use data_validator::sql::KeyRange;
use failover::reconcile::{self, Reconciliation};

use crate::world::{Node, World, WorldError};

fn fail(e: impl std::fmt::Display) -> WorldError {
    WorldError::Setup(e.to_string())
}

/// The port the killed primary is started on, isolated (no standby, no application).
pub fn isolated_port(world: &World) -> u16 {
    world
        .get("CUTOVER_PORT_OLD_PRIMARY")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| world.port(Node::Source).map_or(54330, |p| p + 10))
}

fn pg_ctl() -> Result<String, WorldError> {
    let out = Command::new("bash")
        .args([
            "-c",
            "ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1",
        ])
        .output()
        .map_err(fail)?;
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if bin.is_empty() {
        return Err(fail("no PostgreSQL binaries under /usr/lib/postgresql"));
    }
    Ok(format!("{bin}/pg_ctl"))
}

fn datadir(world: &World, node: Node) -> PathBuf {
    world.root().join(".rehearsal/pg").join(node.name())
}

/// Starts the killed `node`'s data directory on `port`, listening on loopback only:
/// crash recovery replays its own WAL, so it holds everything it acknowledged.
pub async fn start_isolated(world: &World, node: Node, port: u16) -> Result<(), WorldError> {
    let dir = datadir(world, node);
    let pg_ctl = pg_ctl()?;
    // The killed server's backends notice their postmaster's death; until they have
    // gone, its shared memory is still in use and a new postmaster refuses to start.
    let mut last = String::new();
    for _ in 0..20 {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", &pg_ctl, "-D"])
            .arg(&dir)
            .args([
                "-l",
                &format!("{}/isolated.log", dir.display()),
                "-o",
                &format!("-p {port} -c listen_addresses=127.0.0.1 -c synchronous_standby_names=''"),
                "-w",
                "-t",
                "60",
                "start",
            ])
            .output()
            .map_err(fail)?;
        if out.status.success() {
            return Ok(());
        }
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(fail(format!(
        "the killed {} did not start on port {port}: {last}",
        node.name()
    )))
}

/// Stops the isolated old primary (its data directory is rebuilt next).
pub fn stop_isolated(world: &World, node: Node) -> Result<(), WorldError> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--", &pg_ctl()?, "-D"])
        .arg(datadir(world, node))
        .args(["-m", "immediate", "-w", "stop"])
        .output()
        .map_err(fail)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(String::from_utf8_lossy(&out.stderr)))
    }
}

/// An admin connection to the isolated old primary.
pub async fn connect_isolated(
    world: &World,
    port: u16,
    database: &str,
) -> Result<tokio_postgres::Client, WorldError> {
    let user = world
        .get("CUTOVER_REHEARSAL_ADMIN_USER")
        .unwrap_or("rehearsal_admin");
    let target = PgTarget::new(
        "old primary (isolated)",
        Endpoint {
            host: "localhost".into(),
            port,
        },
        database,
        user,
    );
    Ok(db::connect(
        &target,
        &world.admin_password()?,
        &world.tls(SslMode::VerifyFull)?,
        std::time::Duration::from_secs(5),
    )
    .await?)
}

/// The reconciliation between the isolated old primary and the new primary, over
/// `schemas` of the application database.
pub async fn reconcile_with(
    world: &World,
    port: u16,
    new: Node,
    schemas: &[String],
    fork_xid: u64,
    progress: &mut dyn FnMut(String),
) -> Result<Reconciliation, WorldError> {
    let old = reconcile::side("old primary", connect_isolated(world, port, "app").await?)
        .await
        .map_err(fail)?;
    let new = reconcile::side(new.name(), world.admin_db(new, "app").await?)
        .await
        .map_err(fail)?;
    reconcile::reconcile(&old, &new, schemas, fork_xid, progress)
        .await
        .map_err(fail)
}

/// The data-validator between the isolated old primary and `new` over `table`'s
/// keys below `below` (the old primary's key range: the rows it could have lost):
/// `(verdict, result)`.
pub async fn validate_old_range(
    world: &World,
    port: u16,
    new: Node,
    table: &TableRef,
    below: i64,
) -> Result<(&'static str, SegmentResult), WorldError> {
    let old = reconcile::side("old primary", connect_isolated(world, port, "app").await?)
        .await
        .map_err(fail)?;
    let new = reconcile::side(new.name(), world.admin_db(new, "app").await?)
        .await
        .map_err(fail)?;
    let (Some(o), Some(n)) = (
        describe(&old, table).await.map_err(fail)?,
        describe(&new, table).await.map_err(fail)?,
    ) else {
        return Err(fail(format!("{} is missing on a side", table.quoted())));
    };
    let (plan, _) = compare(table, &o, &n);
    let range = KeyRange {
        lo: None,
        hi: Some(below.to_string()),
    };
    let result = Pair::new(&old, &new, &plan)
        .compare_segment(&range, 0, &Options::default())
        .await
        .map_err(fail)?;
    let verdict = if result.mismatched() == 0 {
        "MATCH"
    } else {
        "MISMATCH"
    };
    Ok((verdict, result))
}
