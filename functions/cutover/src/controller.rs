//! The phase controller: `status`, `advance` (one step, or `until` a phase),
//! `rollback` and `dry-run`.
//!
//! Every transition runs under the `MIGRATION` / `LEASE` lease: one at a time, and
//! a holder that stalled past its expiry cannot record anything (the phase is written
//! with [`StateStore::put_fenced`], conditional on the version read). Each step checks
//! its gates, does its action (each action reads the world first and skips what is
//! done, so a step cut short is finished by the next `advance`), records the phase
//! with the gates' evidence, appends an audit event and tells SNS. A failed gate
//! refuses the step with its reasons and changes nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StateValue;
use cutover_core::db::{self, DbAccess, Password, PgTarget, Tls};
use cutover_core::notify::{Notification, Notifier, Severity};
use cutover_core::state::{keys, now_ms, Lease, Leases, Phase, StateStore, Versioned};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::config::CutoverConfig;
use crate::gates::{
    changed_since, judge_counts, judge_final_validation, judge_validation, load_validation,
    GateResult,
};
use crate::machine::{self, checked_after_action, Action, Gate, Rollback, Step};
use crate::postgres::{self as pg, SequenceMove, Table};
use crate::CutoverError;

/// Tells apart audit events of one holder in one millisecond.
static AUDIT_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Audit events live this long.
const AUDIT_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// What the freeze recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeRecord {
    pub lsn: String,
    pub frozen_at: String,
    pub at_ms: u64,
    pub sessions_ended: i64,
}

/// What the switch recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchRecord {
    pub at_ms: u64,
    /// Where reverse replication starts on the target.
    pub reverse_from_lsn: String,
    pub sequences: Vec<Value>,
}

/// The `MIGRATION` / `PHASE` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    pub changed_by: String,
    pub changed_at_ms: u64,
    /// When each phase was last entered.
    #[serde(default)]
    pub entered_at_ms: BTreeMap<String, u64>,
    #[serde(default)]
    pub freeze: Option<FreezeRecord>,
    #[serde(default)]
    pub switch: Option<SwitchRecord>,
    /// The evidence of the transition into this phase.
    #[serde(default)]
    pub gates: Vec<GateResult>,
    #[serde(default)]
    pub rollbacks: u32,
    /// The validation run the last `validation` gate accepted.
    #[serde(default)]
    pub validated_run: Option<String>,
    /// What the final validation must cover: the tables changed since `validated_run`
    /// read them (set by the freeze).
    #[serde(default)]
    pub revalidate: Option<Vec<String>>,
}

impl PhaseRecord {
    fn initial() -> Self {
        PhaseRecord {
            phase: Phase::FullLoad,
            changed_by: "initial".into(),
            changed_at_ms: 0,
            entered_at_ms: BTreeMap::new(),
            freeze: None,
            switch: None,
            gates: Vec::new(),
            rollbacks: 0,
            validated_run: None,
            revalidate: None,
        }
    }
}

/// One recorded transition.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
    pub at_ms: u64,
    pub took_ms: u64,
    pub gates: Vec<GateResult>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub action: Value,
}

/// What a command did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// advanced | already | refused | busy | rolled-back | dry-run | status
    pub result: String,
    pub phase: Phase,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transitions: Vec<Transition>,
    /// The gates of a refused step, or of a dry run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub record: Value,
}

impl Outcome {
    fn new(result: &str, phase: Phase, detail: impl Into<String>) -> Self {
        Outcome {
            result: result.into(),
            phase,
            detail: detail.into(),
            transitions: Vec::new(),
            gates: Vec::new(),
            record: Value::Null,
        }
    }
}

/// How the controller reaches the two databases, as the cutover function's own role
/// (DDL, roles, slots: infra/sql/roles.sql says what it is granted and why).
#[derive(Clone, Debug)]
pub struct Databases {
    /// The target, as `users/cutover`.
    pub access: DbAccess,
    /// The application's role (the `user` parameter): the freeze makes it read-only.
    pub app_user: String,
    pub source: PgTarget,
    pub source_password: Password,
    /// How the source reaches the target for reverse replication (a libpq conninfo).
    pub reverse_conninfo: Password,
    pub tls: Tls,
}

pub struct Controller {
    pub config: CutoverConfig,
    pub store: StateStore,
    pub leases: Leases,
    pub failover_lease: Leases,
    pub ssm: aws_sdk_ssm::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub notifier: Option<Notifier>,
    pub db: Databases,
    /// Kept between invocations of a warm Lambda: a command in the switch's window
    /// should not pay for two TLS handshakes.
    pub(crate) connections: tokio::sync::Mutex<Option<Sides>>,
}

/// The two admin connections.
pub(crate) struct Sides {
    source: Client,
    target: Client,
    source_database: String,
    target_database: String,
    /// The writer endpoint the target connection was opened to.
    target_endpoint: String,
}

/// What the application reads to know where to write: `source` or `target`.
pub fn writes_to_parameter(app_prefix: &str) -> String {
    format!("{app_prefix}/writes-to")
}

impl Controller {
    fn app_role(&self) -> &str {
        self.config.app_role.as_deref().unwrap_or(&self.db.app_user)
    }

    async fn read(&self) -> Result<(PhaseRecord, Option<u64>), CutoverError> {
        Ok(
            match self
                .store
                .get::<PhaseRecord>(&keys::migration_phase())
                .await?
            {
                Some(Versioned { value, version, .. }) => (value, Some(version)),
                None => (PhaseRecord::initial(), None),
            },
        )
    }

    /// The admin connections, reused while they are open and the writer endpoint has not moved.
    async fn connect(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Sides>>, CutoverError> {
        let endpoint = self.db.access.writer_endpoint(&self.ssm).await?;
        let mut guard = self.connections.lock().await;
        let usable = guard.as_ref().is_some_and(|s| {
            !s.source.is_closed()
                && !s.target.is_closed()
                && s.target_endpoint == endpoint.to_string()
        });
        if usable {
            return Ok(guard);
        }
        let target_endpoint = endpoint.to_string();
        let target = self.db.access.target("target", endpoint);
        let timeout = self.db.access.connect_timeout;
        let (t, s) = tokio::join!(
            self.db.access.connect(&target),
            db::connect(
                &self.db.source,
                &self.db.source_password,
                &self.db.tls,
                timeout
            ),
        );
        *guard = Some(Sides {
            target: t?,
            source: s?,
            source_database: self.db.source.database.clone(),
            target_database: self.db.access.database.clone(),
            target_endpoint,
        });
        Ok(guard)
    }

    pub async fn writes_to(&self) -> Result<String, CutoverError> {
        Ok(db::parameter(
            &self.ssm,
            &writes_to_parameter(&self.config.core.db.app_ssm_prefix),
        )
        .await?)
    }

    async fn set_writes_to(&self, lease: &Lease, side: &str) -> Result<(), CutoverError> {
        self.check_lease(lease).await?;
        self.ssm
            .put_parameter()
            .name(writes_to_parameter(&self.config.core.db.app_ssm_prefix))
            .value(side)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| cutover_core::Error::aws("SSM", "PutParameter", e))?;
        Ok(())
    }

    /// Before every side effect: the lease is still ours (renewed when half spent).
    async fn check_lease(&self, lease: &Lease) -> Result<(), CutoverError> {
        if lease.remaining() < self.config.lease_ttl / 2 {
            self.leases.renew(lease, self.config.lease_ttl).await?;
        } else if lease.remaining().is_zero() {
            return Err(cutover_core::Error::Fenced(format!(
                "{} expired during the step",
                lease.holder
            ))
            .into());
        }
        Ok(())
    }

    pub async fn status(&self) -> Result<Outcome, CutoverError> {
        let (record, version) = self.read().await?;
        let mut out = Outcome::new(
            "status",
            record.phase,
            match version {
                None => "no cutover recorded yet: the migration is in full-load".to_string(),
                Some(v) => format!(
                    "{} since {} (version {v}, by {})",
                    record.phase, record.changed_at_ms, record.changed_by
                ),
            },
        );
        let writes_to = self.writes_to().await.ok();
        out.record = json!({ "phase": record, "version": version, "writes_to": writes_to });
        Ok(out)
    }

    /// Checks one gate. `dry` = measure without waiting for a drain.
    async fn gate(
        &self,
        gate: Gate,
        sides: &mut Sides,
        record: &PhaseRecord,
        validation_run: Option<&str>,
        dry: bool,
    ) -> Result<GateResult, CutoverError> {
        let slot = &self.config.subscription;
        Ok(match gate {
            Gate::InitialCopy => {
                let (tables, copying) = pg::subscribed_tables(&sides.target, slot).await?;
                let enabled = pg::subscription_enabled(&sides.target, slot).await?;
                let evidence = json!({ "tables": tables.len(), "copying": copying });
                if enabled != Some(true) {
                    GateResult::fail(gate, format!("subscription {slot} is missing or disabled on the target"), evidence)
                } else if tables.is_empty() {
                    GateResult::fail(gate, format!("subscription {slot} has no tables"), evidence)
                } else if !copying.is_empty() {
                    GateResult::fail(gate, format!("still copying: {}", copying.join(", ")), evidence)
                } else {
                    GateResult::pass(gate, format!("{} tables copied; CDC is applying changes", tables.len()), evidence)
                }
            }
            Gate::Validation => {
                let evidence = match validation_run {
                    Some(id) => load_validation(&self.store, id).await?,
                    None => None,
                };
                judge_validation(
                    gate,
                    validation_run,
                    evidence.as_ref(),
                    now_ms(),
                    self.config.validation_max_age.as_millis() as u64,
                    None,
                )
            }
            Gate::ValidationAfterFreeze => {
                let Some(revalidate) = &record.revalidate else {
                    return Ok(GateResult::fail(gate, "the freeze recorded no change counters", Value::Null));
                };
                let evidence = match validation_run {
                    Some(id) if !revalidate.is_empty() => load_validation(&self.store, id).await?,
                    _ => None,
                };
                judge_final_validation(
                    validation_run,
                    evidence.as_ref(),
                    revalidate,
                    now_ms(),
                    self.config.validation_max_age.as_millis() as u64,
                    record.freeze.as_ref().map_or(u64::MAX, |f| f.at_ms),
                )
            }
            Gate::ReplicationLatency => {
                let lsn = pg::current_lsn(&sides.source).await?;
                let budget = self.config.max_lag;
                match pg::wait_applied(&sides.source, slot, &lsn, budget).await? {
                    Ok(took) => GateResult::pass(
                        gate,
                        format!("the target applied the source's position {lsn} in {} ms (budget {} ms)", took.as_millis(), budget.as_millis()),
                        json!({ "lsn": lsn, "applied_ms": took.as_millis() as u64, "budget_ms": budget.as_millis() as u64 }),
                    ),
                    Err(why) => GateResult::fail(gate, format!("replication is behind: {why} (budget {} ms)", budget.as_millis()), json!({ "lsn": lsn })),
                }
            }
            Gate::NoFailoverInFlight => match self.failover_lease.current().await? {
                Some(l) if l.expires_at_ms > now_ms() => GateResult::fail(
                    gate,
                    format!("a failover holds its lease ({} at epoch {}, {} ms left): writes do not move while the target's region does", l.holder, l.epoch, l.expires_at_ms - now_ms()),
                    json!({ "holder": l.holder, "epoch": l.epoch }),
                ),
                _ => GateResult::pass(gate, "no failover in flight", Value::Null),
            },
            Gate::SourceFrozen => {
                let role = self.app_role();
                let frozen = pg::is_frozen(&sides.source, &sides.source_database, role).await?;
                let leaked = match &record.freeze {
                    Some(f) => pg::writable_sessions(&sides.source, &sides.source_database, role, &f.frozen_at).await?,
                    None => -1,
                };
                let evidence = json!({ "role": role, "read_only_default": frozen, "sessions_from_before_the_freeze": leaked });
                if !frozen || record.freeze.is_none() {
                    GateResult::fail(gate, format!("role {role} is not frozen on the source"), evidence)
                } else if leaked > 0 {
                    GateResult::fail(gate, format!("{leaked} sessions of {role} opened before the freeze are still there"), evidence)
                } else {
                    GateResult::pass(gate, format!("role {role} is read-only on the source and none of its sessions predates the freeze"), evidence)
                }
            }
            Gate::Drained => {
                let Some(freeze) = &record.freeze else {
                    return Ok(GateResult::fail(gate, "no freeze position recorded", Value::Null));
                };
                let within = if dry { Duration::ZERO } else { self.config.drain_timeout };
                match pg::wait_applied(&sides.source, slot, &freeze.lsn, within).await? {
                    Ok(took) => GateResult::pass(
                        gate,
                        format!("the target confirmed the freeze position {} ({} ms of waiting)", freeze.lsn, took.as_millis()),
                        json!({ "freeze_lsn": freeze.lsn, "waited_ms": took.as_millis() as u64 }),
                    ),
                    Err(why) => GateResult::fail(gate, format!("not drained: {why}"), json!({ "freeze_lsn": freeze.lsn })),
                }
            }
            Gate::Counts => {
                let (tables, _) = pg::subscribed_tables(&sides.target, slot).await?;
                let (s, t) = tokio::join!(
                    pg::counts(&mut sides.source, &tables),
                    pg::counts(&mut sides.target, &tables)
                );
                let (s, t) = (s?, t?);
                let rows: Vec<(String, i64, i64)> = tables
                    .iter()
                    .zip(s.iter().zip(t.iter()))
                    .map(|(table, (a, b))| (table.display(), *a, *b))
                    .collect();
                judge_counts(&rows)
            }
            Gate::WatchWindow => {
                let since = record.entered_at_ms.get(Phase::Switched.as_str()).copied().unwrap_or(u64::MAX);
                let watched = now_ms().saturating_sub(since);
                let window = self.config.stable_watch.as_millis() as u64;
                let evidence = json!({ "watched_ms": watched, "window_ms": window });
                if since == u64::MAX || watched < window {
                    GateResult::fail(gate, format!("watched {watched} ms of the {window} ms window since the switch"), evidence)
                } else {
                    GateResult::pass(gate, format!("{watched} ms since the switch (window {window} ms)"), evidence)
                }
            }
            Gate::Alarms => self.alarms().await,
            Gate::ReverseReplication => {
                let name = &self.config.reverse;
                // The subscription's apply worker (re)connects on its own schedule: an
                // idle slot is not a broken one until it stays inactive for a while.
                let started = Instant::now();
                let (slot, sub) = loop {
                    let slot = pg::slot_position(&sides.target, name, "0/0").await?;
                    let sub = pg::subscription_enabled(&sides.source, name).await?;
                    let streaming = matches!((&slot, sub), (Some((_, _, true)), Some(true)));
                    if streaming || dry || started.elapsed() >= Duration::from_secs(10) {
                        break (slot, sub);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                let evidence = json!({ "slot": slot.as_ref().map(|s| &s.0), "active": slot.as_ref().map(|s| s.2), "subscription_enabled": sub });
                match (slot, sub) {
                    (Some((_, _, true)), Some(true)) => GateResult::pass(gate, format!("reverse replication {name} is streaming to the source"), evidence),
                    _ => GateResult::fail(gate, format!("reverse replication {name} is not streaming (slot on the target and enabled subscription on the source needed)"), evidence),
                }
            }
        })
    }

    async fn alarms(&self) -> GateResult {
        let watched = &self.config.stable_alarms;
        if watched.is_empty() {
            return GateResult::pass(Gate::Alarms, "no alarms watched", Value::Null);
        }
        let out = match self
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(watched.clone()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return GateResult::fail(
                    Gate::Alarms,
                    format!(
                        "DescribeAlarms failed: {}",
                        cutover_core::error::describe_chain(&e)
                    ),
                    Value::Null,
                )
            }
        };
        let mut bad = Vec::new();
        for name in watched {
            match out
                .metric_alarms()
                .iter()
                .find(|a| a.alarm_name() == Some(name.as_str()))
            {
                None => bad.push(format!("{name} does not exist")),
                Some(a) if a.state_value() == Some(&StateValue::Alarm) => {
                    bad.push(format!("{name} is in ALARM"))
                }
                Some(_) => {}
            }
        }
        if bad.is_empty() {
            GateResult::pass(
                Gate::Alarms,
                format!("{} alarms, none in ALARM", watched.len()),
                json!(watched),
            )
        } else {
            GateResult::fail(Gate::Alarms, bad.join("; "), json!(watched))
        }
    }

    /// The step's action; returns what it did, and updates the record's freeze/switch.
    async fn act(
        &self,
        step: &Step,
        lease: &Lease,
        sides: &mut Sides,
        record: &mut PhaseRecord,
    ) -> Result<Value, CutoverError> {
        let role = self.app_role().to_string();
        match step.action {
            Action::None => Ok(Value::Null),
            Action::Freeze => {
                // Everything that can be read before the freeze is read before it: the
                // application waits only for what must follow it.
                let (tables, _) =
                    pg::subscribed_tables(&sides.target, &self.config.subscription).await?;
                let validated = match &record.validated_run {
                    Some(id) => load_validation(&self.store, id).await?,
                    None => None,
                };
                // The reverse publication changes nothing until a subscription uses it.
                pg::publish_reverse(&sides.target, &self.config.reverse, &tables).await?;
                self.check_lease(lease).await?;
                let at_ms = now_ms();
                let f = pg::freeze(&sides.source, &sides.source_database, &role).await?;
                record.freeze = Some(FreezeRecord {
                    lsn: f.lsn.clone(),
                    frozen_at: f.frozen_at.clone(),
                    at_ms,
                    sessions_ended: f.sessions_ended,
                });
                // What changed since the validation this step accepted read it: the final
                // validation covers exactly that; the counts cover the rest.
                let counters = pg::change_counters(&sides.source, &tables).await?;
                let revalidate = changed_since(validated.as_ref(), &counters);
                record.revalidate = Some(revalidate.clone());
                Ok(
                    json!({ "freeze_lsn": f.lsn, "sessions_ended": f.sessions_ended, "role": role,
                           "change_counters": counters, "revalidate": revalidate }),
                )
            }
            Action::Switch => {
                let (tables, _) =
                    pg::subscribed_tables(&sides.target, &self.config.subscription).await?;
                let schemas = schemas_of(&tables);
                self.check_lease(lease).await?;
                let moves = pg::sync_sequences(
                    &sides.source,
                    &sides.target,
                    &schemas,
                    self.config.sequence_margin,
                )
                .await?;
                self.check_lease(lease).await?;
                pg::set_subscription_enabled(&sides.target, &self.config.subscription, false)
                    .await?;
                // A target frozen by an earlier fallback takes the application's writes again.
                let role = self.app_role().to_string();
                pg::unfreeze(&sides.target, &sides.target_database, &role).await?;
                let conninfo = self.db.reverse_conninfo.expose().to_string();
                let reverse_from = pg::start_reverse(
                    &sides.target,
                    &sides.source,
                    &self.config.reverse,
                    &tables,
                    &conninfo,
                )
                .await?;
                self.set_writes_to(lease, "target").await?;
                let sequences: Vec<Value> = moves.iter().map(sequence_json).collect();
                record.switch = Some(SwitchRecord {
                    at_ms: now_ms(),
                    reverse_from_lsn: reverse_from.clone(),
                    sequences: sequences.clone(),
                });
                Ok(
                    json!({ "sequences": sequences, "reverse_from_lsn": reverse_from, "forward": "disabled", "writes_to": "target" }),
                )
            }
            Action::Finish => {
                self.check_lease(lease).await?;
                pg::end_reverse(&sides.target, &sides.source, &self.config.reverse).await?;
                pg::end_forward(&sides.target, &self.config.subscription).await?;
                Ok(json!({ "reverse": "ended", "forward": "ended" }))
            }
        }
    }

    /// The transition lease, or the `busy` answer when someone else holds it.
    async fn take_lease(&self, holder: &str) -> Result<Result<Lease, Outcome>, CutoverError> {
        match self.leases.acquire(holder, self.config.lease_ttl).await {
            Ok(lease) => Ok(Ok(lease)),
            Err(cutover_core::Error::Fenced(why)) => {
                let (record, _) = self.read().await?;
                Ok(Err(Outcome::new(
                    "busy",
                    record.phase,
                    format!("another transition is running: {why}"),
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `advance`: one step, or every step `until` a phase, stopping at the first refusal.
    /// `expect`: the phase the caller believes the migration is in; when it has moved
    /// on, nothing is done (a retried or duplicated command is harmless).
    pub async fn advance(
        &self,
        holder: &str,
        until: Option<Phase>,
        expect: Option<Phase>,
        validation_run: Option<&str>,
    ) -> Result<Outcome, CutoverError> {
        let lease = match self.take_lease(holder).await? {
            Ok(lease) => lease,
            Err(busy) => return Ok(busy),
        };
        let result = self
            .advance_held(&lease, until, expect, validation_run)
            .await;
        let _ = self.leases.release(&lease).await;
        result
    }

    async fn advance_held(
        &self,
        lease: &Lease,
        until: Option<Phase>,
        expect: Option<Phase>,
        validation_run: Option<&str>,
    ) -> Result<Outcome, CutoverError> {
        let (mut record, mut version) = self.read().await?;
        if let Some(e) = expect {
            if e != record.phase {
                return Ok(Outcome::new(
                    "already",
                    record.phase,
                    format!(
                        "expected {e}, but the migration is in {}: nothing done",
                        record.phase
                    ),
                ));
            }
        }
        let Some(goal) = until.or_else(|| record.phase.next()) else {
            return Ok(Outcome::new(
                "already",
                record.phase,
                "the migration is done",
            ));
        };
        let steps = machine::path(record.phase, goal).map_err(CutoverError::InvalidInput)?;
        if steps.is_empty() {
            return Ok(Outcome::new(
                "already",
                record.phase,
                format!("already at {} (asked for {goal})", record.phase),
            ));
        }
        let mut connections = self.connect().await?;
        let sides = connections
            .as_mut()
            .ok_or_else(|| CutoverError::Step("no database connections".into()))?;
        let mut done = Vec::new();
        for step in steps {
            let started = Instant::now();
            let mut gates = Vec::new();
            for gate in step
                .gates
                .iter()
                .filter(|g| !checked_after_action(**g, step.action))
            {
                gates.push(
                    self.gate(*gate, sides, &record, validation_run, false)
                        .await?,
                );
            }
            if gates.iter().any(|g| !g.passed) {
                return self.refuse(lease, &step, record, gates, done).await;
            }
            let mut next = record.clone();
            if let Some(g) = gates.iter().find(|g| g.gate == Gate::Validation) {
                next.validated_run = g.evidence["run_id"].as_str().map(str::to_string);
            }
            let action = self.act(&step, lease, sides, &mut next).await?;
            for gate in step
                .gates
                .iter()
                .filter(|g| checked_after_action(**g, step.action))
            {
                gates.push(
                    self.gate(*gate, sides, &next, validation_run, false)
                        .await?,
                );
            }
            if gates.iter().any(|g| !g.passed) {
                return self.refuse(lease, &step, record, gates, done).await;
            }
            let at = now_ms();
            next.phase = step.to;
            next.changed_by = lease.holder.clone();
            next.changed_at_ms = at;
            next.entered_at_ms.insert(step.to.as_str().into(), at);
            next.gates = gates.clone();
            self.check_lease(lease).await?;
            version = Some(
                self.store
                    .put_fenced(lease, &keys::migration_phase(), &next, version)
                    .await?,
            );
            record = next;
            let transition = Transition {
                from: step.from,
                to: step.to,
                at_ms: at,
                took_ms: started.elapsed().as_millis() as u64,
                gates,
                action,
            };
            let body = json!(transition);
            let audited = self.audit(lease, "advanced", &body);
            let announced = self.announce(
                format!("cutover: {} -> {}", step.from, step.to),
                "cutover.advanced",
                if step.to == Phase::Switched {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                format!(
                    "The migration moved from {} to {} in {} ms; every gate passed.",
                    step.from, step.to, transition.took_ms
                ),
                json!(transition),
            );
            tokio::join!(audited, announced).0?;
            done.push(transition);
        }
        let mut out = Outcome::new("advanced", record.phase, format!("now at {}", record.phase));
        out.transitions = done;
        Ok(out)
    }

    async fn refuse(
        &self,
        lease: &Lease,
        step: &Step,
        record: PhaseRecord,
        gates: Vec<GateResult>,
        done: Vec<Transition>,
    ) -> Result<Outcome, CutoverError> {
        let reasons: Vec<String> = gates
            .iter()
            .filter(|g| !g.passed)
            .map(|g| format!("{}: {}", g.gate.as_str(), g.detail))
            .collect();
        let detail = format!(
            "{} -> {} refused: {}",
            step.from,
            step.to,
            reasons.join("; ")
        );
        let body = json!({ "from": step.from, "to": step.to, "gates": gates });
        self.audit(lease, "refused", &body).await?;
        self.announce(
            format!("cutover: {} -> {} refused", step.from, step.to),
            "cutover.refused",
            Severity::Warning,
            detail.clone(),
            body,
        )
        .await;
        let mut out = Outcome::new("refused", record.phase, detail);
        out.gates = gates;
        out.transitions = done;
        Ok(out)
    }

    /// `dry-run`: the next step's gates, measured without acting (a drain is not waited for).
    pub async fn dry_run(
        &self,
        until: Option<Phase>,
        validation_run: Option<&str>,
    ) -> Result<Outcome, CutoverError> {
        let (record, _) = self.read().await?;
        let Some(step) = machine::step_from(record.phase) else {
            return Ok(Outcome::new(
                "dry-run",
                record.phase,
                "the migration is done",
            ));
        };
        let mut connections = self.connect().await?;
        let sides = connections
            .as_mut()
            .ok_or_else(|| CutoverError::Step("no database connections".into()))?;
        let mut gates = Vec::new();
        for gate in &step.gates {
            if checked_after_action(*gate, step.action) {
                continue;
            }
            gates.push(
                self.gate(*gate, sides, &record, validation_run, true)
                    .await?,
            );
        }
        let ok = gates.iter().all(|g| g.passed);
        let mut out = Outcome::new(
            "dry-run",
            record.phase,
            format!(
                "{} -> {} would {}{}; nothing was changed",
                step.from,
                step.to,
                if ok { "pass its gates" } else { "be refused" },
                until
                    .map(|u| format!(
                        " (the steps after it, up to {u}, depend on what this one does)"
                    ))
                    .unwrap_or_default()
            ),
        );
        out.gates = gates;
        Ok(out)
    }

    /// `rollback`: back to `cdc` (see [`machine::rollback_from`]).
    pub async fn rollback(&self, holder: &str, reason: &str) -> Result<Outcome, CutoverError> {
        let lease = match self.take_lease(holder).await? {
            Ok(lease) => lease,
            Err(busy) => return Ok(busy),
        };
        let result = self.rollback_held(&lease, reason).await;
        let _ = self.leases.release(&lease).await;
        result
    }

    async fn rollback_held(&self, lease: &Lease, reason: &str) -> Result<Outcome, CutoverError> {
        let (record, version) = self.read().await?;
        let from = record.phase;
        let plan = match machine::rollback_from(from) {
            Ok(p) => p,
            Err(why) => return Ok(Outcome::new("refused", from, why)),
        };
        if plan == Rollback::Nothing && machine::rollback_to(from) == from {
            return Ok(Outcome::new(
                "already",
                from,
                format!("nothing to roll back: the migration is in {from}"),
            ));
        }
        let started = Instant::now();
        let role = self.app_role().to_string();
        let mut connections = self.connect().await?;
        let sides = connections
            .as_mut()
            .ok_or_else(|| CutoverError::Step("no database connections".into()))?;
        let action = match plan {
            Rollback::Nothing => {
                // A freeze left by a step that was cut short is lifted too.
                let ended = pg::unfreeze(&sides.source, &sides.source_database, &role).await?;
                json!({ "undone": "nothing to undo", "sessions_ended": ended })
            }
            Rollback::Unfreeze => {
                self.check_lease(lease).await?;
                let ended = pg::unfreeze(&sides.source, &sides.source_database, &role).await?;
                // The freeze prepared the reverse publication; nothing subscribed to it yet.
                pg::end_reverse(&sides.target, &sides.source, &self.config.reverse).await?;
                json!({ "source": "writable", "sessions_ended": ended })
            }
            Rollback::FallBack => self.fall_back(lease, sides, &role).await?,
        };
        let at = now_ms();
        let to = machine::rollback_to(from);
        let mut next = record.clone();
        next.phase = to;
        next.changed_by = lease.holder.clone();
        next.changed_at_ms = at;
        next.entered_at_ms.insert(to.as_str().into(), at);
        next.freeze = None;
        next.switch = None;
        next.gates = Vec::new();
        next.revalidate = None;
        next.rollbacks += 1;
        self.check_lease(lease).await?;
        self.store
            .put_fenced(lease, &keys::migration_phase(), &next, version)
            .await?;
        let body = json!({ "from": from, "to": to, "reason": reason, "plan": plan, "action": action, "took_ms": started.elapsed().as_millis() as u64 });
        self.audit(lease, "rolled-back", &body).await?;
        self.announce(
            format!("cutover: rolled back from {from}"),
            "cutover.rolled-back",
            Severity::Critical,
            format!("The migration rolled back from {from} to {to}: {reason}"),
            body.clone(),
        )
        .await;
        let mut out = Outcome::new(
            "rolled-back",
            to,
            format!("rolled back from {from} to {to}: {reason}"),
        );
        out.record = body;
        Ok(out)
    }

    /// After the switch: the application's writes go back to the source, which reverse
    /// replication kept current, and forward CDC resumes from there. Each step looks
    /// first, so a fallback cut short is finished by running it again.
    async fn fall_back(
        &self,
        lease: &Lease,
        sides: &mut Sides,
        role: &str,
    ) -> Result<Value, CutoverError> {
        let reverse = &self.config.reverse;
        let forward = &self.config.subscription;
        // 1. The target stops taking the application's writes.
        self.check_lease(lease).await?;
        let frozen = pg::freeze(&sides.target, &sides.target_database, role).await?;
        if !pg::is_frozen(&sides.target, &sides.target_database, role).await? {
            return Err(CutoverError::Step(format!("role {role} is not read-only on the target after its freeze; nothing else was done")));
        }
        // 2. Reverse replication delivers everything the target committed.
        let mut drained_ms = None;
        if pg::subscription_enabled(&sides.source, reverse).await? == Some(true) {
            match pg::wait_applied(&sides.target, reverse, &frozen.lsn, self.config.drain_timeout).await? {
                Ok(took) => drained_ms = Some(took.as_millis() as u64),
                Err(why) => return Err(CutoverError::Step(format!("reverse replication did not drain: {why}; the target stays frozen, run rollback again"))),
            }
        }
        // 3. The source's sequences past the target's.
        let (tables, _) = pg::subscribed_tables(&sides.target, forward).await?;
        self.check_lease(lease).await?;
        let moves = pg::sync_sequences(
            &sides.target,
            &sides.source,
            &schemas_of(&tables),
            self.config.sequence_margin,
        )
        .await?;
        // 4. Forward CDC resumes after what reverse replication applied to the source.
        pg::set_subscription_enabled(&sides.source, reverse, false).await?;
        let mut forward_from = None;
        if pg::subscription_enabled(&sides.target, forward).await? == Some(false) {
            self.check_lease(lease).await?;
            forward_from = Some(
                pg::skip_reverse_applied(&sides.source, forward, Duration::from_secs(10)).await?,
            );
            pg::set_subscription_enabled(&sides.target, forward, true).await?;
        }
        // 5. The source takes writes again, and the application is told to go there.
        self.check_lease(lease).await?;
        pg::unfreeze(&sides.source, &sides.source_database, role).await?;
        self.set_writes_to(lease, "source").await?;
        // 6. Reverse replication ends. The target stays frozen: it is again a replica, and
        //    an application that resolved the endpoint just before the move must be refused
        //    there, not accepted (the next switch unfreezes it).
        pg::end_reverse(&sides.target, &sides.source, reverse).await?;
        Ok(json!({
            "target_freeze_lsn": frozen.lsn,
            "target_sessions_ended": frozen.sessions_ended,
            "reverse_drained_ms": drained_ms,
            "sequences": moves.iter().map(sequence_json).collect::<Vec<_>>(),
            "forward_resumed_from": forward_from,
            "writes_to": "source",
        }))
    }

    async fn audit(&self, lease: &Lease, kind: &str, body: &Value) -> Result<(), CutoverError> {
        let at = now_ms();
        let n = AUDIT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key =
            keys::migration_event(&format!("{at:013}"), &format!("{}-{n}-{kind}", lease.epoch));
        let item = json!({ "kind": kind, "by": lease.holder, "epoch_of_lease": lease.epoch, "at_ms": at, "detail": body });
        match self.store.append(&key, &item, Some(AUDIT_TTL)).await {
            Ok(()) | Err(cutover_core::Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn announce(
        &self,
        subject: String,
        event_type: &str,
        severity: Severity,
        text: String,
        detail: Value,
    ) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let n = Notification {
            subject,
            event_type: event_type.into(),
            severity,
            text,
            detail,
        };
        if let Err(e) = notifier.publish(&n).await {
            // The phase is recorded; a lost announcement must not undo or repeat it.
            tracing::warn!(error = %e, "the cutover notification was not published");
        }
    }
}

fn schemas_of(tables: &[Table]) -> Vec<String> {
    let mut schemas: Vec<String> = tables.iter().map(|t| t.schema.clone()).collect();
    schemas.sort();
    schemas.dedup();
    schemas
}

fn sequence_json(m: &SequenceMove) -> Value {
    json!({ "sequence": m.sequence, "other_side": m.from_value, "before": m.before, "after": m.after })
}
