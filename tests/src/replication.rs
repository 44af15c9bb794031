//! The first rehearsal stage: prove the world is alive and measure it.
//!
//! A row written on the source must reach the primary by logical replication
//! and both standbys by streaming replication. Each probe commits one row on
//! the source and polls every target node concurrently until the row is
//! visible; all times are taken on this process's monotonic clock, so no clock
//! synchronisation between servers is involved.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use crate::world::{Node, World, WorldError};

/// The probe table lives in its own schema so it never mixes with application data.
const PROBE_DDL: &str = "CREATE SCHEMA IF NOT EXISTS rehearsal; \
    CREATE TABLE IF NOT EXISTS rehearsal.replication_probe (\
    id bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp())";

#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub role: String,
    pub port: u16,
    pub in_recovery: bool,
    /// e.g. `TLSv1.3 TLS_AES_256_GCM_SHA384`, or `off`.
    pub tls: String,
    pub configured_delay_ms: u64,
    /// Median time from the source's commit to visibility on this node.
    pub from_source_ms: Option<f64>,
    /// Median time from visibility on the primary to visibility here (standbys).
    pub from_primary_ms: Option<f64>,
    pub samples: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicationReport {
    pub probes: usize,
    pub nodes: Vec<NodeReport>,
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

async fn tls_state(client: &tokio_postgres::Client) -> Result<String, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT ssl, coalesce(version, ''), coalesce(cipher, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    let on: bool = row.get(0);
    Ok(if on {
        format!("{} {}", row.get::<_, String>(1), row.get::<_, String>(2))
    } else {
        "off".to_string()
    })
}

/// Waits until the source→us-east-1 subscription (`cutover_sub`) has applied
/// everything the source had written when this is called: its slot's confirmed
/// position has passed the source's WAL position. Before dropping a replicated
/// table on the target, say: a change arriving for a table the target no longer
/// has stops the apply worker in an error loop.
pub async fn wait_for_cdc(
    source: &tokio_postgres::Client,
    within: Duration,
) -> Result<(), WorldError> {
    let deadline = Instant::now() + within;
    loop {
        let applied: bool = source
            .query_one(
                "SELECT confirmed_flush_lsn >= pg_current_wal_lsn() FROM pg_replication_slots \
                 WHERE slot_name = 'cutover_sub'",
                &[],
            )
            .await
            .map_err(|e| db_error(Node::Source, e))?
            .get(0);
        if applied {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(WorldError::Core(cutover_core::Error::Database {
                target: Node::Source.name().to_string(),
                message: format!("cutover_sub did not catch up within {within:?}"),
                retryable: false,
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn db_error(node: Node, e: tokio_postgres::Error) -> WorldError {
    WorldError::Core(cutover_core::Error::Database {
        target: node.name().to_string(),
        message: cutover_core::error::describe_chain(&e),
        retryable: false,
    })
}

/// Creates the probe table on the source and the primary and makes the
/// subscription pick it up; idempotent.
async fn ensure_probe_table(
    source: &tokio_postgres::Client,
    primary: &tokio_postgres::Client,
    standbys: &[(Node, &tokio_postgres::Client)],
) -> Result<(), WorldError> {
    source
        .batch_execute(PROBE_DDL)
        .await
        .map_err(|e| db_error(Node::Source, e))?;
    primary
        .batch_execute(PROBE_DDL)
        .await
        .map_err(|e| db_error(Node::UsEast1, e))?;
    let subscribed: i64 = primary
        .query_one(
            "SELECT count(*) FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'rehearsal' AND c.relname = 'replication_probe'",
            &[],
        )
        .await
        .map_err(|e| db_error(Node::UsEast1, e))?
        .get(0);
    if subscribed == 0 {
        primary
            .batch_execute(
                "ALTER SUBSCRIPTION cutover_sub REFRESH PUBLICATION WITH (copy_data = false)",
            )
            .await
            .map_err(|e| db_error(Node::UsEast1, e))?;
    }
    // The standbys replay the DDL after their apply delay.
    for node in [Node::EuWest1, Node::ApSoutheast1] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let exists: bool = standbys
                .iter()
                .find(|(n, _)| *n == node)
                .map(|(_, c)| c)
                .expect("both standbys are connected")
                .query_one(
                    "SELECT to_regclass('rehearsal.replication_probe') IS NOT NULL",
                    &[],
                )
                .await
                .map_err(|e| db_error(node, e))?
                .get(0);
            if exists {
                break;
            }
            if Instant::now() > deadline {
                return Err(WorldError::Malformed {
                    path: node.name().into(),
                    message: "the probe table never reached this standby".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The new table is ready once its sync state is 'r' (ready).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready: i64 = primary
            .query_one(
                "SELECT count(*) FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid \
                 WHERE c.relname = 'replication_probe' AND r.srsubstate = 'r'",
                &[],
            )
            .await
            .map_err(|e| db_error(Node::UsEast1, e))?
            .get(0);
        if ready > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(WorldError::Malformed {
                path: "subscription cutover_sub".into(),
                message: "the probe table did not reach the ready state within 30 s".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls one node until the probe row is visible; returns the elapsed time.
async fn wait_visible(
    client: &tokio_postgres::Client,
    node: Node,
    id: i64,
    start: Instant,
    timeout: Duration,
) -> Result<Option<f64>, WorldError> {
    let statement = client
        .prepare("SELECT 1 FROM rehearsal.replication_probe WHERE id = $1")
        .await
        .map_err(|e| db_error(node, e))?;
    loop {
        let found = client
            .query_opt(&statement, &[&id])
            .await
            .map_err(|e| db_error(node, e))?;
        let elapsed = start.elapsed();
        if found.is_some() {
            return Ok(Some(elapsed.as_secs_f64() * 1000.0));
        }
        if elapsed > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs `probes` probes and reports every node. `progress` receives one line per probe.
pub async fn measure(
    world: &World,
    probes: usize,
    mut progress: impl FnMut(String),
) -> Result<ReplicationReport, WorldError> {
    let clients = join_all(Node::ALL.iter().map(|n| world.admin(*n))).await;
    let mut connected = Vec::new();
    for (node, client) in Node::ALL.iter().zip(clients) {
        connected.push((*node, client?));
    }
    let client = |node: Node| {
        &connected
            .iter()
            .find(|(n, _)| *n == node)
            .expect("every node connected")
            .1
    };

    ensure_probe_table(
        client(Node::Source),
        client(Node::UsEast1),
        &[
            (Node::EuWest1, client(Node::EuWest1)),
            (Node::ApSoutheast1, client(Node::ApSoutheast1)),
        ],
    )
    .await?;

    let base: i64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let mut from_source: Vec<Vec<f64>> = vec![Vec::new(); Node::TARGETS.len()];
    let mut from_primary: Vec<Vec<f64>> = vec![Vec::new(); Node::TARGETS.len()];
    let timeout = Duration::from_secs(30);
    for probe in 0..probes {
        let id = base + probe as i64;
        client(Node::Source)
            .execute(
                "INSERT INTO rehearsal.replication_probe (id) VALUES ($1)",
                &[&id],
            )
            .await
            .map_err(|e| db_error(Node::Source, e))?;
        // The commit is acknowledged: start the clock.
        let start = Instant::now();
        let seen = join_all(
            Node::TARGETS
                .iter()
                .map(|node| wait_visible(client(*node), *node, id, start, timeout)),
        )
        .await;
        let mut line = format!("probe {}/{probes}:", probe + 1);
        let mut primary_ms = None;
        for (i, (node, ms)) in Node::TARGETS.iter().zip(seen).enumerate() {
            let ms = ms?;
            match ms {
                Some(ms) => {
                    from_source[i].push(ms);
                    if *node == Node::UsEast1 {
                        primary_ms = Some(ms);
                    } else if let Some(p) = primary_ms {
                        from_primary[i].push(ms - p);
                    }
                    line.push_str(&format!(" {node} {ms:.1} ms"));
                }
                None => line.push_str(&format!(" {node} not seen within {} s", timeout.as_secs())),
            }
        }
        progress(line);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Leave nothing behind on the source (the delete replicates too).
    client(Node::Source)
        .execute(
            "DELETE FROM rehearsal.replication_probe WHERE id >= $1",
            &[&base],
        )
        .await
        .map_err(|e| db_error(Node::Source, e))?;

    let mut nodes = Vec::new();
    for node in Node::ALL {
        let c = client(node);
        let in_recovery: bool = c
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| db_error(node, e))?
            .get(0);
        let tls = tls_state(c).await.map_err(|e| db_error(node, e))?;
        let index = Node::TARGETS.iter().position(|n| *n == node);
        let (src, prim, samples) = match index {
            Some(i) => {
                let samples = from_source[i].len();
                (
                    median(&mut from_source[i]),
                    median(&mut from_primary[i]),
                    samples,
                )
            }
            None => (None, None, 0),
        };
        nodes.push(NodeReport {
            node: node.name().to_string(),
            role: node.role().to_string(),
            port: world.port(node)?,
            in_recovery,
            tls,
            configured_delay_ms: world.configured_delay_ms(node),
            from_source_ms: src,
            from_primary_ms: prim,
            samples,
        });
    }
    Ok(ReplicationReport { probes, nodes })
}

/// The terminal table of the stage.
pub fn render(report: &ReplicationReport) -> String {
    let fmt_ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let mut out = format!(
        "{:<15} {:<38} {:>6} {:<24} {:>10} {:>12} {:>13}\n",
        "region/node", "role", "port", "TLS", "delay cfg", "src->node ms", "prim->node ms"
    );
    for n in &report.nodes {
        out.push_str(&format!(
            "{:<15} {:<38} {:>6} {:<24} {:>10} {:>12} {:>13}\n",
            n.node,
            n.role,
            n.port,
            n.tls.chars().take(24).collect::<String>(),
            if n.node == "source" || n.node == "us-east-1" {
                "-".to_string()
            } else {
                format!("{} ms", n.configured_delay_ms)
            },
            fmt_ms(n.from_source_ms),
            fmt_ms(n.from_primary_ms),
        ));
    }
    out
}

/// Whether each standby's measured delay matches its configured one:
/// within max(25 ms, 10 %) above the configured delay, never below it.
pub fn delays_match(report: &ReplicationReport) -> Vec<(String, bool)> {
    report
        .nodes
        .iter()
        .filter(|n| n.node == "eu-west-1" || n.node == "ap-southeast-1")
        .map(|n| {
            let configured = n.configured_delay_ms as f64;
            let tolerance = (configured * 0.10).max(25.0);
            let ok = n
                .from_primary_ms
                .is_some_and(|m| m >= configured - 10.0 && m <= configured + tolerance);
            (n.node.clone(), ok)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_sets() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    fn report(eu: Option<f64>) -> ReplicationReport {
        ReplicationReport {
            probes: 1,
            nodes: vec![NodeReport {
                node: "eu-west-1".into(),
                role: "streaming standby".into(),
                port: 1,
                in_recovery: true,
                tls: "TLSv1.3".into(),
                configured_delay_ms: 200,
                from_source_ms: None,
                from_primary_ms: eu,
                samples: 1,
            }],
        }
    }

    #[test]
    fn delays_match_within_tolerance_only() {
        assert!(delays_match(&report(Some(210.0)))[0].1);
        assert!(!delays_match(&report(Some(150.0)))[0].1);
        assert!(!delays_match(&report(Some(260.0)))[0].1);
        assert!(!delays_match(&report(None))[0].1);
    }
}
