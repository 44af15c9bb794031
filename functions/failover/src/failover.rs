//! One trigger, end to end: observe → decide → take the lease → move the
//! database → rewrite the endpoints → record, notify, announce.
//!
//! Observing: the writer is probed from here over the grace period; when it
//! does not answer, the other regions' reachability records (`REACH#<writer>`)
//! are read and [`crate::agreement`] says whether its loss is agreed. The lag
//! samples are read per vantage (`LAG#<region>` / `FROM#<vantage>`) and
//! [`crate::lag`] picks the one measured beside the writer.
//!
//! Fencing: nothing changes before the lease (`FAILOVER` / `LEASE`) is taken;
//! the state (`FAILOVER` / `STATE`) is written only under it (a transaction that
//! checks holder, epoch and expiry); before every side effect — the engine call,
//! the fence, the promotion, each SSM write — the lease is renewed, which fails
//! for a stale holder, and it is renewed while the driver waits. A completed
//! failover keeps the lease until it expires and starts a cooldown, so the other
//! triggers of the same incident find it held and report by whom.
//!
//! Resuming: `STATE` is read first, before anything is decided. A holder that
//! died mid-way leaves it in progress: the next trigger after the lease expires
//! takes it over with a higher epoch and finishes the recorded move (not a new
//! decision: the half-moved world would mislead one). Every step re-reads the
//! world and skips what is done: the drivers ask the engine who writes and
//! whether a move is in flight, and an SSM parameter that already holds the new
//! value is not written again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use cutover_core::db::{DbAccess, PgTarget};
use cutover_core::notify::{Notification, Notifier, Severity};
use cutover_core::reach::ReachRecord;
use cutover_core::state::{keys, now_ms, Key, LagSample, Lease, Leases, StateStore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::agreement::{self, Agreement, Rules};
use crate::config::FailoverConfig;
use crate::decision::{decide, lag_text, Candidate, Decision, Origin, Requested, Situation};
use crate::detect::{self, RealClock, Verdict};
use crate::driver::{AnyDriver, Driver, DriverReport, Fence, Health, Step};
use crate::lag::{self, Reading};
use crate::FailoverError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Switchover,
    Failover,
}

/// `FAILOVER` / `STATE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverState {
    pub phase: Phase,
    pub kind: Kind,
    pub from: String,
    pub to: String,
    pub lease_epoch: u64,
    pub holder: String,
    pub trigger: String,
    pub expected_loss_ms: Option<f64>,
    /// `expected_loss_ms` is a lower bound (a stalled heartbeat): at least that much.
    #[serde(default)]
    pub loss_is_lower_bound: bool,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    /// Failover: the first transaction id the new primary assigned, read before the
    /// application was pointed at it. A row version whose `xmin` is this or later was
    /// written after the failover: the evidence the lost-write reconciliation
    /// ([`crate::reconcile`]) uses to tell lost rows from new ones and conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_xid: Option<u64>,
}

pub fn state_key() -> Key {
    Key::new("FAILOVER", "STATE")
}

/// What started this invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub requested: Requested,
    /// An alarm never moves a writer that answers; a person can.
    pub origin: Origin,
    pub target: Option<String>,
    pub force: bool,
    pub dry_run: bool,
    /// For the audit trail: "alarm primary-writer-unavailable-dev (us-east-1)", "manual failover", …
    pub describe: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// switchover | failover | refused | fenced | cooldown | dry-run | completed-elsewhere
    pub action: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Value>,
}

fn outcome(action: &str, summary: String) -> Outcome {
    Outcome {
        action: action.into(),
        summary,
        decision: None,
        epoch: None,
        holder: None,
        steps: vec![],
        timings: None,
    }
}

pub struct Failover {
    pub config: FailoverConfig,
    pub store: StateStore,
    pub leases: Leases,
    pub ssm: aws_sdk_ssm::Client,
    /// Every other region's SSM: each region's functions and application read their
    /// own region's copy of the endpoints, so a move writes them all (its own first).
    pub regional_ssm: Vec<(String, aws_sdk_ssm::Client)>,
    pub events: aws_sdk_eventbridge::Client,
    pub notifier: Option<Notifier>,
    pub access: DbAccess,
    pub driver: AnyDriver,
    /// The crash-at-every-step drill: the run stops right before this step, as if
    /// its process died there (lease kept, `STATE` in progress). `None` in the Lambda.
    pub drill_stop_before: Option<Step>,
}

/// The lease as a [`Fence`]: every check renews it (a conditional write that
/// fails for a stale holder); `keep_alive` renews once a third of its TTL has passed.
pub struct LeaseFence<'a> {
    leases: &'a Leases,
    ttl: Duration,
    held: std::sync::Mutex<(Lease, Instant)>,
    stop_before: Option<Step>,
}

impl<'a> LeaseFence<'a> {
    pub fn new(leases: &'a Leases, lease: Lease, ttl: Duration, stop_before: Option<Step>) -> Self {
        LeaseFence {
            leases,
            ttl,
            held: std::sync::Mutex::new((lease, Instant::now())),
            stop_before,
        }
    }

    /// The lease as last renewed.
    pub fn lease(&self) -> Lease {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
            .clone()
    }

    async fn renew(&self) -> Result<(), FailoverError> {
        let renewed = self.leases.renew(&self.lease(), self.ttl).await?;
        *self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = (renewed, Instant::now());
        Ok(())
    }
}

impl Fence for LeaseFence<'_> {
    async fn check(&self, next: Step) -> Result<(), FailoverError> {
        if self.stop_before == Some(next) {
            return Err(FailoverError::Internal(format!(
                "drill: the run stops before step {next}, as if its process died there"
            )));
        }
        self.renew().await
    }

    async fn keep_alive(&self) -> Result<(), FailoverError> {
        let since = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .1
            .elapsed();
        if since >= self.ttl / 3 {
            self.renew().await?;
        }
        Ok(())
    }
}

/// The move a run carries out: decided now, or recorded in `STATE` by a holder that died.
#[derive(Debug, Clone)]
struct Move {
    kind: Kind,
    from: String,
    to: String,
    expected_loss_ms: Option<f64>,
    loss_is_lower_bound: bool,
    resumed: bool,
}

impl Move {
    fn recorded(s: &FailoverState) -> Move {
        Move {
            kind: s.kind,
            from: s.from.clone(),
            to: s.to.clone(),
            expected_loss_ms: s.expected_loss_ms,
            loss_is_lower_bound: s.loss_is_lower_bound,
            resumed: true,
        }
    }

    fn decided(d: &Decision, active: &str) -> Option<Move> {
        let (kind, to, expected_loss_ms, loss_is_lower_bound) = match d {
            Decision::Switchover { target, .. } => (Kind::Switchover, target, Some(0.0), false),
            Decision::Failover {
                target,
                expected_loss_ms,
                loss_is_lower_bound,
                ..
            } => (
                Kind::Failover,
                target,
                *expected_loss_ms,
                *loss_is_lower_bound,
            ),
            Decision::Refuse { .. } => return None,
        };
        Some(Move {
            kind,
            from: active.to_string(),
            to: to.clone(),
            expected_loss_ms,
            loss_is_lower_bound,
            resumed: false,
        })
    }
}

impl Failover {
    fn app_param(&self, name: &str) -> String {
        format!("{}/{name}", self.config.core.db.app_ssm_prefix)
    }

    fn db_param(&self, name: &str) -> String {
        format!("{}/{name}", self.config.core.db.ssm_prefix)
    }

    /// The region that writes now, as SSM says (failover rewrites it).
    pub async fn active_region(&self) -> Result<String, FailoverError> {
        Ok(cutover_core::db::parameter(&self.ssm, &self.app_param("active-region")).await?)
    }

    /// One probe of the writer: it must answer in time and take writes. Any
    /// error is a failure, said in words.
    async fn probe_writer(&self) -> Result<(), String> {
        let probe = async {
            let endpoint = self
                .access
                .writer_endpoint(&self.ssm)
                .await
                .map_err(|e| format!("reading the writer endpoint: {e}"))?;
            let target: PgTarget = self.access.target("writer", endpoint);
            let c = self
                .access
                .connect(&target)
                .await
                .map_err(|e| e.to_string())?;
            let row = c.query_one("SELECT NOT pg_is_in_recovery() AND NOT current_setting('default_transaction_read_only')::bool", &[]).await.map_err(|e| e.to_string())?;
            if row.get::<_, bool>(0) {
                Ok(())
            } else {
                Err("it answers, read-only (in recovery or fenced)".to_string())
            }
        };
        match tokio::time::timeout(self.config.probe_timeout, probe).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.config.probe_timeout.as_millis()
            )),
        }
    }

    /// The lag sample that speaks for `region` (see [`crate::lag`]): the one
    /// measured beside `writer`, else the largest, among those taken no more than
    /// `CUTOVER_LAG_MAX_AGE_MS` before `reference_ms`.
    async fn lag(&self, region: &str, writer: &str, reference_ms: u64) -> Option<Reading> {
        let every = keys::lag_from_every_vantage(region);
        let samples: Vec<(String, LagSample)> = self
            .store
            .query_prefix::<LagSample>(&every.pk, &every.sk)
            .await
            .map_err(|e| tracing::warn!(error = %e, region, "reading lag samples failed"))
            .ok()?
            .into_iter()
            .filter_map(|(key, v)| {
                keys::vantage_of(&key).map(|vantage| (vantage.to_string(), v.value))
            })
            .collect();
        lag::pick(&samples, writer, reference_ms, self.config.lag_max_age)
    }

    /// How long this region's lag-probe has seen `writer` failing: its record of
    /// the writer, when fresh and still in a streak of failures (else zero).
    async fn failing_here_for(&self, writer: &str) -> Duration {
        let key = keys::reach(writer, self.config.vantage());
        let record = match self.store.get::<ReachRecord>(&key).await {
            Ok(Some(r)) => r.value,
            Ok(None) => return Duration::ZERO,
            Err(e) => {
                tracing::warn!(error = %e, "reading this region's reachability record failed; the grace period starts now");
                return Duration::ZERO;
            }
        };
        let now = now_ms();
        match record.first_failure_at_ms {
            Some(first)
                if !record.reachable
                    && record.age_ms(now) <= self.config.reach_max_age.as_millis() as u64 =>
            {
                Duration::from_millis(now.saturating_sub(first))
            }
            _ => Duration::ZERO,
        }
    }

    /// What every vantage point says of the writer, this function's own probe
    /// (`verdict`, begun at `first_probe_ms`, its streak credited from this
    /// region's lag-probe) standing for its own region. A store that cannot be
    /// read leaves the other vantage points unknown.
    async fn agreement(&self, writer: &str, first_probe_ms: u64, verdict: &Verdict) -> Agreement {
        let now = now_ms();
        let own = ReachRecord {
            writer_region: writer.to_string(),
            vantage: self.config.vantage().to_string(),
            reachable: verdict.reachable,
            consecutive_failures: verdict.failures,
            first_failure_at_ms: (!verdict.reachable)
                .then_some(first_probe_ms.saturating_sub(verdict.credited_ms)),
            last_success_at_ms: verdict.reachable.then_some(now),
            taken_at_ms: now,
            last_error: verdict.last_error.clone(),
        };
        let every = keys::reach_from_every_vantage(writer);
        let records: Vec<ReachRecord> = match self
            .store
            .query_prefix::<ReachRecord>(&every.pk, &every.sk)
            .await
        {
            Ok(found) => found.into_iter().map(|(_, v)| v.value).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the reachability records failed; the other vantage points are unknown");
                vec![]
            }
        };
        agreement::agree(
            &own,
            &records,
            &self.config.region_names(),
            now,
            &Rules {
                quorum: self.config.quorum,
                grace: self.config.writer_grace,
                max_age: self.config.reach_max_age,
            },
        )
    }

    /// The agreement, read again (at most twice, a probe interval apart) while
    /// the only thing missing is another vantage point's record catching up: a
    /// streak short of the grace period by no more than the record's age (its
    /// region rewrites it at every failure; the global table brings it here a
    /// moment later), with no vantage point reaching the writer.
    async fn settled_agreement(
        &self,
        writer: &str,
        first_probe_ms: u64,
        verdict: &Verdict,
    ) -> Agreement {
        let grace = self.config.writer_grace.as_millis() as u64;
        let mut a = self.agreement(writer, first_probe_ms, verdict).await;
        for _ in 0..2 {
            let catching_up = |v: &agreement::VantageView| match v.view {
                agreement::View::UnreachableTooBriefly { for_ms } => {
                    for_ms + v.age_ms.unwrap_or(0) + self.config.probe_every.as_millis() as u64
                        >= grace
                }
                _ => false,
            };
            let reached = a
                .vantages
                .iter()
                .any(|v| matches!(v.view, agreement::View::Reachable { .. }));
            if a.lost || reached || !a.vantages.iter().any(catching_up) {
                break;
            }
            tokio::time::sleep(self.config.probe_every / 2).await;
            a = self.agreement(writer, first_probe_ms, verdict).await;
        }
        a
    }

    /// Every secondary's health and position, with the lag sample that speaks
    /// for it (aged from `reference_ms`), all at once.
    async fn candidates(
        &self,
        active: &str,
        regions: &[String],
        reference_ms: u64,
    ) -> Vec<Candidate> {
        let mut health = self.driver.secondaries(active, regions).await;
        // A candidate that did not answer in time is asked twice more: one slow
        // answer (a busy server, a TLS handshake on a loaded host) must not leave the
        // decision without a target, since an alarm that stays in ALARM does not
        // invoke again. Seen in the region-loss drill: every candidate "no answer
        // within 2000 ms" once, and nothing moved.
        for _ in 0..2 {
            let slow = |h: &Health| !h.healthy && h.timed_out;
            if !health.iter().any(slow) {
                break;
            }
            let again = self.driver.secondaries(active, regions).await;
            for (h, a) in health.iter_mut().zip(again) {
                if h.region == a.region && slow(h) {
                    *h = a;
                }
            }
        }
        let lags = futures::future::join_all(
            health
                .iter()
                .map(|h| self.lag(&h.region, active, reference_ms)),
        )
        .await;
        health
            .into_iter()
            .zip(lags)
            .map(|(h, lag)| Candidate {
                lag_ms: lag.as_ref().map(|r| r.ms),
                lag_is_lower_bound: lag.as_ref().is_some_and(|r| r.lower_bound),
                lag_vantage: lag.map(|r| r.vantage),
                region: h.region,
                healthy: h.healthy,
                note: h.note,
                position: h.position,
            })
            .collect()
    }

    /// The writer watched over the grace period (and, when it does not answer,
    /// what the other vantage points say), then the secondaries and their lag.
    /// Lag samples are aged from the first failure seen here: once the writer is
    /// gone no newer sample can be taken, so the grace period must not age them.
    pub async fn observe(&self, trigger: &Trigger, active: &str) -> Situation {
        let regions = self.config.region_names();
        let credited = self.failing_here_for(active).await;
        let first_probe_ms = now_ms();
        let clock = RealClock::start();
        let watch = detect::watch(
            || self.probe_writer(),
            &clock,
            self.config.writer_grace,
            credited,
            self.config.probe_every,
        );
        // The candidates are looked at during the watch's last probe interval, not
        // after it: once the grace period is over every second is downtime, and a
        // writer silent that long has nothing left in flight to them. A writer that
        // answers earlier ends the watch first; they are looked at then.
        let last_interval = self
            .config
            .writer_grace
            .saturating_sub(credited)
            .saturating_sub(self.config.probe_every);
        let dark_since_ms = first_probe_ms.saturating_sub(credited.as_millis() as u64);
        let candidates = self.candidates(active, &regions, dark_since_ms);
        let (verdict, prefetched) = {
            tokio::pin!(watch);
            let early = tokio::time::sleep(last_interval);
            tokio::pin!(early);
            tokio::select! {
                v = &mut watch => (v, None),
                _ = &mut early => {
                    let (v, c) = tokio::join!(watch, candidates);
                    (v, Some(c))
                }
            }
        };
        let agreement = async {
            if verdict.reachable {
                None
            } else {
                Some(
                    self.settled_agreement(active, first_probe_ms, &verdict)
                        .await,
                )
            }
        };
        let (agreement, candidates) = match prefetched {
            Some(c) => (agreement.await, c),
            // A writer that answered was not failing: its samples are aged from now.
            None => {
                let since = if verdict.reachable {
                    first_probe_ms
                } else {
                    dark_since_ms
                };
                tokio::join!(agreement, self.candidates(active, &regions, since))
            }
        };
        Situation {
            current_primary: active.to_string(),
            primary_reachable: verdict.reachable,
            primary_note: Some(format!(
                "{} (probed from {})",
                verdict.describe(),
                self.config.vantage()
            )),
            agreement,
            candidates,
            requested: trigger.requested,
            origin: trigger.origin,
            target: trigger.target.clone(),
            force: trigger.force,
            rpo_budget_ms: self.config.rpo_budget_ms,
        }
    }

    async fn audit(&self, what: &str, detail: Value) {
        let at = now_ms();
        let ts = format!("{at:013}#{:08x}", rand_suffix());
        let event = json!({"what": what, "at_ms": at, "detail": detail});
        if let Err(e) = self
            .store
            .append(
                &keys::failover_event(&ts),
                &event,
                Some(Duration::from_secs(90 * 24 * 3600)),
            )
            .await
        {
            tracing::warn!(error = %e, "writing the audit event failed");
        }
    }

    async fn notify(
        &self,
        event_type: &str,
        severity: Severity,
        subject: String,
        text: String,
        detail: Value,
    ) {
        if let Some(n) = &self.notifier {
            let note = Notification {
                subject,
                event_type: format!("failover.{event_type}"),
                severity,
                text,
                detail,
            };
            if let Err(e) = n.publish(&note).await {
                tracing::warn!(error = %e, "notification failed");
            }
        }
    }

    fn in_cooldown(&self, state: &Option<FailoverState>) -> Option<String> {
        let s = state.as_ref()?;
        let finished = s.finished_at_ms?;
        let until = finished + self.config.cooldown.as_millis() as u64;
        (s.phase == Phase::Completed && now_ms() < until).then(|| {
            format!(
                "a {:?} {} -> {} completed {} s ago (epoch {}); cooldown until {} s from now",
                s.kind,
                s.from,
                s.to,
                (now_ms() - finished) / 1000,
                s.lease_epoch,
                (until - now_ms()) / 1000
            )
        })
    }

    pub async fn status(&self) -> Result<Value, FailoverError> {
        let state = self
            .store
            .get::<FailoverState>(&state_key())
            .await?
            .map(|v| v.value);
        let lease = self.leases.current().await?;
        let active = self.active_region().await.ok();
        let writer = active.clone().unwrap_or_default();
        let mut lag = BTreeMap::new();
        for r in self.config.region_names() {
            lag.insert(
                r.clone(),
                self.lag(&r, &writer, now_ms()).await.map(|r| {
                    format!(
                        "{} (sampled from {})",
                        lag_text(r.ms, r.lower_bound),
                        r.vantage
                    )
                }),
            );
        }
        let every = keys::reach_from_every_vantage(&writer);
        let reach: Vec<ReachRecord> = self
            .store
            .query_prefix::<ReachRecord>(&every.pk, &every.sk)
            .await?
            .into_iter()
            .map(|(_, v)| v.value)
            .collect();
        Ok(json!({
            "active_region": active,
            "state": state,
            "lease": lease.map(|l| json!({"holder": l.holder, "epoch": l.epoch, "expires_at_ms": l.expires_at_ms})),
            "fresh_lag_ms": lag,
            "writer_reachability": reach,
        }))
    }

    /// Writes an SSM parameter unless it already holds `value`, the lease checked first.
    /// The first transaction id of the new primary, taken (`pg_current_xact_id()`)
    /// while SSM still names the old writer, so no application write precedes it.
    /// Not read once the endpoint was already moved (a resumed run): too late to be
    /// a boundary; the reconciliation then says it has no evidence.
    async fn fork_xid(&self, new_writer: &str, steps: &mut Vec<String>) -> Option<u64> {
        let moved = self
            .access
            .writer_endpoint(&self.ssm)
            .await
            .map(|e| e.to_string() == new_writer)
            .unwrap_or(false);
        if moved {
            steps.push("fork xid: not read (the endpoint had moved already)".into());
            return None;
        }
        let read = async {
            let endpoint = new_writer.parse().map_err(|e: String| e)?;
            let c = self
                .access
                .connect(&self.access.target("new writer", endpoint))
                .await
                .map_err(|e| e.to_string())?;
            let row = c
                .query_one("SELECT pg_current_xact_id()::text", &[])
                .await
                .map_err(|e| e.to_string())?;
            row.get::<_, String>(0)
                .parse::<u64>()
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.config.probe_timeout, read).await {
            Ok(Ok(xid)) => {
                steps.push(format!(
                    "fork xid {xid}: rows written on {new_writer} from this transaction id on are new since the failover"
                ));
                Some(xid)
            }
            Ok(Err(e)) => {
                steps.push(format!("fork xid: not read ({e})"));
                None
            }
            Err(_) => {
                steps.push("fork xid: not read (no answer in time)".into());
                None
            }
        }
    }

    async fn put_if_changed(
        &self,
        step: Step,
        name: &str,
        value: &str,
        fence: &LeaseFence<'_>,
        steps: &mut Vec<String>,
    ) -> Result<(), FailoverError> {
        let current = cutover_core::db::parameter(&self.ssm, name).await.ok();
        if current.as_deref() == Some(value) {
            steps.push(format!("SSM {name} already {value}"));
            return Ok(());
        }
        fence.check(step).await?;
        put_string(&self.ssm, name, value)
            .await
            .map_err(|e| FailoverError::Core(cutover_core::Error::aws("SSM", "PutParameter", e)))?;
        steps.push(format!("SSM {name} <- {value}"));
        Ok(())
    }

    /// The two endpoint parameters written to every other region's SSM, all at
    /// once, each region bounded by the probe timeout: a region that is lost (the
    /// one the writer left, often) does not hold up the move. Its copy keeps naming
    /// the old writer until it is reachable again and written (`sync-endpoints`, or
    /// the next move); the steps say which regions were not written.
    async fn copy_endpoints(
        &self,
        new_writer: &str,
        to: &str,
        fence: &LeaseFence<'_>,
        steps: &mut Vec<String>,
    ) -> Result<(), FailoverError> {
        if self.regional_ssm.is_empty() {
            return Ok(());
        }
        fence.renew().await?;
        let writes = [
            (self.db_param("writer-endpoint"), new_writer.to_string()),
            (self.app_param("active-region"), to.to_string()),
        ];
        let copies = self.write_copies(self.regional_ssm.iter().map(|(r, c)| (r, c)), &writes);
        for (region, result) in copies.await {
            steps.push(match result {
                Ok(0) => format!("SSM copy in {region}: already current"),
                Ok(n) => format!("SSM copy in {region}: {n} parameter(s) written"),
                Err(e) => format!(
                    "SSM copy in {region}: NOT written ({e}); it names the old writer until it is written (`sync-endpoints`)"
                ),
            });
        }
        Ok(())
    }

    /// `writes` into every given region's SSM at once, each region given the probe
    /// timeout: a region that does not answer (lost, or its API slow) delays the
    /// others by nothing and the whole by at most the timeout.
    async fn write_copies<'a>(
        &self,
        regions: impl Iterator<Item = (&'a String, &'a aws_sdk_ssm::Client)>,
        writes: &[(String, String)],
    ) -> Vec<(String, Result<usize, String>)> {
        let copies = regions.map(|(region, ssm)| async move {
            let copy = write_missing(ssm, writes);
            let result = match tokio::time::timeout(self.config.probe_timeout, copy).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "no answer within {} ms",
                    self.config.probe_timeout.as_millis()
                )),
            };
            (region.clone(), result)
        });
        futures::future::join_all(copies).await
    }

    /// `sync-endpoints`: every region's copy, this region's included, made to name
    /// the writer of the last completed move (`FAILOVER` / `STATE`, a global table
    /// replicated to every region). A region that was lost and came back still names
    /// the old writer in its own copy; copying its view outwards would undo the move,
    /// so the recorded move is the truth, not any region's copy. With no move recorded
    /// yet, this region's copy is. Nothing is written while a move is in progress (its
    /// holder writes the endpoints, fenced). Changes only copies that differ. Run by
    /// a schedule in every region, so a region heals by itself once it is back.
    pub async fn sync_endpoints(&self) -> Result<Value, FailoverError> {
        let state = self.store.get::<FailoverState>(&state_key()).await?;
        let (writer, active, from) = match state.as_ref().map(|s| &s.value) {
            Some(s) if s.phase == Phase::InProgress => {
                return Ok(json!({
                    "action": "skipped",
                    "why": format!(
                        "a {:?} {} -> {} is in progress (epoch {}); its holder writes the endpoints",
                        s.kind, s.from, s.to, s.lease_epoch
                    ),
                }));
            }
            Some(s) => (
                self.driver.writer_endpoint(&s.to).await?,
                s.to.clone(),
                format!(
                    "the last completed move ({:?} {} -> {}, epoch {})",
                    s.kind, s.from, s.to, s.lease_epoch
                ),
            ),
            None => (
                cutover_core::db::parameter(&self.ssm, &self.db_param("writer-endpoint")).await?,
                self.active_region().await?,
                "this region's copy (no move recorded)".to_string(),
            ),
        };
        let writes = [
            (self.db_param("writer-endpoint"), writer.clone()),
            (self.app_param("active-region"), active.clone()),
        ];
        let mut out = BTreeMap::new();
        let home = self.config.core.primary_region.as_str().to_string();
        let every = std::iter::once((&home, &self.ssm))
            .chain(self.regional_ssm.iter().map(|(r, c)| (r, c)));
        for (region, result) in self.write_copies(every, &writes).await {
            let result = match result {
                Ok(n) => json!({"written": n}),
                Err(e) => json!({"error": e}),
            };
            out.insert(region, result);
        }
        Ok(
            json!({"action": "synced", "from": from, "writer_endpoint": writer, "active_region": active, "regions": out}),
        )
    }

    /// Runs one trigger. `holder` names this invocation in the lease.
    pub async fn run(&self, trigger: Trigger, holder: &str) -> Result<Outcome, FailoverError> {
        let started = Instant::now();
        let started_ms = now_ms();
        let regions = self.config.region_names();
        // STATE first: a move in progress is finished before anything new is decided.
        let state = self.store.get::<FailoverState>(&state_key()).await?;
        let recorded = state
            .as_ref()
            .map(|s| &s.value)
            .filter(|s| s.phase == Phase::InProgress)
            .cloned();
        let mut decision = None;
        let mut observed_ms = 0;
        let mut active = None;
        let mut moving_elsewhere = false;
        if let Some(r) = &recorded {
            if trigger.dry_run {
                return Ok(outcome(
                    "dry-run",
                    format!(
                        "would resume the {:?} {} -> {} left in progress by {} (epoch {})",
                        r.kind, r.from, r.to, r.holder, r.lease_epoch
                    ),
                ));
            }
        } else {
            let now_active = self.active_region().await?;
            if let Some(t) = &trigger.target {
                if !regions.contains(t) {
                    return Err(FailoverError::InvalidInput(format!(
                        "unknown target region {t:?}; the regions are {}",
                        regions.join(", ")
                    )));
                }
                if *t == now_active {
                    return Err(FailoverError::InvalidInput(format!(
                        "the target {t} is already the primary; nothing to do"
                    )));
                }
            }
            if !trigger.dry_run {
                if let Some(why) = self.in_cooldown(&state.as_ref().map(|s| s.value.clone())) {
                    return Ok(outcome("cooldown", why));
                }
            }
            let situation = self.observe(&trigger, &now_active).await;
            observed_ms = started.elapsed().as_millis() as u64;
            let d = decide(&situation);
            if trigger.dry_run {
                let mut o = outcome("dry-run", format!("would: {}", summary_of(&d)));
                o.decision = Some(d);
                return Ok(o);
            }
            if let Decision::Refuse { .. } = &d {
                // Re-read before refusing: a move that started while we looked (the
                // endpoint flipped under our probe) is the one to report or finish.
                let again = self.store.get::<FailoverState>(&state_key()).await?;
                if let Some(why) = self.in_cooldown(&again.as_ref().map(|s| s.value.clone())) {
                    return Ok(outcome("cooldown", why));
                }
                moving_elsewhere = again
                    .as_ref()
                    .is_some_and(|s| s.value.phase == Phase::InProgress);
                // A holder is moving the writer right now (what it does changes
                // what this run saw: a candidate already promoted, or busy): that
                // move is the answer, not a refusal.
                if !moving_elsewhere {
                    if let Ok(Some(l)) = self.leases.current().await {
                        if l.expires_at_ms > now_ms() {
                            let mut o = outcome(
                                "fenced",
                                format!(
                                    "{} holds the failover lease (epoch {}) and is moving the writer; this run's view is out of date",
                                    l.holder, l.epoch
                                ),
                            );
                            o.holder = Some(l.holder);
                            o.epoch = Some(l.epoch);
                            return Ok(o);
                        }
                    }
                }
                // Another region's failover may have moved the writer already: its
                // record reaches this region's replica a moment later than its copy
                // of the endpoints (written at once, in every region it reaches).
                if let Ok(now) = self.active_region().await {
                    if now != now_active {
                        return Ok(outcome(
                            "completed-elsewhere",
                            format!(
                                "the writer moved from {now_active} to {now} while this run observed (another invocation or region moved it); nothing to do"
                            ),
                        ));
                    }
                }
            }
            if let (Decision::Refuse { reasons, alert }, false) = (&d, moving_elsewhere) {
                self.audit(
                    "refused",
                    json!({"trigger": trigger.describe, "reasons": reasons}),
                )
                .await;
                if *alert {
                    self.notify(
                        "refused",
                        Severity::Critical,
                        format!("cutover failover REFUSED ({})", trigger.describe),
                        reasons.join("\n"),
                        json!({"situation": situation}),
                    )
                    .await;
                }
                let mut o = outcome("refused", reasons.last().cloned().unwrap_or_default());
                o.decision = Some(d);
                return Ok(o);
            }
            if !moving_elsewhere {
                decision = Some(d);
                active = Some(now_active);
            }
        }

        // Fencing: nothing changes before this.
        let lease = match self.leases.acquire(holder, self.config.lease_ttl).await {
            Ok(l) => l,
            Err(cutover_core::Error::Fenced(why)) => {
                let current = self.leases.current().await.ok().flatten();
                let mut o = outcome(
                    "fenced",
                    format!("another invocation holds the failover lease: {why}"),
                );
                o.holder = current.as_ref().map(|c| c.holder.clone());
                o.epoch = current.map(|c| c.epoch);
                return Ok(o);
            }
            Err(e) => return Err(e.into()),
        };
        // Re-read under the lease: someone may have finished, or left a move half
        // done, just before we took it. A move in progress wins over our decision.
        let state = self.store.get::<FailoverState>(&state_key()).await?;
        if let Some(why) = self.in_cooldown(&state.as_ref().map(|s| s.value.clone())) {
            let _ = self.leases.release(&lease).await;
            return Ok(outcome("cooldown", why));
        }
        let planned = match state.as_ref().map(|s| &s.value) {
            Some(s) if s.phase == Phase::InProgress => Move::recorded(s),
            _ => match (&decision, &active) {
                (Some(d), Some(a)) => match Move::decided(d, a) {
                    Some(m) => m,
                    None => {
                        let _ = self.leases.release(&lease).await;
                        return Err(FailoverError::Internal(
                            "a refusal reached the lease".into(),
                        ));
                    }
                },
                _ => {
                    // The move we saw in progress was completed by its holder meanwhile.
                    let _ = self.leases.release(&lease).await;
                    return Ok(outcome(
                        "completed-elsewhere",
                        "the move left in progress was completed by another invocation".into(),
                    ));
                }
            },
        };
        let Move {
            kind,
            from,
            to,
            expected_loss_ms,
            loss_is_lower_bound,
            resumed,
        } = planned;
        let mut record = FailoverState {
            phase: Phase::InProgress,
            kind,
            from: from.clone(),
            to: to.clone(),
            lease_epoch: lease.epoch,
            holder: holder.to_string(),
            trigger: trigger.describe.clone(),
            expected_loss_ms,
            loss_is_lower_bound,
            started_at_ms: started_ms,
            finished_at_ms: None,
            fork_xid: state.as_ref().and_then(|s| s.value.fork_xid),
        };
        let version = self
            .store
            .put_fenced(
                &lease,
                &state_key(),
                &record,
                state.as_ref().map(|s| s.version),
            )
            .await?;
        let reasons: Vec<String> = decision
            .as_ref()
            .map(|d| d.reasons().to_vec())
            .unwrap_or_else(|| {
                vec![format!(
                    "resuming the {kind:?} {from} -> {to} left in progress"
                )]
            });
        self.audit(
            if resumed { "resumed" } else { "started" },
            json!({"epoch": lease.epoch, "holder": holder, "kind": kind, "from": from, "to": to,
                   "trigger": trigger.describe, "reasons": reasons, "expected_loss_ms": expected_loss_ms}),
        )
        .await;

        let fence = LeaseFence::new(
            &self.leases,
            lease,
            self.config.lease_ttl,
            self.drill_stop_before,
        );
        let driver_started = Instant::now();
        let report: DriverReport = match kind {
            Kind::Switchover => self.driver.switchover(&from, &to, &regions, &fence).await,
            Kind::Failover => self.driver.failover(&from, &to, &regions, &fence).await,
        }
        .map_err(|e| {
            tracing::error!(error = %e, "the driver stopped; STATE stays in progress for the next holder");
            e
        })?;
        let driver_ms = driver_started.elapsed().as_millis() as u64;

        // The endpoints: each re-read, written only if it differs, the lease checked
        // before each write. writer-endpoint first: the application follows it, and
        // active-region == target then implies it is done.
        let mut steps = report.steps;
        // The target's writer endpoint, from the driver (RDS for Aurora), never
        // its reader endpoint.
        let new_writer = self.driver.writer_endpoint(&to).await?;
        if kind == Kind::Failover && record.fork_xid.is_none() {
            record.fork_xid = self.fork_xid(&new_writer, &mut steps).await;
        }
        self.put_if_changed(
            Step::Endpoint,
            &self.db_param("writer-endpoint"),
            &new_writer,
            &fence,
            &mut steps,
        )
        .await?;
        self.put_if_changed(
            Step::ActiveRegion,
            &self.app_param("active-region"),
            &to,
            &fence,
            &mut steps,
        )
        .await?;
        let endpoints_at_ms = now_ms();
        self.copy_endpoints(&new_writer, &to, &fence, &mut steps)
            .await?;
        fence.check(Step::Record).await?;
        let lease = fence.lease();
        record.phase = Phase::Completed;
        record.finished_at_ms = Some(endpoints_at_ms);
        // Over whatever version is there now: the other region's replica may have
        // replicated a same-epoch record in since (a lease race across regions that
        // this holder won under the promotion lock); only a newer epoch refuses it.
        self.store
            .put_fenced_over(&lease, &state_key(), &record, Some(version))
            .await?;
        let total_ms = started.elapsed().as_millis() as u64;
        let timings = json!({
            "fork_xid": record.fork_xid,
            "observe_ms": observed_ms, "driver_ms": driver_ms, "total_ms": total_ms,
            "promoted_at_ms": report.promoted_at_ms, "endpoints_at_ms": endpoints_at_ms, "started_at_ms": started_ms,
        });
        let detail = json!({"epoch": lease.epoch, "kind": kind, "from": from, "to": to, "writer_endpoint": new_writer,
                            "trigger": trigger.describe, "reasons": reasons, "steps": steps, "resumed": resumed,
                            "expected_loss_ms": expected_loss_ms, "timings": timings});
        self.audit("completed", detail.clone()).await;
        let summary =
            format!(
            "{:?} {from} -> {to} {}in {total_ms} ms (epoch {}); writer endpoint now {new_writer}{}",
            kind,
            if resumed { "resumed and done " } else { "done " },
            lease.epoch,
            match (kind, expected_loss_ms) {
                (Kind::Switchover, _) => "; RPO 0 by construction".to_string(),
                (Kind::Failover, Some(l)) if loss_is_lower_bound => {
                    format!("; at least {l:.0} ms of writes may be lost (a lower bound)")
                }
                (Kind::Failover, Some(l)) => format!("; up to {l:.0} ms of writes may be lost"),
                (Kind::Failover, None) => "; data loss unknown (forced)".to_string(),
            }
        );
        self.notify(
            "completed",
            Severity::Critical,
            format!(
                "cutover {} {from} -> {to}",
                if kind == Kind::Switchover {
                    "switchover"
                } else {
                    "failover"
                }
            ),
            summary.clone(),
            detail.clone(),
        )
        .await;
        let entry = PutEventsRequestEntry::builder()
            .source("cutover.failover")
            .detail_type("Cutover Primary Changed")
            .detail(detail.to_string())
            .event_bus_name(&self.config.event_bus)
            .build();
        if let Err(e) = self.events.put_events().entries(entry).send().await {
            tracing::warn!(error = %cutover_core::error::describe_chain(&e), "PutEvents failed");
        }
        let mut o = outcome(
            if kind == Kind::Switchover {
                "switchover"
            } else {
                "failover"
            },
            summary,
        );
        o.decision = decision;
        o.epoch = Some(lease.epoch);
        o.holder = Some(holder.to_string());
        o.steps = steps;
        o.timings = Some(timings);
        Ok(o)
    }
}

/// Writes a String parameter, overwriting it.
pub async fn put_string(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
) -> Result<
    (),
    aws_sdk_ssm::error::SdkError<aws_sdk_ssm::operation::put_parameter::PutParameterError>,
> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map(|_| ())
}

/// Writes each `(name, value)` that `ssm` does not already hold; how many were written.
async fn write_missing(
    ssm: &aws_sdk_ssm::Client,
    writes: &[(String, String)],
) -> Result<usize, String> {
    let mut written = 0;
    for (name, value) in writes {
        if cutover_core::db::parameter(ssm, name).await.ok().as_deref() == Some(value.as_str()) {
            continue;
        }
        put_string(ssm, name, value)
            .await
            .map_err(|e| cutover_core::error::describe_chain(&e))?;
        written += 1;
    }
    Ok(written)
}

fn summary_of(d: &Decision) -> String {
    match d {
        Decision::Switchover { target, .. } => format!("planned switchover to {target}"),
        Decision::Failover {
            target,
            expected_loss_ms,
            loss_is_lower_bound,
            ..
        } => format!(
            "failover to {target}, expected loss {}",
            expected_loss_ms.map_or("unknown".to_string(), |l| format!(
                "{} ms",
                lag_text(l, *loss_is_lower_bound)
            ))
        ),
        Decision::Refuse { reasons, .. } => {
            format!("refuse: {}", reasons.last().cloned().unwrap_or_default())
        }
    }
}

fn rand_suffix() -> u32 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    n ^ std::process::id().rotate_left(16)
}
