//! Every function connects as its own database role (infra/sql/roles.sql, run by the
//! world as the runbook runs it against Aurora), granted what its code runs and no more.

#![allow(clippy::unwrap_used)]

use cutover_core::db::{self, DbAccess, SourceDsn};
use cutover_rehearsal::world::{Node, World};

const FUNCTIONS: [&str; 4] = ["data-validator", "lag-probe", "failover", "cutover"];

/// Where a test connects: the writer as SSM says now (a drill may have moved it), or a node.
#[derive(Clone, Copy)]
enum At {
    Writer,
    Node(Node),
}

async fn as_function(world: &World, function: &str, at: At) -> tokio_postgres::Client {
    let settings = world.core_settings().unwrap();
    let ssm = world.aws().await.unwrap().ssm();
    let access = DbAccess::load(&settings.db, &ssm, function)
        .await
        .unwrap_or_else(|e| panic!("{function}: {e}"));
    let (label, endpoint) = match at {
        At::Writer => ("writer", access.writer_endpoint(&ssm).await.unwrap()),
        At::Node(node) => (
            node.name(),
            format!("localhost:{}", world.port(node).unwrap())
                .parse()
                .unwrap(),
        ),
    };
    access
        .connect(&access.target(label, endpoint))
        .await
        .unwrap_or_else(|e| panic!("{function} on {label}: {e}"))
}

/// The SQLSTATE of a refused statement (42501: insufficient_privilege). Tried in a
/// transaction rolled back, so that a role granted too much leaves no trace in the world
/// (ALTER SYSTEM cannot run in one).
async fn refused(client: &tokio_postgres::Client, sql: &str) -> String {
    let batch = if sql.starts_with("ALTER SYSTEM") {
        sql.to_string()
    } else {
        format!("BEGIN; {sql}; ROLLBACK")
    };
    let result = client.batch_execute(&batch).await;
    client.batch_execute("ROLLBACK").await.unwrap();
    match result {
        Ok(()) => panic!("{sql} was allowed"),
        Err(e) => e.code().map(|c| c.code().to_string()).unwrap_or_default(),
    }
}

#[tokio::test]
async fn no_function_connects_as_the_master_or_the_application_user() {
    let world = World::load().expect("the local world is up");
    for function in FUNCTIONS {
        let c = as_function(&world, function, At::Writer).await;
        let user: String = c
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(user, format!("cutover_{}", function.replace('-', "_")));
    }
    // The source, too: the validator and the cutover read their DSNs.
    let settings = world.core_settings().unwrap();
    let ssm = world.aws().await.unwrap().ssm();
    for (name, user) in [
        ("source-dsn", "cutover_data_validator"),
        ("source-admin-dsn", "cutover_cutover"),
    ] {
        let dsn = db::secure_string(&ssm, &format!("{}/{name}", settings.db.ssm_prefix))
            .await
            .unwrap();
        let SourceDsn::Postgres { target, .. } = SourceDsn::parse(dsn.expose(), name).unwrap()
        else {
            panic!("{name} names PostgreSQL here")
        };
        assert_eq!(target.user, user, "{name}");
    }
}

#[tokio::test]
async fn a_function_without_its_own_user_is_told_which_parameter_is_missing() {
    let world = World::load().expect("the local world is up");
    let settings = world.core_settings().unwrap();
    let ssm = world.aws().await.unwrap().ssm();
    let err = DbAccess::load(&settings.db, &ssm, "traffic-shifter")
        .await
        .unwrap_err()
        .to_string();
    // Whichever of the two is asked first is named missing; the sentence names both.
    let prefix = &settings.db.ssm_prefix;
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        err.contains(&format!("{prefix}/users/traffic-shifter")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{prefix}/passwords/traffic-shifter")),
        "{err}"
    );
    assert!(err.contains("infra/sql/roles.sql"), "{err}");
}

#[tokio::test]
async fn the_validator_reads_and_cannot_write_on_either_side() {
    let world = World::load().expect("the local world is up");
    for (name, at) in [("writer", At::Writer), ("source", At::Node(Node::Source))] {
        let c = as_function(&world, "data-validator", at).await;
        let n: i64 = c
            .query_one("SELECT count(*) FROM app.customers", &[])
            .await
            .unwrap()
            .get(0);
        assert!(n > 0);
        for sql in [
            "INSERT INTO app.audit_log (event_time, actor, action) VALUES (now(), 'x', 'y')",
            "UPDATE app.customers SET name = name WHERE id = 1",
            "DELETE FROM app.order_items WHERE order_id = -1",
            "TRUNCATE app.audit_log",
            "CREATE TABLE app.validator_was_here (id int)",
        ] {
            assert_eq!(refused(&c, sql).await, "42501", "{name} {sql}");
        }
        assert_eq!(refused(&c, "SELECT pg_promote()").await, "42501", "{name}");
    }
}

#[tokio::test]
async fn the_lag_probe_touches_only_its_heartbeat() {
    let world = World::load().expect("the local world is up");
    let c = as_function(&world, "lag-probe", At::Writer).await;
    // Its heartbeat: written and read (in a transaction rolled back, so no sample moves).
    c.batch_execute(
        "BEGIN; INSERT INTO cutover.heartbeat (probe, seq) VALUES ('roles-test', 1) \
         ON CONFLICT (probe) DO UPDATE SET seq = excluded.seq; \
         SELECT seq FROM cutover.heartbeat WHERE probe = 'roles-test'; ROLLBACK",
    )
    .await
    .unwrap();
    for sql in [
        "SELECT 1 FROM app.customers LIMIT 1",
        "UPDATE app.customers SET name = name WHERE id = 1",
        "DELETE FROM cutover.heartbeat WHERE probe = 'roles-test'",
        "CREATE TABLE cutover.other (id int)",
        "CREATE SCHEMA lag_probe_was_here",
    ] {
        assert_eq!(refused(&c, sql).await, "42501", "{sql}");
    }
    // pg_monitor, for the engine's own lag: replay_lag is visible (NULL without it).
    let visible: bool = c
        .query_one(
            "SELECT count(*) > 0 FROM pg_stat_replication WHERE state IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(visible, "pg_stat_replication is readable in full");
}

#[tokio::test]
async fn the_failover_role_holds_the_promotion_rights_and_is_no_superuser() {
    let world = World::load().expect("the local world is up");
    // A standby, whichever the drills left streaming.
    let mut standby = None;
    for node in Node::TARGETS {
        let c = as_function(&world, "failover", At::Node(node)).await;
        let in_recovery: bool = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        if in_recovery {
            standby = Some(c);
            break;
        }
    }
    let c = standby.expect("a standby is streaming");
    let row = c
        .query_one(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                    has_function_privilege('pg_promote(boolean, integer)', 'EXECUTE'), \
                    has_function_privilege('pg_reload_conf()', 'EXECUTE'), \
                    has_parameter_privilege('default_transaction_read_only', 'ALTER SYSTEM'), \
                    has_parameter_privilege('primary_conninfo', 'ALTER SYSTEM'), \
                    current_setting('primary_conninfo') <> ''",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<bool> = (0..6).map(|i| row.get(i)).collect();
    assert_eq!(got, [false, true, true, true, true, true]);
    // Nothing beyond the two settings the fence and the re-pointing change.
    for sql in [
        "ALTER SYSTEM SET work_mem = '64MB'",
        "ALTER SYSTEM SET primary_slot_name = 'x'",
    ] {
        assert_eq!(refused(&c, sql).await, "42501", "{sql}");
    }
}
