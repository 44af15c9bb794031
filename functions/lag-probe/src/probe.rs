//! One probing window: a heartbeat written to the primary every cadence, each
//! secondary watched by its own task until it shows it, engine figures beside
//! them, and everything published as it comes.
//!
//! Every region has its own connection and its own task, so a slow or
//! unreachable region costs the others nothing. Polls of one reader are
//! pipelined on its connection (several in flight), so even a reader far away
//! can be polled every few milliseconds: a poll's round trip does not limit the
//! resolution, only the poll step does.
//!
//! What this vantage point saw of the writer is kept as a reachability record
//! (`REACH#<writer>` / `FROM#<vantage>`): every heartbeat write is an attempt, a
//! write that errs or times out — or a window whose first connection fails — a
//! failure. The record continues the previous window's streak, is written at
//! every change and every failure, otherwise with the flush, and at the end.
//! The first failed attempt on the writer also flushes the lag samples taken
//! up to it: they are the last before a loss, and the failover reads them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::StandardUnit;
use cutover_core::db::{DbAccess, PgTarget};
use cutover_core::metrics::{Metric, MetricsPublisher};
use cutover_core::reach::{ReachRecord, ReachTracker};
use cutover_core::state::{keys, now_ms, LagSample, StateStore};
use futures::stream::{FuturesOrdered, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, MissedTickBehavior};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use crate::config::{quote, TableName};
use crate::engine::{self, EngineMode};
use crate::poll::{Expectation, Heartbeat, Observation, PollPlan, Resolver};
use crate::stats::{round2, Summary};
use crate::LagError;

/// At most this many polls of one reader in flight at once.
const MAX_IN_FLIGHT: usize = 64;

/// Where the primary and the secondaries are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub primary_region: String,
    pub primary: PgTarget,
    /// (region, reader) for every secondary.
    pub readers: Vec<(String, PgTarget)>,
}

/// How one window runs.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub window: Duration,
    pub cadence: Duration,
    pub poll_timeout: Duration,
    pub heartbeat_table: TableName,
    pub probe_id: String,
    pub engine: EngineMode,
    pub disagreement_ms: f64,
    pub flush_every: Duration,
    pub plan: PollPlan,
    /// How long after the window heartbeats still in flight are waited for.
    pub settle: Duration,
}

/// Where results go as they come; either may be absent (tests, benchmarks).
/// DynamoDB items (lag samples, the reachability record) are keyed by
/// `vantage`, the region this probe runs in, and written only when it is set.
#[derive(Clone, Default)]
pub struct Sinks {
    pub metrics: Option<MetricsPublisher>,
    pub state: Option<StateStore>,
    pub vantage: Option<String>,
}

/// One point of the report's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub at_ms: u64,
    pub region: String,
    /// heartbeat | engine | replay-age
    pub source: &'static str,
    pub lag_ms: Option<f64>,
    pub resolution_ms: Option<f64>,
    /// ok | unreachable | not-yet-visible (lag_ms is then a lower bound)
    pub status: &'static str,
}

/// What happened in one region during the window.
#[derive(Debug, Clone, Serialize)]
pub struct RegionReport {
    pub region: String,
    pub heartbeat: Summary,
    pub engine: Summary,
    pub replay_age: Summary,
    pub resolution_p50_ms: Option<f64>,
    pub resolution_max_ms: Option<f64>,
    /// Heartbeats this region could not be asked about (unreachable).
    pub unreachable: usize,
    /// Heartbeats still not visible when the window ended, and the longest wait.
    pub not_yet_visible: usize,
    pub longest_wait_ms: Option<f64>,
    pub polls: u64,
    /// Heartbeat and engine figures differ by more than the configured margin.
    pub disagreement: bool,
}

/// The probe's own footprint on the primary.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeLoad {
    pub heartbeat_writes: u64,
    pub writes_per_s: f64,
    pub write_failures: u64,
    /// Connections the probe holds: one to the primary, one per secondary.
    pub connections: usize,
    pub polls_per_s_per_region: f64,
    pub write_ack: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub primary_region: String,
    pub engine: String,
    pub regions: Vec<RegionReport>,
    pub load: ProbeLoad,
    pub metrics_published: usize,
    pub publish_errors: usize,
    /// What this vantage point saw of the writer, as last recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_reach: Option<ReachRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelinePoint>,
}

/// What the tasks tell the collector.
#[derive(Debug)]
enum Event {
    Seen {
        region: String,
        at_ms: u64,
        lag_ms: f64,
        resolution_ms: f64,
        replay_age_ms: Option<f64>,
    },
    Unreachable {
        region: String,
        at_ms: u64,
        heartbeats: usize,
    },
    NotYetVisible {
        region: String,
        at_ms: u64,
        waited_ms: f64,
    },
    Engine {
        region: String,
        at_ms: u64,
        lag_ms: f64,
    },
    /// The reachability record is due to be written.
    Reach(ReachRecord),
}

fn at_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The heartbeat table's DDL, as the error for a missing table quotes it.
pub fn heartbeat_ddl(table: &TableName, user: &str) -> String {
    let t = table.quoted();
    let s = table.quoted_schema();
    let u = quote(user);
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s}; \
         CREATE TABLE IF NOT EXISTS {t} (probe text PRIMARY KEY, seq bigint NOT NULL, \
         written_at timestamptz NOT NULL DEFAULT now()); \
         GRANT USAGE ON SCHEMA {s} TO {u}; GRANT SELECT, INSERT, UPDATE ON {t} TO {u}; \
         GRANT pg_monitor TO {u} -- only for the engine-reported lag"
    )
}

fn db_error(target: &str, e: &tokio_postgres::Error) -> LagError {
    LagError::Core(cutover_core::Error::Database {
        target: target.to_string(),
        message: cutover_core::error::describe_chain(e),
        retryable: true,
    })
}

/// Makes sure the heartbeat table exists on the primary, creating it if allowed.
pub async fn ensure_heartbeat_table(
    client: &Client,
    table: &TableName,
    user: &str,
) -> Result<(), LagError> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table.quoted()])
        .await
        .map_err(|e| db_error("primary", &e))?
        .get(0);
    if exists {
        return Ok(());
    }
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {} \
         (probe text PRIMARY KEY, seq bigint NOT NULL, written_at timestamptz NOT NULL DEFAULT now())",
        table.quoted_schema(),
        table.quoted()
    );
    client.batch_execute(&ddl).await.map_err(|e| {
        LagError::HeartbeatTable(format!(
            "the heartbeat table {table} does not exist and could not be created ({}); \
             create it on the primary as its owner: {}",
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string()),
            heartbeat_ddl(table, user)
        ))
    })
}

fn heartbeat_sql(table: &TableName) -> String {
    let t = table.quoted();
    format!(
        "INSERT INTO {t} AS h (probe, seq, written_at) VALUES ($1, 1, now()) \
         ON CONFLICT (probe) DO UPDATE SET seq = h.seq + 1, written_at = now() RETURNING seq"
    )
}

fn poll_sql(table: &TableName) -> String {
    format!(
        "SELECT seq, {} FROM {} WHERE probe = $1",
        engine::REPLAY_AGE_EXPR,
        table.quoted()
    )
}

/// Runs one window. `deadline` is when the Lambda stops the process.
pub async fn run(
    access: &DbAccess,
    endpoints: &Endpoints,
    settings: &ProbeSettings,
    sinks: &Sinks,
    deadline: Option<Instant>,
    keep_timeline: bool,
) -> Result<ProbeReport, LagError> {
    let started = Instant::now();
    let started_wall = now_ms();
    // Stop early enough to settle, publish and answer before the deadline.
    let mut end = started + settings.window;
    let mut settle_until = end + settings.settle;
    if let Some(d) = deadline {
        let margin = settings.poll_timeout + Duration::from_secs(2);
        let last = d.checked_sub(margin).unwrap_or(started);
        settle_until = settle_until.min(last);
        end = end.min(last);
    }

    // The primary first: without a heartbeat table there is nothing to measure.
    // A first connection that fails is still a failure of this vantage point.
    let mut reach = reach_tracker(sinks, &endpoints.primary_region, settings).await;
    let primary = match access.connect(&endpoints.primary).await {
        Ok(c) => c,
        Err(e) => {
            let at_ms = now_ms();
            let failed = reach
                .as_mut()
                .and_then(|t| t.failure(at_ms, &e.to_string()));
            if let (Some(record), Some(store)) = (failed, &sinks.state) {
                write_reach(store, &record).await;
            }
            // Missing data would read as "nothing wrong" to an alarm: say it.
            if let Some(metrics) = &sinks.metrics {
                let point = Metric::new("RegionUnreachable", 1.0, StandardUnit::Count)
                    .dimension("Region", endpoints.primary_region.as_str())
                    .at(at_time(at_ms))
                    .high_resolution();
                let mut points = vec![point];
                if let Some(vantage) = &sinks.vantage {
                    points.push(writer_unreachable(vantage, at_ms));
                }
                if let Err(m) = metrics.publish(&points).await {
                    tracing::warn!(error = %m, "publishing RegionUnreachable failed");
                }
            }
            return Err(e.into());
        }
    };
    ensure_heartbeat_table(&primary, &settings.heartbeat_table, &access.user).await?;
    let engine_mode = match settings.engine {
        EngineMode::Auto => {
            let aurora: bool = primary
                .query_one(engine::DETECT_AURORA, &[])
                .await
                .map_err(|e| db_error(&endpoints.primary.label, &e))?
                .get(0);
            if aurora {
                EngineMode::Aurora
            } else {
                EngineMode::Postgres
            }
        }
        other => other,
    };

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(
        events_rx,
        sinks.clone(),
        settings.flush_every,
        keep_timeline,
    ));

    let mut senders = Vec::new();
    let mut watchers = Vec::new();
    for (region, target) in &endpoints.readers {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        watchers.push(tokio::spawn(watch(
            region.clone(),
            target.clone(),
            access.clone(),
            poll_sql(&settings.heartbeat_table),
            settings.probe_id.clone(),
            rx,
            settings.plan,
            settings.poll_timeout,
            settle_until,
            events_tx.clone(),
        )));
    }

    let writes = write_heartbeats(
        primary,
        access,
        endpoints,
        settings,
        engine_mode,
        end,
        &senders,
        &events_tx,
        reach,
    )
    .await;
    drop(senders);
    let mut polls = BTreeMap::new();
    for (w, (region, _)) in watchers.into_iter().zip(&endpoints.readers) {
        let n = w
            .await
            .map_err(|e| LagError::Internal(format!("watcher {region}: {e}")))?;
        polls.insert(region.clone(), n);
    }
    drop(events_tx);
    let collected = collector
        .await
        .map_err(|e| LagError::Internal(format!("collector: {e}")))?;

    let elapsed = started.elapsed();
    let window_s = (end.saturating_duration_since(started))
        .as_secs_f64()
        .max(0.001);
    let mut regions = Vec::new();
    for (region, _) in &endpoints.readers {
        let data = collected.regions.get(region).cloned().unwrap_or_default();
        let heartbeat = Summary::of(&data.lags);
        let engine = Summary::of(&data.engine);
        let disagreement = match (heartbeat.p50_ms, engine.p50_ms) {
            (Some(h), Some(e)) => engine::disagree(h, e, settings.disagreement_ms),
            _ => false,
        };
        if disagreement {
            tracing::warn!(
                region = %region,
                heartbeat_p50_ms = heartbeat.p50_ms,
                engine_p50_ms = engine.p50_ms,
                "heartbeat and engine-reported lag disagree"
            );
        }
        let resolution = Summary::of(&data.resolutions);
        regions.push(RegionReport {
            region: region.clone(),
            heartbeat,
            engine,
            replay_age: Summary::of(&data.replay_age),
            resolution_p50_ms: resolution.p50_ms,
            resolution_max_ms: resolution.max_ms,
            unreachable: data.unreachable,
            not_yet_visible: data.waits.len(),
            longest_wait_ms: data.waits.iter().copied().reduce(f64::max).map(round2),
            polls: polls.get(region).copied().unwrap_or(0),
            disagreement,
        });
    }
    let total_polls: u64 = polls.values().sum();
    Ok(ProbeReport {
        started_at_ms: started_wall,
        duration_ms: elapsed.as_millis() as u64,
        primary_region: endpoints.primary_region.clone(),
        engine: format!("{engine_mode:?}").to_lowercase(),
        load: ProbeLoad {
            heartbeat_writes: writes.ok,
            writes_per_s: round2(writes.ok as f64 / window_s),
            write_failures: writes.failed,
            connections: 1 + endpoints.readers.len(),
            polls_per_s_per_region: round2(
                total_polls as f64
                    / elapsed.as_secs_f64().max(0.001)
                    / endpoints.readers.len().max(1) as f64,
            ),
            write_ack: Summary::of(&writes.ack_ms),
        },
        regions,
        metrics_published: collected.published,
        publish_errors: collected.publish_errors,
        writer_reach: writes.reach,
        timeline: collected.timeline,
    })
}

struct Writes {
    ok: u64,
    failed: u64,
    ack_ms: Vec<f64>,
    /// The reachability record as the window left it.
    reach: Option<ReachRecord>,
}

/// The reachability record of this window, continuing the stored one (a streak
/// goes on across windows less than three flushes apart); `None` without a
/// store or a vantage.
async fn reach_tracker(
    sinks: &Sinks,
    writer: &str,
    settings: &ProbeSettings,
) -> Option<ReachTracker> {
    let (store, vantage) = (sinks.state.as_ref()?, sinks.vantage.as_ref()?);
    let previous = match store
        .get::<ReachRecord>(&keys::reach(writer, vantage))
        .await
    {
        Ok(found) => found.map(|v| v.value),
        Err(e) => {
            tracing::warn!(error = %e, "reading the previous reachability record failed; a new streak starts");
            None
        }
    };
    Some(ReachTracker::start(
        writer,
        vantage,
        previous,
        now_ms(),
        settings.flush_every * 3,
        settings.flush_every,
    ))
}

/// One failed attempt on the writer, whichever region writes, as `vantage` saw
/// it: `WriterUnreachable` (dimension `Vantage`), high resolution, published at
/// once. Each region's `writer-unreachable` alarm (10-second periods) is the
/// failover's fast trigger; the decision itself waits for the grace period and
/// the other vantage points.
fn writer_unreachable(vantage: &str, at_ms: u64) -> Metric {
    Metric::new("WriterUnreachable", 1.0, StandardUnit::Count)
        .dimension("Vantage", vantage)
        .at(at_time(at_ms))
        .high_resolution()
}

/// Writes the record; false (and a warning) when DynamoDB refused.
async fn write_reach(store: &StateStore, record: &ReachRecord) -> bool {
    let key = keys::reach(&record.writer_region, &record.vantage);
    match store.put_latest(&key, record).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "writing the reachability record failed");
            false
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_heartbeats(
    primary: Client,
    access: &DbAccess,
    endpoints: &Endpoints,
    settings: &ProbeSettings,
    engine_mode: EngineMode,
    end: Instant,
    senders: &[mpsc::UnboundedSender<Heartbeat>],
    events: &mpsc::UnboundedSender<Event>,
    mut reach: Option<ReachTracker>,
) -> Writes {
    let mut attempt = |outcome: Result<(), String>| {
        let at = now_ms();
        let due = reach.as_mut().and_then(|t| match &outcome {
            Ok(()) => t.success(at),
            Err(e) => t.failure(at, e),
        });
        if let Some(record) = due {
            let _ = events.send(Event::Reach(record));
        }
    };
    let sql = heartbeat_sql(&settings.heartbeat_table);
    let lag_sql = engine::lag_query(engine_mode);
    let primary_region = &endpoints.primary_region;
    let mut writes = Writes {
        ok: 0,
        failed: 0,
        ack_ms: Vec::new(),
        reach: None,
    };
    let mut client = Some(primary);
    let mut tick = tokio::time::interval(settings.cadence);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        let mut refused = None;
        if client.is_none() {
            match timeout(settings.poll_timeout, access.connect(&endpoints.primary)).await {
                Ok(Ok(c)) => client = Some(c),
                Ok(Err(e)) => refused = Some(e.to_string()),
                Err(_) => {
                    refused = Some(format!(
                        "no connection within {} ms",
                        settings.poll_timeout.as_millis()
                    ))
                }
            }
        }
        let Some(c) = client.as_ref() else {
            attempt(Err(
                refused.unwrap_or_else(|| "no connection to the writer".to_string())
            ));
            writes.failed += 1;
            let _ = events.send(Event::Unreachable {
                region: primary_region.clone(),
                at_ms: now_ms(),
                heartbeats: 1,
            });
            continue;
        };
        let sent = Instant::now();
        match timeout(
            settings.poll_timeout,
            c.query_one(&sql, &[&settings.probe_id]),
        )
        .await
        {
            Ok(Ok(row)) => {
                let acked = Instant::now();
                attempt(Ok(()));
                let heartbeat = Heartbeat {
                    seq: row.get(0),
                    acked,
                    acked_wall_ms: now_ms(),
                };
                for tx in senders {
                    let _ = tx.send(heartbeat);
                }
                writes.ok += 1;
                writes.ack_ms.push((acked - sent).as_secs_f64() * 1000.0);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %cutover_core::error::describe_chain(&e), "heartbeat write failed");
                attempt(Err(cutover_core::error::describe_chain(&e)));
                writes.failed += 1;
                client = None;
                let _ = events.send(Event::Unreachable {
                    region: primary_region.clone(),
                    at_ms: now_ms(),
                    heartbeats: 1,
                });
                continue;
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = settings.poll_timeout.as_millis() as u64,
                    "heartbeat write timed out"
                );
                attempt(Err(format!(
                    "no answer within {} ms",
                    settings.poll_timeout.as_millis()
                )));
                writes.failed += 1;
                client = None;
                let _ = events.send(Event::Unreachable {
                    region: primary_region.clone(),
                    at_ms: now_ms(),
                    heartbeats: 1,
                });
                continue;
            }
        }
        if let (Some(q), Some(c)) = (lag_sql, client.as_ref()) {
            if let Ok(Ok(rows)) = timeout(settings.poll_timeout, c.query(q, &[])).await {
                let at_ms = now_ms();
                for row in rows {
                    let region: String = row.get(0);
                    let lag: Option<f64> = row.get(1);
                    if let Some(lag_ms) = lag {
                        let _ = events.send(Event::Engine {
                            region,
                            at_ms,
                            lag_ms,
                        });
                    }
                }
            }
        }
    }
    // The record as the window leaves it (successes since the last write included).
    writes.reach = reach.as_ref().and_then(ReachTracker::current);
    if let Some(record) = &writes.reach {
        let _ = events.send(Event::Reach(record.clone()));
    }
    writes
}

type PollResult = (
    Instant,
    Instant,
    Result<Result<Option<tokio_postgres::Row>, tokio_postgres::Error>, tokio::time::error::Elapsed>,
);

async fn open_reader(
    access: &DbAccess,
    target: &PgTarget,
    sql: &str,
    limit: Duration,
) -> Option<(Arc<Client>, Statement)> {
    let attempt = async {
        let client = access.connect(target).await.ok()?;
        let statement = client.prepare(sql).await.ok();
        Some((Arc::new(client), statement))
    };
    match timeout(limit, attempt).await {
        Ok(Some((client, Some(statement)))) => Some((client, statement)),
        // Connected but the table is not there yet (just created on the primary):
        // reachable, nothing visible; prepare again on the next heartbeat.
        _ => None,
    }
}

/// Watches one secondary until the window is over; returns how many polls it made.
#[allow(clippy::too_many_arguments)]
async fn watch(
    region: String,
    target: PgTarget,
    access: DbAccess,
    sql: String,
    probe_id: String,
    mut heartbeats: mpsc::UnboundedReceiver<Heartbeat>,
    plan: PollPlan,
    poll_timeout: Duration,
    stop_at: Instant,
    events: mpsc::UnboundedSender<Event>,
) -> u64 {
    let probe_id = Arc::new(probe_id);
    let mut reader = open_reader(&access, &target, &sql, poll_timeout).await;
    let mut resolver = Resolver::default();
    let mut expectation = Expectation::default();
    let mut inflight: FuturesOrdered<futures::future::BoxFuture<'static, PollResult>> =
        FuturesOrdered::new();
    let mut polls = 0u64;
    let mut front: Option<i64> = None;
    let mut dense_from = Instant::now();
    let mut next_at: Option<Instant> = None;
    let mut open = true;

    let unreachable = |resolver: &mut Resolver, events: &mpsc::UnboundedSender<Event>| {
        let dropped = resolver.abandon(Instant::now());
        let _ = events.send(Event::Unreachable {
            region: region.clone(),
            at_ms: now_ms(),
            heartbeats: dropped.len().max(1),
        });
    };

    loop {
        let current = resolver.front().copied();
        if current.map(|h| h.seq) != front {
            front = current.map(|h| h.seq);
            next_at = current.map(|h| {
                dense_from = plan.first_poll(&h, expectation.expected_ms());
                plan.first_after_ack(h.acked, dense_from)
            });
        }
        if !open && resolver.is_idle() && inflight.is_empty() {
            break;
        }
        let can_launch = reader.is_some() && next_at.is_some() && inflight.len() < MAX_IN_FLIGHT;
        let launch_at = next_at.unwrap_or(stop_at);
        tokio::select! {
            biased;
            _ = sleep_until(stop_at.into()) => break,
            Some((sent, received, result)) = inflight.next(), if !inflight.is_empty() => {
                let outcome = match result {
                    Ok(Ok(row)) => Ok(row.map_or((0, None), |r| (r.get::<_, i64>(0), r.get::<_, Option<f64>>(1)))),
                    Ok(Err(e)) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok((0, None)),
                    Ok(Err(e)) => Err(cutover_core::error::describe_chain(&e)),
                    Err(_) => Err(format!("no answer within {} ms", poll_timeout.as_millis())),
                };
                match outcome {
                    Ok((seen, replay_age_ms)) => {
                        for m in resolver.observe(Observation { sent, received, seen }) {
                            expectation.record(m.lag_ms);
                            let _ = events.send(Event::Seen {
                                region: region.clone(),
                                at_ms: m.acked_wall_ms,
                                lag_ms: m.lag_ms,
                                resolution_ms: m.resolution_ms,
                                replay_age_ms,
                            });
                        }
                    }
                    Err(message) => {
                        tracing::warn!(region = %region, error = %message, "reader poll failed; region unreachable");
                        inflight = FuturesOrdered::new();
                        reader = None;
                        expectation.forget();
                        unreachable(&mut resolver, &events);
                    }
                }
            }
            message = heartbeats.recv(), if open => match message {
                Some(heartbeat) => {
                    if reader.is_none() {
                        reader = open_reader(&access, &target, &sql, poll_timeout).await;
                    }
                    if reader.is_some() {
                        resolver.push(heartbeat);
                    } else {
                        let _ = events.send(Event::Unreachable {
                            region: region.clone(),
                            at_ms: heartbeat.acked_wall_ms,
                            heartbeats: 1,
                        });
                    }
                }
                None => open = false,
            },
            _ = sleep_until(launch_at.into()), if can_launch => {
                if let Some((client, statement)) = reader.clone() {
                    let id = probe_id.clone();
                    inflight.push_back(Box::pin(async move {
                        let sent = Instant::now();
                        let result = timeout(poll_timeout, client.query_opt(&statement, &[&*id])).await;
                        (sent, Instant::now(), result)
                    }));
                    polls += 1;
                    let now = Instant::now();
                    let acked = resolver.front().map_or(now, |h| h.acked);
                    next_at = Some(plan.next_after(now, acked, dense_from));
                }
            }
        }
    }
    for (heartbeat, waited_ms) in resolver.abandon(Instant::now()) {
        let _ = events.send(Event::NotYetVisible {
            region: region.clone(),
            at_ms: heartbeat.acked_wall_ms,
            waited_ms,
        });
    }
    polls
}

#[derive(Debug, Clone, Default)]
struct RegionData {
    lags: Vec<f64>,
    resolutions: Vec<f64>,
    replay_age: Vec<f64>,
    engine: Vec<f64>,
    unreachable: usize,
    waits: Vec<f64>,
    /// For the DynamoDB latest sample.
    /// (taken at, lag, the lag is only a lower bound)
    last_heartbeat: Option<(u64, Option<f64>, bool)>,
    last_engine: Option<f64>,
    dirty: bool,
}

struct Collected {
    regions: BTreeMap<String, RegionData>,
    timeline: Vec<TimelinePoint>,
    published: usize,
    publish_errors: usize,
}

async fn collect(
    mut events: mpsc::UnboundedReceiver<Event>,
    sinks: Sinks,
    flush_every: Duration,
    keep_timeline: bool,
) -> Collected {
    let mut out = Collected {
        regions: BTreeMap::new(),
        timeline: Vec::new(),
        published: 0,
        publish_errors: 0,
    };
    let mut pending: Vec<Metric> = Vec::new();
    // The writer was reachable at its last attempt: its first failure flushes.
    let mut writer_was_reachable = true;
    let mut flush = tokio::time::interval(flush_every);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    flush.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => {
                match event {
                    None => break,
                    Some(Event::Reach(r)) => {
                        // At once: the other regions' failover functions read it.
                        if let Some(store) = &sinks.state {
                            if !write_reach(store, &r).await {
                                out.publish_errors += 1;
                            }
                        }
                        // And the failed attempt at once, for this region's fast alarm.
                        if !r.reachable {
                            if let Some(metrics) = &sinks.metrics {
                                if metrics.publish(&[writer_unreachable(&r.vantage, r.taken_at_ms)]).await.is_err() {
                                    out.publish_errors += 1;
                                }
                            }
                        }
                        // The first failure flushes what was measured up to it: if the
                        // writer is gone, these are the last samples anyone will take,
                        // and the failover's loss estimate must not wait for the next
                        // flush (up to `flush_every` older).
                        if writer_was_reachable && !r.reachable {
                            publish(&sinks, &mut out, &mut pending).await;
                        }
                        writer_was_reachable = r.reachable;
                    }
                    Some(event) => record(&mut out, &mut pending, event, keep_timeline),
                }
            }
            _ = flush.tick() => publish(&sinks, &mut out, &mut pending).await,
        }
    }
    publish(&sinks, &mut out, &mut pending).await;
    out
}

fn lag_metric(region: &str, source: &str, at_ms: u64, lag_ms: f64) -> Metric {
    Metric::new("ReplicationLagMs", lag_ms, StandardUnit::Milliseconds)
        .dimension("Region", region)
        .dimension("Source", source)
        .at(at_time(at_ms))
        .high_resolution()
}

fn record(out: &mut Collected, pending: &mut Vec<Metric>, event: Event, keep_timeline: bool) {
    let mut point = |region: &str,
                     at_ms: u64,
                     source: &'static str,
                     lag_ms: Option<f64>,
                     resolution_ms: Option<f64>,
                     status: &'static str| {
        if keep_timeline {
            out.timeline.push(TimelinePoint {
                at_ms,
                region: region.to_string(),
                source,
                lag_ms: lag_ms.map(round2),
                resolution_ms: resolution_ms.map(round2),
                status,
            });
        }
    };
    match event {
        Event::Seen {
            region,
            at_ms,
            lag_ms,
            resolution_ms,
            replay_age_ms,
        } => {
            point(
                &region,
                at_ms,
                "heartbeat",
                Some(lag_ms),
                Some(resolution_ms),
                "ok",
            );
            pending.push(lag_metric(&region, "heartbeat", at_ms, lag_ms));
            if let Some(age) = replay_age_ms {
                point(&region, at_ms, "replay-age", Some(age), None, "ok");
                pending.push(lag_metric(&region, "replay-age", at_ms, age));
            }
            let d = out.regions.entry(region).or_default();
            d.lags.push(lag_ms);
            d.resolutions.push(resolution_ms);
            d.replay_age.extend(replay_age_ms);
            d.last_heartbeat = Some((at_ms, Some(lag_ms), false));
            d.dirty = true;
        }
        Event::Engine {
            region,
            at_ms,
            lag_ms,
        } => {
            point(&region, at_ms, "engine", Some(lag_ms), None, "ok");
            pending.push(lag_metric(&region, "engine", at_ms, lag_ms));
            let d = out.regions.entry(region).or_default();
            d.engine.push(lag_ms);
            d.last_engine = Some(lag_ms);
        }
        Event::Unreachable {
            region,
            at_ms,
            heartbeats,
        } => {
            point(&region, at_ms, "heartbeat", None, None, "unreachable");
            pending.push(
                Metric::new("RegionUnreachable", heartbeats as f64, StandardUnit::Count)
                    .dimension("Region", region.as_str())
                    .at(at_time(at_ms))
                    .high_resolution(),
            );
            let d = out.regions.entry(region).or_default();
            d.unreachable += heartbeats;
            d.last_heartbeat = Some((at_ms, None, false));
            d.dirty = true;
        }
        // Written by the collector as it comes, never held for a flush.
        Event::Reach(_) => {}
        Event::NotYetVisible {
            region,
            at_ms,
            waited_ms,
        } => {
            // Still not visible: the lag is at least this, and it is published as such.
            point(
                &region,
                at_ms,
                "heartbeat",
                Some(waited_ms),
                None,
                "not-yet-visible",
            );
            pending.push(lag_metric(&region, "heartbeat", at_ms, waited_ms));
            let d = out.regions.entry(region).or_default();
            d.waits.push(waited_ms);
            let newer = d.last_heartbeat.is_none_or(|(t, _, _)| t <= at_ms);
            if newer {
                d.last_heartbeat = Some((at_ms, Some(waited_ms), true));
            }
            d.dirty = true;
        }
    }
}

async fn publish(sinks: &Sinks, out: &mut Collected, pending: &mut Vec<Metric>) {
    if let Some(metrics) = &sinks.metrics {
        if !pending.is_empty() {
            match metrics.publish(pending).await {
                Ok(_) => out.published += pending.len(),
                Err(e) => {
                    out.publish_errors += 1;
                    tracing::warn!(error = %e, points = pending.len(), "publishing lag metrics failed");
                }
            }
        }
    }
    pending.clear();
    for (region, d) in out.regions.iter_mut() {
        if !d.dirty {
            continue;
        }
        d.dirty = false;
        let (Some(store), Some(vantage)) = (&sinks.state, &sinks.vantage) else {
            continue;
        };
        let Some((at_ms, heartbeat_ms, lower_bound)) = d.last_heartbeat else {
            continue;
        };
        let sample = LagSample {
            region: region.clone(),
            heartbeat_ms: heartbeat_ms.map(round2),
            heartbeat_is_lower_bound: lower_bound,
            engine_ms: d.last_engine.map(round2),
            taken_at_ms: at_ms,
        };
        if let Err(e) = store
            .put_latest(&keys::lag_from(region, vantage), &sample)
            .await
        {
            out.publish_errors += 1;
            tracing::warn!(error = %e, region = %region, "writing the latest lag sample failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_quotes_the_table_everywhere() {
        let t = TableName::parse("ops \"x\".beat").unwrap();
        assert!(heartbeat_sql(&t).starts_with("INSERT INTO \"ops \"\"x\"\"\".\"beat\" AS h"));
        assert!(poll_sql(&t).contains("FROM \"ops \"\"x\"\"\".\"beat\" WHERE probe = $1"));
        let ddl = heartbeat_ddl(&t, "app\"user");
        assert!(ddl.contains("TO \"app\"\"user\""));
        assert!(ddl.contains("CREATE TABLE IF NOT EXISTS \"ops \"\"x\"\"\".\"beat\""));
    }

    #[test]
    fn a_stall_is_published_as_a_lower_bound_and_becomes_the_latest() {
        let mut out = Collected {
            regions: BTreeMap::new(),
            timeline: Vec::new(),
            published: 0,
            publish_errors: 0,
        };
        let mut pending = Vec::new();
        record(
            &mut out,
            &mut pending,
            Event::Seen {
                region: "eu-west-1".into(),
                at_ms: 1000,
                lag_ms: 75.0,
                resolution_ms: 4.0,
                replay_age_ms: Some(74.0),
            },
            true,
        );
        record(
            &mut out,
            &mut pending,
            Event::NotYetVisible {
                region: "eu-west-1".into(),
                at_ms: 2000,
                waited_ms: 3500.0,
            },
            true,
        );
        let d = &out.regions["eu-west-1"];
        assert_eq!(
            d.last_heartbeat,
            Some((2000, Some(3500.0), true)),
            "stored as a lower bound"
        );
        assert_eq!(pending.len(), 3);
        assert_eq!(out.timeline.last().unwrap().status, "not-yet-visible");
    }
}
