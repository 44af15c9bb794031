//! Helpers for the failover function's tests and stage: its settings from the
//! world, and putting the failover records and endpoints back.

use cutover_core::reach::ReachRecord;
use cutover_core::state::{keys, now_ms, LagSample, StateStore};
use failover::config::FailoverConfig;
use failover::failover::state_key;

use cutover_core::db::DbAccess;

use crate::world::{Node, World, WorldError};

pub fn config(world: &World, overrides: &[(&str, &str)]) -> Result<FailoverConfig, WorldError> {
    let mut pairs: Vec<(String, String)> = world
        .env_pairs()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in overrides {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    FailoverConfig::from_vars(&cutover_core::config::Vars::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ))
    .map_err(|e| WorldError::Setup(format!("failover settings: {e}")))
}

/// Writes a String parameter (overwriting it).
pub async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) -> Result<(), WorldError> {
    failover::failover::put_string(ssm, name, value)
        .await
        .map_err(|e| {
            WorldError::Setup(format!(
                "SSM {name}: {}",
                cutover_core::error::describe_chain(&e)
            ))
        })
}

/// The writer endpoint SSM parameter (tests point it at a dead port to play a lost primary).
pub async fn set_writer_endpoint(world: &World, value: &str) -> Result<(), WorldError> {
    let ssm = world.aws().await?.ssm();
    let suffix = world.get("CUTOVER_SUFFIX")?;
    put(
        &ssm,
        &format!("/migration/db/{suffix}/writer-endpoint"),
        value,
    )
    .await
}

async fn store(world: &World) -> Result<StateStore, WorldError> {
    Ok(StateStore::new(
        world.aws().await?.dynamodb(),
        world.get("CUTOVER_STATE_TABLE")?.to_string(),
    ))
}

/// No failover record, no lease, no reachability record of any writer, us-east-1
/// the writer again in SSM.
pub async fn reset(world: &World) -> Result<(), WorldError> {
    let aws = world.aws().await?;
    let store = store(world).await?;
    store.delete(&state_key()).await?;
    store.delete(&keys::failover_lease()).await?;
    for writer in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
        let every = keys::reach_from_every_vantage(writer);
        for (key, _) in store
            .query_prefix::<serde_json::Value>(&every.pk, &every.sk)
            .await?
        {
            store.delete(&key).await?;
        }
    }
    let suffix = world.get("CUTOVER_SUFFIX")?;
    let ssm = aws.ssm();
    put(
        &ssm,
        &format!("/migration/db/{suffix}/writer-endpoint"),
        &format!("localhost:{}", world.port(Node::UsEast1)?),
    )
    .await?;
    put(
        &ssm,
        &format!("/migration/app/{suffix}/active-region"),
        "us-east-1",
    )
    .await
}

/// Writes a fresh lag sample for a region, as the lag-probe beside the writer
/// (us-east-1, the world's primary) would.
pub async fn put_lag(world: &World, region: &str, heartbeat_ms: f64) -> Result<(), WorldError> {
    let store = store(world).await?;
    store
        .put_latest(
            &keys::lag_from(region, "us-east-1"),
            &LagSample {
                region: region.into(),
                heartbeat_ms: Some(heartbeat_ms),
                heartbeat_is_lower_bound: false,
                engine_ms: None,
                taken_at_ms: cutover_core::state::now_ms(),
            },
        )
        .await?;
    Ok(())
}

/// Writes what the lag-probe in `vantage` saw of the writer in `writer`, taken
/// now: reachable, or failing for `unreachable_for` (tests that need a vantage
/// point the world cannot play, e.g. one that still reaches a writer this
/// process cannot).
pub async fn put_reach(
    world: &World,
    writer: &str,
    vantage: &str,
    unreachable_for: Option<std::time::Duration>,
) -> Result<(), WorldError> {
    let now = now_ms();
    let record = match unreachable_for {
        None => ReachRecord {
            writer_region: writer.into(),
            vantage: vantage.into(),
            reachable: true,
            consecutive_failures: 0,
            first_failure_at_ms: None,
            last_success_at_ms: Some(now),
            taken_at_ms: now,
            last_error: None,
        },
        Some(d) => ReachRecord {
            writer_region: writer.into(),
            vantage: vantage.into(),
            reachable: false,
            consecutive_failures: (d.as_secs() as u32).max(1),
            first_failure_at_ms: Some(now - d.as_millis() as u64),
            last_success_at_ms: None,
            taken_at_ms: now,
            last_error: Some("connection refused".into()),
        },
    };
    store(world)
        .await?
        .put_latest(&keys::reach(writer, vantage), &record)
        .await?;
    Ok(())
}

/// What the lag-probe in `vantage` last recorded of the writer in `writer`.
pub async fn reach(
    world: &World,
    writer: &str,
    vantage: &str,
) -> Result<Option<ReachRecord>, WorldError> {
    Ok(store(world)
        .await?
        .get::<ReachRecord>(&keys::reach(writer, vantage))
        .await?
        .map(|v| v.value))
}

/// The lag-probe as deployed in `vantage`: its own region is its vantage point;
/// `overrides` replace the world's settings (e.g. `CUTOVER_DB_SSM_PREFIX` for a
/// region's own copy of the parameters, see [`copy_db_parameters`]).
pub async fn lag_probe_in(
    world: &World,
    vantage: &str,
    overrides: &[(&str, &str)],
) -> Result<lag_probe::handler::Env, WorldError> {
    let mut pairs: Vec<(String, String)> = world
        .env_pairs()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [("CUTOVER_PRIMARY_REGION", vantage)]
        .iter()
        .chain(overrides)
    {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    let config =
        lag_probe::config::ProbeConfig::from_vars(&cutover_core::config::Vars::from_pairs(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
        .map_err(|e| WorldError::Setup(format!("lag-probe settings: {e}")))?;
    Ok(lag_probe::handler::Env::new(config, world.aws().await?))
}

/// Copies every database parameter (`/migration/db/<suffix>/…`) under `to`, as a
/// region's own copy of SSM would hold them (each region's functions read their
/// own region's SSM). Tests then change one copy to play what one region sees.
pub async fn copy_db_parameters(world: &World, to: &str) -> Result<(), WorldError> {
    let ssm = world.aws().await?.ssm();
    let from = format!("/migration/db/{}", world.get("CUTOVER_SUFFIX")?);
    let setup = |e: String| WorldError::Setup(format!("copying {from} to {to}: {e}"));
    let mut next: Option<String> = None;
    loop {
        let page = ssm
            .get_parameters_by_path()
            .path(&from)
            .recursive(true)
            .with_decryption(true)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| setup(cutover_core::error::describe_chain(&e)))?;
        for p in page.parameters() {
            let (Some(name), Some(value)) = (p.name(), p.value()) else {
                continue;
            };
            let Some(rest) = name.strip_prefix(&from) else {
                continue;
            };
            ssm.put_parameter()
                .name(format!("{to}{rest}"))
                .value(value)
                .set_type(p.r#type().cloned())
                .overwrite(true)
                .send()
                .await
                .map_err(|e| setup(cutover_core::error::describe_chain(&e)))?;
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_string()),
            _ => return Ok(()),
        }
    }
}

/// One write the application saw acknowledged: its number, when, and by which region.
#[derive(Debug, Clone)]
pub struct Ack {
    pub seq: i64,
    pub at: std::time::Instant,
    pub region: String,
}

/// A write the application sent and saw fail (an error, or no answer within 1 s): its
/// number, when, and the region it was sent to. Its row may still have been committed
/// there — a commit whose acknowledgement died with the server — and each number is sent
/// once only, so such a row names this attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub seq: i64,
    pub at: std::time::Instant,
    pub region: String,
    pub error: String,
}

/// What the application saw: its acknowledged writes and its failed attempts.
#[derive(Debug, Default)]
pub struct WriterLog {
    pub acks: Vec<Ack>,
    pub failed: Vec<Attempt>,
}

impl WriterLog {
    /// The acknowledged writes so far.
    pub fn acks(log: &std::sync::Mutex<WriterLog>) -> Vec<Ack> {
        log.lock().map(|l| l.acks.clone()).unwrap_or_default()
    }

    /// The failed attempts so far.
    pub fn failed(log: &std::sync::Mutex<WriterLog>) -> Vec<Attempt> {
        log.lock().map(|l| l.failed.clone()).unwrap_or_default()
    }
}

/// The application of the failover drills: numbered rows `(seq, region)`, one at a
/// time, into `table` on the writer that SSM (read through `ssm`, the application's
/// region) names, `pause` after each acknowledged one; every failed attempt is logged
/// with its number and region, and the next write takes the next number (a number is
/// never sent twice); on any error it reconnects, re-reading SSM. Runs until `stop`.
pub fn spawn_writer(
    world: World,
    ssm: aws_sdk_ssm::Client,
    table: &'static str,
    pause: std::time::Duration,
    log: std::sync::Arc<std::sync::Mutex<WriterLog>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    use std::time::{Duration, Instant};
    tokio::spawn(async move {
        let regions: std::collections::BTreeMap<u16, String> = Node::TARGETS
            .iter()
            .filter_map(|n| world.port(*n).ok().map(|p| (p, n.name().to_string())))
            .collect();
        let Ok(settings) = world.core_settings() else {
            return;
        };
        let Ok(access) = DbAccess::load_application(&settings.db, &ssm).await else {
            return;
        };
        let insert_sql = format!("INSERT INTO {table} (seq, region) VALUES ($1, $2)");
        let mut seq: i64 = 0;
        let mut conn: Option<(tokio_postgres::Client, String)> = None;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if conn.is_none() {
                let attempt = async {
                    let endpoint = access.writer_endpoint(&ssm).await.ok()?;
                    let region = regions.get(&endpoint.port).cloned().unwrap_or_default();
                    let target = access.target("writer", endpoint);
                    let c = tokio::time::timeout(Duration::from_secs(1), access.connect(&target))
                        .await
                        .ok()?
                        .ok()?;
                    Some((c, region))
                };
                conn = attempt.await;
                if conn.is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
            let Some((c, region)) = conn.as_ref() else {
                continue;
            };
            seq += 1;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&seq, region];
            let insert = c.execute(insert_sql.as_str(), &params);
            match tokio::time::timeout(Duration::from_secs(1), insert).await {
                Ok(Ok(_)) => {
                    if let Ok(mut l) = log.lock() {
                        l.acks.push(Ack {
                            seq,
                            at: Instant::now(),
                            region: region.clone(),
                        });
                    }
                    tokio::time::sleep(pause).await;
                }
                failed => {
                    let error = match failed {
                        Ok(Err(e)) => cutover_core::error::describe_chain(&e),
                        _ => "no answer within 1 s".to_string(),
                    };
                    if let Ok(mut l) = log.lock() {
                        l.failed.push(Attempt {
                            seq,
                            at: Instant::now(),
                            region: region.clone(),
                            error,
                        });
                    }
                    conn = None;
                }
            }
        }
    })
}
