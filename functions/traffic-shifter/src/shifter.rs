//! The commands, against ALB, CloudWatch and the state table.
//!
//! Order of every change: read the state (with its version) → check gates →
//! record the change, conditional on the version read → write the listener
//! weights it names in every region at once and re-read each listener until
//! they are in effect → re-read the state and, while it has moved on (a
//! rollback recorded meanwhile), write the newest recorded weights. A writer
//! stops only when a state read *after* its last write shows the version it
//! wrote, so the last listener write always carries the last recorded weights:
//! a rollback recorded during a tick's write is never overwritten, and a record
//! that loses the race has written nothing. A writer that dies between its
//! record and its write leaves drift that `reconcile` (scheduled) repairs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cutover_core::aws::Aws;
use cutover_core::notify::{Notification, Notifier, Severity};
use cutover_core::state::{keys, now_ms, StateStore, Versioned};
use futures::future::join_all;
use serde::Serialize;
use serde_json::json;

use crate::alb::{self, RegionAlb};
use crate::config::ShifterConfig;
use crate::deployment::{Deployment, NextStep, OnGateFailure, Status};
use crate::ecs;
use crate::gates::{self, GateResult};
use crate::lifecycle::{self, HookPhase, HookStatus};
use crate::plan::{Scope, Step};
use crate::ShiftError;

/// At most this many due steps (zero bakes) are applied in one tick.
const MAX_STEPS_PER_TICK: usize = 50;
const HISTORY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Rounds of "re-read the state, write what it names" before a writer gives up
/// (each round is one state read; a round writes only when the state moved).
const FOLLOW_ROUNDS: usize = 10;

pub struct Shifter {
    pub config: ShifterConfig,
    pub store: StateStore,
    elb: BTreeMap<String, aws_sdk_elasticloadbalancingv2::Client>,
    cw: BTreeMap<String, aws_sdk_cloudwatch::Client>,
    ecs: BTreeMap<String, aws_sdk_ecs::Client>,
    scaling: BTreeMap<String, aws_sdk_applicationautoscaling::Client>,
    notifier: Option<Notifier>,
    /// The Lambda client of each configured lifecycle hook (its ARN's region, or the primary's).
    hook_clients: BTreeMap<HookPhase, aws_sdk_lambda::Client>,
    #[cfg(any(test, feature = "test-hooks"))]
    pub hooks: std::sync::Arc<crate::hooks::Hooks>,
}

/// What a lifecycle hook's turn leaves: go on with the recorded state (and
/// the weights it wrote, for a promote), or stop with this outcome.
enum HookTurn {
    Continue(Versioned<Deployment>, Option<AppliedStep>),
    Stop(Outcome),
}

/// A request to start a deployment, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSpec {
    pub plan: String,
    pub steps: Vec<Step>,
    pub scope: Scope,
    pub region_bake_secs: u64,
    pub on_gate_failure: OnGateFailure,
    /// The image for the new side (a new revision of its own family); `None` = its family's latest.
    pub image: Option<String>,
}

/// What a command did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// started | stepped | held | nothing-due | paused | resumed | promoted |
    /// aborted | rolled-back | ignored | duplicate | status | succeeded |
    /// waiting (the new side is not ready) | retired | in-sync | reconciled
    pub action: String,
    pub summary: String,
    pub deployment: Option<Deployment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<AppliedStep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEvent>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedStep {
    pub regions: Vec<String>,
    pub weight: u8,
    /// Listener reads until the weights were in effect, per region.
    pub verify_reads: Vec<u32>,
    pub elapsed_ms: u64,
}

/// One line of a deployment's history (`DEPLOYMENT#<service>` / `EVENT#<ts>`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HistoryEvent {
    pub deployment_id: String,
    pub action: String,
    pub status: Status,
    pub weights: BTreeMap<String, u8>,
    pub detail: String,
    pub at_ms: u64,
}

fn outcome(action: &str, d: Option<&Deployment>) -> Outcome {
    Outcome {
        action: action.into(),
        summary: d.map_or_else(|| "no deployment".to_string(), Deployment::describe),
        deployment: d.cloned(),
        gates: vec![],
        steps: vec![],
        history: None,
    }
}

impl Shifter {
    pub fn new(config: ShifterConfig, aws: &Aws) -> Self {
        let mut elb = BTreeMap::new();
        let mut cw = BTreeMap::new();
        let mut ecs = BTreeMap::new();
        let mut scaling = BTreeMap::new();
        for region in &config.core.regions {
            scaling.insert(
                region.as_str().to_string(),
                aws_sdk_applicationautoscaling::Client::new(&aws.regional(region)),
            );
            elb.insert(region.as_str().to_string(), aws.elbv2(region));
            cw.insert(region.as_str().to_string(), aws.cloudwatch(region));
            ecs.insert(
                region.as_str().to_string(),
                aws_sdk_ecs::Client::new(&aws.regional(region)),
            );
        }
        let notifier = config
            .core
            .ops_topic_arn
            .as_ref()
            .map(|arn| Notifier::new(aws.sns(), arn.clone()));
        let hook_clients = config
            .hooks
            .functions
            .iter()
            .map(|(phase, function)| {
                let region = lifecycle::check_function(function)
                    .ok()
                    .flatten()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or_else(|| config.core.primary_region.clone());
                (*phase, aws_sdk_lambda::Client::new(&aws.regional(&region)))
            })
            .collect();
        Shifter {
            hook_clients,
            store: StateStore::new(aws.dynamodb(), config.core.state_table.clone()),
            config,
            elb,
            cw,
            ecs,
            scaling,
            notifier,
            #[cfg(any(test, feature = "test-hooks"))]
            hooks: Default::default(),
        }
    }

    /// The colours' services of a region, oriented like [`Shifter::alb`]; `None` = weights only.
    fn ecs(
        &self,
        region: &str,
        swapped: bool,
    ) -> Result<Option<(aws_sdk_ecs::Client, ecs::RegionEcs)>, ShiftError> {
        let alb = self.alb(region, swapped)?;
        Ok(alb.ecs.map(|e| (self.ecs[region].clone(), e)))
    }

    /// Moves a colour's autoscaling floor with its count (a service without a
    /// scalable target has none to move).
    async fn floor(
        &self,
        region: &str,
        e: &ecs::RegionEcs,
        service: &str,
        min: i32,
    ) -> Result<(), ShiftError> {
        if let Some(client) = self.scaling.get(region) {
            ecs::set_floor(client, &e.cluster, service, min).await?;
        }
        Ok(())
    }

    fn scales(&self) -> bool {
        self.config.albs.iter().any(|a| a.ecs.is_some())
    }

    /// A region's listener and groups as a deployment sees them: `swapped` when
    /// the green group was live at its start, so the new version is in blue and
    /// the two groups exchange roles (the live side is always called "blue").
    fn alb(&self, region: &str, swapped: bool) -> Result<RegionAlb, ShiftError> {
        let alb = self
            .config
            .alb(region)
            .ok_or_else(|| ShiftError::InvalidInput(format!("unknown region {region:?}")))?;
        Ok(if swapped { alb.swapped() } else { alb.clone() })
    }

    fn elb(&self, region: &str) -> Result<&aws_sdk_elasticloadbalancingv2::Client, ShiftError> {
        self.elb
            .get(region)
            .ok_or_else(|| ShiftError::InvalidInput(format!("unknown region {region:?}")))
    }

    pub fn check_service(&self, service: Option<&str>) -> Result<(), ShiftError> {
        match service {
            Some(s) if s != self.config.service => Err(ShiftError::InvalidInput(format!(
                "unknown service {s:?}: this function shifts {:?}",
                self.config.service
            ))),
            _ => Ok(()),
        }
    }

    pub async fn load(&self) -> Result<Option<Versioned<Deployment>>, ShiftError> {
        Ok(self
            .store
            .get::<Deployment>(&keys::deployment_current(&self.config.service))
            .await?)
    }

    async fn record(
        &self,
        d: &Deployment,
        version: Option<u64>,
        action: &str,
        detail: String,
    ) -> Result<u64, ShiftError> {
        let v = self
            .store
            .save(&keys::deployment_current(&self.config.service), d, version)
            .await?;
        let at_ms = now_ms();
        let event = HistoryEvent {
            deployment_id: d.id.clone(),
            action: action.into(),
            status: d.status,
            weights: d.weights.clone(),
            detail,
            at_ms,
        };
        let ts = format!("{at_ms:013}#{}#{v:06}", d.id);
        if let Err(e) = self
            .store
            .append(
                &keys::deployment_event(&self.config.service, &ts),
                &event,
                Some(HISTORY_TTL),
            )
            .await
        {
            tracing::warn!(error = %e, "writing the history event failed");
        }
        Ok(v)
    }

    pub async fn history(&self, deployment_id: &str) -> Result<Vec<HistoryEvent>, ShiftError> {
        let pk = format!("DEPLOYMENT#{}", self.config.service);
        let events = self
            .store
            .query_prefix::<HistoryEvent>(&pk, "EVENT#")
            .await?;
        Ok(events
            .into_iter()
            .map(|(_, v)| v.value)
            .filter(|e| e.deployment_id == deployment_id)
            .collect())
    }

    async fn notify(&self, event_type: &str, severity: Severity, d: &Deployment, text: String) {
        if let Some(n) = &self.notifier {
            let note = Notification {
                subject: format!("cutover traffic {}: {}", d.service, event_type),
                event_type: format!("traffic.{event_type}"),
                severity,
                text,
                detail: json!(d),
            };
            if let Err(e) = n.publish(&note).await {
                tracing::warn!(error = %e, "notification failed");
            }
        }
    }

    /// Checks every gate for every region of a step, all at once.
    pub async fn gates(
        &self,
        regions: &[String],
        swapped: bool,
    ) -> Result<Vec<GateResult>, ShiftError> {
        let g = &self.config.gates;
        let mut checks = Vec::new();
        for region in regions {
            let alb = self.alb(region, swapped)?;
            let elb = self.elb(region)?.clone();
            let cw = self.cw[region].clone();
            let watched = g.watched_alarms.clone();
            let (min, limit, rate) = (g.min_healthy_green, g.latency_p99_ms, g.error_rate_pct);
            let region = region.clone();
            checks.push(async move {
                let mut out = vec![
                    gates::alarms(&cw, &region, &watched).await,
                    gates::green_healthy(&elb, &alb, min).await,
                ];
                if let Some(limit) = limit {
                    out.push(gates::latency(&cw, &alb, limit).await);
                }
                if let Some(rate) = rate {
                    out.push(gates::error_rate(&cw, &alb, rate).await);
                }
                out
            });
        }
        Ok(join_all(checks).await.into_iter().flatten().collect())
    }

    /// Writes green's share in every region at once and waits until each is in effect.
    async fn apply(
        &self,
        regions: &[String],
        weight: u8,
        swapped: bool,
    ) -> Result<AppliedStep, ShiftError> {
        let started = Instant::now();
        let mut writes = Vec::new();
        for region in regions {
            let alb = self.alb(region, swapped)?;
            let elb = self.elb(region)?.clone();
            writes.push(async move { alb::set_green(&elb, &alb, weight).await });
        }
        let results = join_all(writes).await;
        let mut reads = Vec::new();
        for r in results {
            reads.push(r?);
        }
        Ok(AppliedStep {
            regions: regions.to_vec(),
            weight,
            verify_reads: reads,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Writes every region's recorded share at once and waits until each is in effect.
    async fn apply_recorded(&self, d: &Deployment) -> Result<(), ShiftError> {
        let mut writes = Vec::new();
        for (region, weight) in &d.weights {
            let alb = self.alb(region, d.swapped)?;
            let elb = self.elb(region)?.clone();
            let weight = *weight;
            writes.push(async move { alb::set_green(&elb, &alb, weight).await });
        }
        for r in join_all(writes).await {
            r?;
        }
        Ok(())
    }

    /// After writing the weights of the state at `version` (`written` = the
    /// write was verified): re-read the state until a read shows the version
    /// last written, writing the newest recorded weights whenever it moved.
    async fn follow(&self, mut version: u64, mut written: bool) -> Result<(), ShiftError> {
        #[cfg(any(test, feature = "test-hooks"))]
        if self.hooks.follow_skipped() {
            return Ok(());
        }
        let mut last_error = None;
        for _ in 0..FOLLOW_ROUNDS {
            let Some(current) = self.load().await? else {
                return Ok(());
            };
            if current.version == version && written {
                return Ok(());
            }
            version = current.version;
            match self.apply_recorded(&current.value).await {
                Ok(()) => written = true,
                Err(e) => {
                    written = false;
                    last_error = Some(e.to_string());
                }
            }
        }
        Err(ShiftError::NotInEffect(format!(
            "the listeners did not settle on the recorded weights in {FOLLOW_ROUNDS} rounds{}",
            last_error.map(|e| format!(": {e}")).unwrap_or_default()
        )))
    }

    /// Writes the weights of a change already recorded at `version`, then follows the record.
    async fn write_recorded(
        &self,
        regions: &[String],
        weight: u8,
        swapped: bool,
        version: u64,
    ) -> Result<AppliedStep, ShiftError> {
        let started = Instant::now();
        #[cfg(any(test, feature = "test-hooks"))]
        self.hooks.write_window().await;
        let applied = self.apply(regions, weight, swapped).await;
        self.follow(version, applied.is_ok()).await?;
        let mut applied = match applied {
            Ok(a) => a,
            // The first write was not verified, but following the record settled it.
            Err(_) => AppliedStep {
                regions: regions.to_vec(),
                weight,
                verify_reads: vec![],
                elapsed_ms: 0,
            },
        };
        applied.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(applied)
    }

    pub async fn start(
        &self,
        spec: StartSpec,
        request_id: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ShiftError> {
        let current = self.load().await?;
        if let Some(c) = &current {
            if c.value.seen(request_id) {
                return Ok(outcome("duplicate", Some(&c.value)));
            }
            if c.value.status.is_active() {
                return Err(ShiftError::Core(cutover_core::Error::Conflict {
                    pk: format!("DEPLOYMENT#{}", self.config.service),
                    sk: "CURRENT".into(),
                    detail: format!(
                        "deployment {} is {:?}; promote or abort it before starting another",
                        c.value.id, c.value.status
                    ),
                }));
            }
        }
        if spec.image.is_some() && !self.scales() {
            return Err(ShiftError::InvalidInput(
                "start with an image needs the colours' ECS services (CUTOVER_ECS_CLUSTERS, CUTOVER_BLUE_SERVICES, CUTOVER_GREEN_SERVICES)".into(),
            ));
        }
        let waves = spec.scope.waves(&self.config.region_names());
        // Every listener of the scope must be a clean forward with one group live
        // (100/0 or 0/100), the same group everywhere: the new version goes to the other.
        let regions: Vec<String> = waves.iter().flatten().cloned().collect();
        let mut reads = Vec::new();
        for region in &regions {
            let alb = self.alb(region, false)?;
            let elb = self.elb(region)?.clone();
            reads.push(async move {
                alb::current(&elb, &alb)
                    .await
                    .map(|w| (alb.region.clone(), w))
            });
        }
        let mut live = std::collections::BTreeMap::new();
        for r in join_all(reads).await {
            let (region, w) = r?;
            let side = match (w.blue, w.green) {
                (100, 0) => "blue",
                (0, 100) => "green",
                _ => {
                    return Err(ShiftError::InvalidInput(format!(
                        "{region} is split blue {} / green {}; abort or promote the previous deployment first",
                        w.blue, w.green
                    )))
                }
            };
            live.insert(region, side);
        }
        let sides: std::collections::BTreeSet<&str> = live.values().copied().collect();
        if sides.len() > 1 {
            return Err(ShiftError::InvalidInput(format!(
                "the regions do not agree on the live group ({}); bring them to the same group first",
                live.iter()
                    .map(|(r, s)| format!("{r}: {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let swapped = sides.contains("green");
        // The new side runs as many tasks as the live side does now, in every region.
        let mut scale = BTreeMap::new();
        for region in &regions {
            if let Some((client, e)) = self.ecs(region, swapped)? {
                let (live, _) = ecs::describe(&client, &e.cluster, &e.blue_service).await?;
                scale.insert(region.clone(), live.desired.max(1));
            }
        }
        // The release: a new revision of the new side's own family with the image, in every
        // region, before the claim (a bad container name changes nothing). Of two concurrent
        // starts, the loser's revision stays unused: the winner deploys its exact ARNs.
        let mut release = BTreeMap::new();
        if let Some(image) = &spec.image {
            for region in scale.keys() {
                if let Some((client, e)) = self.ecs(region, swapped)? {
                    let arn = ecs::register_release(
                        &client,
                        &e.cluster,
                        &e.green_service,
                        &self.config.app_container,
                        image,
                    )
                    .await?;
                    release.insert(region.clone(), arn);
                }
            }
        }
        let now = now_ms();
        let mut d = Deployment {
            id: format!(
                "d-{now}-{:04x}",
                (u64::from(std::process::id()) ^ now) & 0xffff
            ),
            service: self.config.service.clone(),
            plan: spec.plan,
            steps: spec.steps,
            scope: spec.scope,
            waves,
            region_bake_secs: spec.region_bake_secs,
            on_gate_failure: spec.on_gate_failure,
            status: Status::Running,
            wave: 0,
            step: 0,
            weights: regions.iter().map(|r| (r.clone(), 0)).collect(),
            next_at_ms: now,
            held: None,
            reason: None,
            started_at_ms: now,
            changed_at_ms: now,
            request_ids: vec![],
            swapped,
            ready: scale.is_empty(),
            scale,
            retire_at_ms: None,
            retired: false,
            hooks: self.config.hooks.functions.keys().copied().collect(),
            hook_wait: None,
            promote_requested: false,
            image: spec.image,
            release,
        };
        d.remember(request_id);
        // Claim first: of two concurrent starts, the loser stops here, before any listener changes.
        let version = self
            .record(&d, current.map(|c| c.version), "started", d.describe())
            .await?;
        // The new side moves to the release's revision (or its family's latest) and scales up;
        // its autoscaling floor moves with it, or autoscaling would scale it back in.
        for (region, count) in &d.scale {
            if let Some((client, e)) = self.ecs(region, swapped)? {
                self.floor(region, &e, &e.green_service, *count).await?;
                match d.release.get(region) {
                    Some(arn) => {
                        ecs::deploy(&client, &e.cluster, &e.green_service, *count, arn).await?
                    }
                    None => ecs::scale(&client, &e.cluster, &e.green_service, *count, true).await?,
                }
            }
        }
        self.advance_recorded("started", d, version, deadline).await
    }

    /// Advances a deployment just recorded at `version`, its action named after what
    /// recorded it (`"started; …"`).
    async fn advance_recorded(
        &self,
        what: &str,
        d: Deployment,
        version: u64,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ShiftError> {
        let current = Versioned {
            value: d,
            version,
            epoch: None,
        };
        let mut out = self.advance(current, None, deadline).await?;
        out.action = format!("{what}; {}", out.action);
        Ok(out)
    }

    pub async fn tick(
        &self,
        request_id: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ShiftError> {
        let Some(current) = self.load().await? else {
            return Ok(outcome("nothing-due", None));
        };
        if current.value.seen(request_id) {
            return Ok(outcome("duplicate", Some(&current.value)));
        }
        if self.scales() {
            if let Some(new_side) = current.value.retire_due(now_ms()) {
                return self.retire(current, new_side).await;
            }
        }
        self.advance(current, request_id, deadline).await
    }

    /// Are the new side's tasks running and its targets healthy in every region?
    /// A count that is not what the deployment asked for is asked again.
    async fn ready(&self, d: &Deployment) -> Result<(bool, String), ShiftError> {
        let mut ready = true;
        let mut details = Vec::new();
        for (region, want) in &d.scale {
            let Some((client, e)) = self.ecs(region, d.swapped)? else {
                continue;
            };
            let (tasks, _) = ecs::describe(&client, &e.cluster, &e.green_service).await?;
            if tasks.desired != *want {
                ecs::scale(&client, &e.cluster, &e.green_service, *want, false).await?;
            }
            let alb = self.alb(region, d.swapped)?;
            let health = gates::green_healthy(self.elb(region)?, &alb, *want as usize).await;
            let region_ready = tasks.running >= *want && health.ok;
            ready &= region_ready;
            details.push(format!(
                "{region}: {} of {want} tasks running, {}",
                tasks.running, health.detail
            ));
        }
        Ok((ready, details.join("; ")))
    }

    /// Regions whose listener does not show the recorded weights.
    async fn drift(&self, d: &Deployment) -> Result<Vec<String>, ShiftError> {
        let mut reads = Vec::new();
        for (region, want) in &d.weights {
            let alb = self.alb(region, d.swapped)?;
            let elb = self.elb(region)?.clone();
            let want = i32::from(*want);
            reads.push(async move {
                alb::current(&elb, &alb).await.map(|w| {
                    (w.green != want).then(|| {
                        format!(
                            "{}: listener {}/{}, recorded {}/{want}",
                            alb.region,
                            w.blue,
                            w.green,
                            100 - want
                        )
                    })
                })
            });
        }
        let mut drift = Vec::new();
        for r in join_all(reads).await {
            drift.extend(r?);
        }
        Ok(drift)
    }

    /// Scales the side that no longer carries traffic to zero, once every
    /// listener shows the recorded weights (traffic is back, or through).
    async fn retire(
        &self,
        current: Versioned<Deployment>,
        new_side: bool,
    ) -> Result<Outcome, ShiftError> {
        let drift = self.drift(&current.value).await?;
        if !drift.is_empty() {
            let written = self.apply_recorded(&current.value).await.is_ok();
            self.follow(current.version, written).await?;
            let mut o = outcome("waiting", Some(&current.value));
            o.summary = format!(
                "not scaling down while the listeners differ from the record: {}",
                drift.join("; ")
            );
            return Ok(o);
        }
        let mut d = current.value.clone();
        d.retired = true;
        d.changed_at_ms = now_ms();
        let side = if new_side { d.sides().1 } else { d.sides().0 };
        self.record(
            &d,
            Some(current.version),
            "retired",
            format!("{side} scaled to 0 tasks"),
        )
        .await?;
        for region in d.regions() {
            if let Some((client, e)) = self.ecs(&region, d.swapped)? {
                let service = if new_side {
                    &e.green_service
                } else {
                    &e.blue_service
                };
                // The floor first: autoscaling would put a floor of N tasks back.
                self.floor(&region, &e, service, 0).await?;
                ecs::scale(&client, &e.cluster, service, 0, false).await?;
            }
        }
        let mut o = outcome("retired", Some(&d));
        o.summary = format!("{side} scaled to 0 tasks in {}", d.regions().join(", "));
        Ok(o)
    }

    /// Compares every region's listener with the recorded state (finished
    /// deployments too), writes the recorded weights where they differ, and alerts.
    pub async fn reconcile(&self) -> Result<Outcome, ShiftError> {
        let Some(current) = self.load().await? else {
            let mut o = outcome("in-sync", None);
            o.summary = "no deployment recorded; nothing to compare".into();
            return Ok(o);
        };
        let drift = self.drift(&current.value).await?;
        if drift.is_empty() {
            let mut o = outcome("in-sync", Some(&current.value));
            o.summary = format!(
                "every listener shows the record: {}",
                current.value.describe()
            );
            return Ok(o);
        }
        let written = self.apply_recorded(&current.value).await.is_ok();
        self.follow(current.version, written).await?;
        let text = format!(
            "listeners differed from the recorded state, re-asserted: {}",
            drift.join("; ")
        );
        tracing::warn!(drift = %text, "traffic drift");
        self.notify("drift", Severity::Warning, &current.value, text.clone())
            .await;
        let mut o = outcome("reconciled", Some(&current.value));
        o.summary = text;
        Ok(o)
    }

    /// Applies every step that is due (zero bakes run back to back), gate first.
    async fn advance(
        &self,
        mut current: Versioned<Deployment>,
        request_id: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ShiftError> {
        let mut steps = Vec::new();
        let mut gate_log = Vec::new();
        if current.value.status == Status::Running && !current.value.ready {
            let (ready, detail) = self.ready(&current.value).await?;
            if !ready {
                let mut o = outcome("waiting", Some(&current.value));
                o.summary = format!("waiting for the new side: {detail}");
                return Ok(o);
            }
            let mut d = current.value.clone();
            d.ready = true;
            d.next_at_ms = d.next_at_ms.max(now_ms());
            d.changed_at_ms = now_ms();
            let version = self
                .record(&d, Some(current.version), "ready", detail)
                .await?;
            current = Versioned {
                value: d,
                version,
                epoch: None,
            };
        }
        let mut hook_passed = false;
        for _ in 0..MAX_STEPS_PER_TICK {
            if deadline.is_some_and(|d| Instant::now() + Duration::from_secs(5) > d) {
                break;
            }
            if let Some(phase) = current.value.hook_due(now_ms()) {
                match self.run_hook(&current, phase, request_id).await? {
                    HookTurn::Continue(next, applied) => {
                        current = next;
                        steps.extend(applied);
                        hook_passed = true;
                        if current.value.status == Status::Succeeded {
                            break;
                        }
                        continue;
                    }
                    HookTurn::Stop(mut o) => {
                        gate_log.extend(o.gates);
                        o.gates = gate_log;
                        steps.extend(o.steps);
                        o.steps = steps;
                        return Ok(o);
                    }
                }
            }
            let Some(next) = current.value.due(now_ms()) else {
                break;
            };
            let gate_results = self.gates(&next.regions, current.value.swapped).await?;
            let failed: Vec<&GateResult> = gate_results.iter().filter(|g| !g.ok).collect();
            if !failed.is_empty() {
                let why = failed
                    .iter()
                    .map(|g| format!("{} {}: {}", g.region, g.gate, g.detail))
                    .collect::<Vec<_>>()
                    .join("; ");
                gate_log.extend(gate_results.clone());
                return match current.value.on_gate_failure {
                    OnGateFailure::Hold => {
                        let mut d = current.value.clone();
                        d.held = Some(why.clone());
                        d.changed_at_ms = now_ms();
                        d.remember(request_id);
                        self.record(&d, Some(current.version), "held", why.clone())
                            .await?;
                        let mut o = outcome("held", Some(&d));
                        o.gates = gate_log;
                        o.steps = steps;
                        Ok(o)
                    }
                    OnGateFailure::Rollback => {
                        let mut o = self
                            .roll_back(
                                Status::RolledBack,
                                format!("gate failed: {why}"),
                                request_id,
                            )
                            .await?;
                        o.gates = gate_log;
                        Ok(o)
                    }
                };
            }
            gate_log.extend(gate_results);
            let mut d = current.value.clone();
            d.advance(&next, now_ms());
            d.schedule_retire(now_ms(), self.config.scale_down_bake_secs);
            d.remember(request_id);
            // Recorded before any listener moves: a concurrent rollback either
            // recorded first (this record fails, nothing was written) or records
            // after (and its write, or this writer's follow, lands last).
            let detail = format!(
                "{} -> {} {} %",
                next.regions.join(", "),
                d.sides().1,
                next.weight
            );
            let version = self
                .record(&d, Some(current.version), "stepped", detail)
                .await?;
            let applied = self
                .write_recorded(&next.regions, next.weight, d.swapped, version)
                .await?;
            current = Versioned {
                value: d,
                version,
                epoch: None,
            };
            steps.push(applied);
            if current.value.status == Status::Succeeded {
                let d = &current.value;
                self.notify(
                    "succeeded",
                    Severity::Info,
                    d,
                    format!("100 % {}: {}", d.sides().1, d.describe()),
                )
                .await;
                break;
            }
        }
        let waiting_on_hook =
            current.value.status == Status::Running && current.value.pending_hook().is_some();
        let action = match (steps.is_empty(), current.value.status) {
            (_, Status::Succeeded) if !steps.is_empty() || hook_passed => "succeeded",
            (false, _) => "stepped",
            (true, _) if waiting_on_hook => "hook-waiting",
            (true, _) => "nothing-due",
        };
        if steps.is_empty() && request_id.is_some() && current.value.status.is_active() {
            // Remember the request even when nothing was due, so a redelivery stays a no-op.
            let mut d = current.value.clone();
            d.remember(request_id);
            if let Ok(v) = self
                .store
                .update(
                    &keys::deployment_current(&self.config.service),
                    &d,
                    current.version,
                )
                .await
            {
                current = Versioned {
                    value: d,
                    version: v,
                    epoch: None,
                };
            }
        }
        let mut o = outcome(action, Some(&current.value));
        o.gates = gate_log;
        o.steps = steps;
        Ok(o)
    }

    /// What a hook is told: the ECS-like context of the deployment.
    fn hook_payload(&self, d: &Deployment, phase: HookPhase) -> serde_json::Value {
        let (live, new) = d.sides();
        let mut weights = serde_json::Map::new();
        let mut groups = serde_json::Map::new();
        for region in d.regions() {
            let w = d.weights.get(&region).copied().unwrap_or(0);
            weights.insert(region.clone(), json!({ live: 100 - w, new: w }));
            if let Ok(alb) = self.alb(&region, d.swapped) {
                groups.insert(
                    region.clone(),
                    json!({ live: alb.blue_tg_arn, new: alb.green_tg_arn }),
                );
            }
        }
        let wait = d.hook_wait.as_ref().filter(|w| w.phase == phase);
        let details = wait
            .and_then(|w| w.details.clone())
            .or_else(|| self.config.hooks.details.clone());
        json!({
            "lifecycleStage": phase.stage(),
            "service": d.service,
            "deploymentId": d.id,
            "plan": d.plan,
            "liveColour": live,
            "newColour": new,
            "regions": d.regions(),
            "productionTrafficWeights": weights,
            "targetGroups": groups,
            "hookDetails": details,
            "invocation": wait.map_or(1, |w| w.invocations + 1),
        })
    }

    /// Invokes the phase's hook and acts on its answer: SUCCEEDED is recorded
    /// and the deployment goes on, IN_PROGRESS is recorded with when to ask
    /// again, anything else rolls back (recorded first, as every change is).
    async fn run_hook(
        &self,
        current: &Versioned<Deployment>,
        phase: HookPhase,
        request_id: Option<&str>,
    ) -> Result<HookTurn, ShiftError> {
        let hooks = &self.config.hooks;
        let (Some(function), Some(client)) =
            (hooks.functions.get(&phase), self.hook_clients.get(&phase))
        else {
            // Configured when the deployment started, removed since: nothing to ask.
            return self
                .hook_succeeded(
                    current,
                    phase,
                    format!(
                        "no {} hook is configured any more ({}); passed",
                        phase.name(),
                        phase.var()
                    ),
                    request_id,
                )
                .await;
        };
        let failed = |why: String| format!("the {} hook {function} {why}", phase.name());
        if let Some(w) = current
            .value
            .hook_wait
            .as_ref()
            .filter(|w| w.phase == phase)
        {
            let waited = now_ms().saturating_sub(w.since_ms) / 1000;
            if waited > hooks.max_wait_secs {
                let why = failed(format!(
                    "still answered IN_PROGRESS after {waited} s ({} invocations; CUTOVER_HOOK_MAX_WAIT is {} s)",
                    w.invocations, hooks.max_wait_secs
                ));
                return self.hook_failed(why, request_id).await;
            }
        }
        let payload = self.hook_payload(&current.value, phase);
        let started = Instant::now();
        let answer = lifecycle::invoke(
            client,
            function,
            &payload,
            Duration::from_secs(hooks.timeout_secs),
        )
        .await
        .and_then(|v| {
            lifecycle::parse_answer(&v)
                .map_err(|e| format!("answered outside the hook contract: {e}"))
        });
        let ms = started.elapsed().as_millis();
        let answer = match answer {
            Ok(a) => a,
            Err(why) => return self.hook_failed(failed(why), request_id).await,
        };
        let said = answer
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match answer.status {
            HookStatus::Succeeded => {
                self.hook_succeeded(
                    current,
                    phase,
                    format!(
                        "the {} hook {function} answered SUCCEEDED in {ms} ms{said}",
                        phase.name()
                    ),
                    request_id,
                )
                .await
            }
            HookStatus::Failed => {
                self.hook_failed(failed(format!("answered FAILED{said}")), request_id)
                    .await
            }
            HookStatus::InProgress => {
                let mut d = current.value.clone();
                d.hook_in_progress(phase, answer.callback_delay_secs, answer.details, now_ms());
                d.remember(request_id);
                let detail = format!(
                    "the {} hook {function} answered IN_PROGRESS; asked again in {} s{said}",
                    phase.name(),
                    answer.callback_delay_secs
                );
                self.record(
                    &d,
                    Some(current.version),
                    "hook-in-progress",
                    detail.clone(),
                )
                .await?;
                let mut o = outcome("hook-in-progress", Some(&d));
                o.summary = detail;
                Ok(HookTurn::Stop(o))
            }
        }
    }

    async fn hook_succeeded(
        &self,
        current: &Versioned<Deployment>,
        phase: HookPhase,
        detail: String,
        request_id: Option<&str>,
    ) -> Result<HookTurn, ShiftError> {
        let mut d = current.value.clone();
        d.hook_passed(phase, now_ms());
        d.schedule_retire(now_ms(), self.config.scale_down_bake_secs);
        d.remember(request_id);
        let version = self
            .record(&d, Some(current.version), "hook-succeeded", detail)
            .await?;
        let applied = if phase == HookPhase::PrePromote {
            Some(
                self.write_recorded(&d.regions(), 100, d.swapped, version)
                    .await?,
            )
        } else {
            None
        };
        if d.status == Status::Succeeded {
            self.notify(
                "succeeded",
                Severity::Info,
                &d,
                format!("100 % {}: {}", d.sides().1, d.describe()),
            )
            .await;
        }
        Ok(HookTurn::Continue(
            Versioned {
                value: d,
                version,
                epoch: None,
            },
            applied,
        ))
    }

    async fn hook_failed(
        &self,
        why: String,
        request_id: Option<&str>,
    ) -> Result<HookTurn, ShiftError> {
        tracing::warn!(hook = %why, "lifecycle hook failed; rolling back");
        let o = self.roll_back(Status::RolledBack, why, request_id).await?;
        Ok(HookTurn::Stop(o))
    }

    /// Every region of the active deployment back to 100 % on the live group, at once.
    pub async fn roll_back(
        &self,
        status: Status,
        reason: String,
        request_id: Option<&str>,
    ) -> Result<Outcome, ShiftError> {
        // A lost race on the record is retried on the fresh state: a rollback
        // always wins over a tick or a promote, whichever recorded first.
        for _attempt in 0..5 {
            let Some(current) = self.load().await? else {
                return Ok(outcome("nothing-to-roll-back", None));
            };
            if current.value.seen(request_id) {
                return Ok(outcome("duplicate", Some(&current.value)));
            }
            if !current.value.status.is_active() {
                let mut o = outcome("nothing-to-roll-back", Some(&current.value));
                o.summary = format!("no active deployment ({})", current.value.describe());
                return Ok(o);
            }
            let regions = current.value.regions();
            let mut d = current.value.clone();
            d.roll_back(status, reason.clone(), now_ms());
            d.schedule_retire(now_ms(), self.config.scale_down_bake_secs);
            d.remember(request_id);
            // The record first: a tick or promote in flight then either failed to
            // record (and wrote nothing) or follows this record with its next read.
            let version = match self
                .record(
                    &d,
                    Some(current.version),
                    "rolled-back",
                    format!("{reason}; {} 100 % in {}", d.sides().0, regions.join(", ")),
                )
                .await
            {
                Ok(v) => v,
                Err(ShiftError::Core(cutover_core::Error::Conflict { .. })) => continue,
                Err(e) => return Err(e),
            };
            let applied = self.write_recorded(&regions, 0, d.swapped, version).await?;
            self.notify(
                if status == Status::Aborted {
                    "aborted"
                } else {
                    "rollback"
                },
                Severity::Critical,
                &d,
                format!(
                    "rolled back to 100 % {} in {} ms: {reason}",
                    d.sides().0,
                    applied.elapsed_ms
                ),
            )
            .await;
            let mut o = outcome(
                if status == Status::Aborted {
                    "aborted"
                } else {
                    "rolled-back"
                },
                Some(&d),
            );
            o.steps = vec![applied];
            return Ok(o);
        }
        Err(ShiftError::Internal(
            "the rollback lost the state race five times".into(),
        ))
    }

    /// Pause or resume: a state change only.
    pub async fn set_paused(
        &self,
        paused: bool,
        request_id: Option<&str>,
    ) -> Result<Outcome, ShiftError> {
        let current = self.load().await?.ok_or_else(|| {
            ShiftError::InvalidInput("there is no deployment to pause or resume".into())
        })?;
        let (from, to, action) = if paused {
            (Status::Running, Status::Paused, "paused")
        } else {
            (Status::Paused, Status::Running, "resumed")
        };
        if current.value.seen(request_id) || current.value.status == to {
            return Ok(outcome(action, Some(&current.value)));
        }
        if current.value.status != from {
            return Err(ShiftError::InvalidInput(format!(
                "deployment {} is {:?}; only a {from:?} deployment can be {action}",
                current.value.id, current.value.status
            )));
        }
        let mut d = current.value.clone();
        d.status = to;
        d.changed_at_ms = now_ms();
        if !paused {
            d.next_at_ms = d.next_at_ms.max(now_ms());
        }
        d.remember(request_id);
        self.record(&d, Some(current.version), action, d.describe())
            .await?;
        Ok(outcome(action, Some(&d)))
    }

    /// Every region of the scope to 100 % on the new group now, skipping bakes (an operator's call).
    pub async fn promote(&self, request_id: Option<&str>) -> Result<Outcome, ShiftError> {
        let current = self
            .load()
            .await?
            .ok_or_else(|| ShiftError::InvalidInput("there is no deployment to promote".into()))?;
        if current.value.seen(request_id) || current.value.status == Status::Succeeded {
            return Ok(outcome("promoted", Some(&current.value)));
        }
        if !current.value.status.is_active() {
            return Err(ShiftError::InvalidInput(format!(
                "deployment {} is {:?}; start a new one instead",
                current.value.id, current.value.status
            )));
        }
        if current.value.hooks.contains(&HookPhase::PrePromote) {
            // The pre-promote hook decides; it runs now, and on later ticks while IN_PROGRESS.
            let mut d = current.value.clone();
            d.promote_requested = true;
            d.status = Status::Running;
            d.changed_at_ms = now_ms();
            d.remember(request_id);
            let version = self
                .record(
                    &d,
                    Some(current.version),
                    "promote-requested",
                    "the pre-promote hook decides".into(),
                )
                .await?;
            return self
                .advance_recorded("promote-requested", d, version, None)
                .await;
        }
        let regions = current.value.regions();
        let mut d = current.value.clone();
        d.promote(now_ms());
        d.schedule_retire(now_ms(), self.config.scale_down_bake_secs);
        d.remember(request_id);
        let version = self
            .record(&d, Some(current.version), "promoted", d.describe())
            .await?;
        let applied = self
            .write_recorded(&regions, 100, d.swapped, version)
            .await?;
        self.notify(
            "succeeded",
            Severity::Info,
            &d,
            format!("promoted to 100 % {}: {}", d.sides().1, d.describe()),
        )
        .await;
        let mut o = outcome("promoted", Some(&d));
        o.steps = vec![applied];
        Ok(o)
    }

    pub async fn status(&self) -> Result<Outcome, ShiftError> {
        let current = self.load().await?;
        let mut o = outcome("status", current.as_ref().map(|c| &c.value));
        if let Some(c) = &current {
            o.history = Some(self.history(&c.value.id).await?);
        }
        Ok(o)
    }

    /// An alarm changed state: a watched one going to ALARM rolls back at once.
    pub async fn alarm(
        &self,
        name: &str,
        state: &str,
        region: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<Outcome, ShiftError> {
        if !self.config.gates.watched_alarms.iter().any(|a| a == name) {
            tracing::info!(alarm = %name, "not a watched alarm; ignored");
            let mut o = outcome("ignored", None);
            o.summary = format!("alarm {name} is not watched by the traffic-shifter; ignored");
            return Ok(o);
        }
        if state != "ALARM" {
            let mut o = outcome("ignored", None);
            o.summary = format!("alarm {name} went to {state}; only ALARM rolls back");
            return Ok(o);
        }
        let reason = format!(
            "alarm {name} went to ALARM{}",
            region.map(|r| format!(" in {r}")).unwrap_or_default()
        );
        self.roll_back(Status::RolledBack, reason, request_id).await
    }
}

impl NextStep {
    pub fn describe(&self) -> String {
        format!("{} -> {}", self.regions.join(","), self.weight)
    }
}
