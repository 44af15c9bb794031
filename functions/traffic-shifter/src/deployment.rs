//! A deployment's state and how it moves: pure, tested without AWS.
//!
//! Stored as `DEPLOYMENT#<service>` / `CURRENT`, every write conditional on the
//! version read. The weights are absolute (green's share per region), so
//! applying the same step twice changes nothing: a step is recorded once, and
//! a command delivered twice (same request id) returns the state it produced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lifecycle::{HookPhase, HookWait};
use crate::plan::{Scope, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Paused,
    Succeeded,
    RolledBack,
    Aborted,
}

impl Status {
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// What a failed gate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnGateFailure {
    /// Stay at the current step and check again on the next tick.
    #[default]
    Hold,
    /// Roll every region back to 100 % blue.
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub service: String,
    /// The plan as given (a name, or "explicit").
    pub plan: String,
    pub steps: Vec<Step>,
    pub scope: Scope,
    /// Regions shifted together, in order.
    pub waves: Vec<Vec<String>>,
    pub region_bake_secs: u64,
    pub on_gate_failure: OnGateFailure,
    pub status: Status,
    /// The wave being shifted.
    pub wave: usize,
    /// Steps of the current wave already applied and verified.
    pub step: usize,
    /// The new side's verified share per region of the scope (green's, unless `swapped`).
    pub weights: BTreeMap<String, u8>,
    /// When the next step is due (ms since the epoch).
    pub next_at_ms: u64,
    /// Why the last gate check held the deployment, if it did.
    pub held: Option<String>,
    /// Why it ended, for rollbacks and aborts.
    pub reason: Option<String>,
    pub started_at_ms: u64,
    pub changed_at_ms: u64,
    /// Request ids of the last commands applied (a redelivered one is a no-op).
    pub request_ids: Vec<String>,
    /// Green was live when this deployment started, so the new version is in
    /// blue: the groups exchange roles (the previous release went to green and
    /// succeeded). Deployments alternate between the two groups this way.
    #[serde(default)]
    pub swapped: bool,
    /// The new side's tasks are running and its targets healthy in every region
    /// (false from `start` until a tick sees them; no step moves before).
    #[serde(default = "yes")]
    pub ready: bool,
    /// The new side's task count per region: the live side's count at the start.
    #[serde(default)]
    pub scale: BTreeMap<String, i32>,
    /// When the side that no longer carries traffic scales to zero (set when the
    /// deployment ends: the old side after success, the new side after a rollback).
    #[serde(default)]
    pub retire_at_ms: Option<u64>,
    /// That side was scaled to zero.
    #[serde(default)]
    pub retired: bool,
    /// The phases whose hook has not passed yet (those configured at the start).
    #[serde(default)]
    pub hooks: Vec<HookPhase>,
    /// A hook that answered IN_PROGRESS, and when to ask it again.
    #[serde(default)]
    pub hook_wait: Option<HookWait>,
    /// An operator asked to promote; the pre-promote hook decides.
    #[serde(default)]
    pub promote_requested: bool,
    /// The image the release named for the new side (`start` with `image`), if any.
    #[serde(default)]
    pub image: Option<String>,
    /// The task definition revision registered for the new side, per region.
    #[serde(default)]
    pub release: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// The next change a due deployment makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextStep {
    pub regions: Vec<String>,
    pub weight: u8,
}

const KEEP_REQUEST_IDS: usize = 32;

impl Deployment {
    /// Every region the deployment may touch.
    pub fn regions(&self) -> Vec<String> {
        self.waves.iter().flatten().cloned().collect()
    }

    pub fn seen(&self, request_id: Option<&str>) -> bool {
        request_id.is_some_and(|id| self.request_ids.iter().any(|r| r == id))
    }

    pub fn remember(&mut self, request_id: Option<&str>) {
        if let Some(id) = request_id {
            if !self.seen(Some(id)) {
                self.request_ids.push(id.to_string());
                if self.request_ids.len() > KEEP_REQUEST_IDS {
                    self.request_ids.remove(0);
                }
            }
        }
    }

    /// The step to apply now, if the deployment is running and it is due.
    pub fn due(&self, now_ms: u64) -> Option<NextStep> {
        if self.status != Status::Running
            || !self.ready
            || now_ms < self.next_at_ms
            || self.pending_hook().is_some()
        {
            return None;
        }
        let regions = self.waves.get(self.wave)?.clone();
        let step = self.steps.get(self.step)?;
        Some(NextStep {
            regions,
            weight: step.weight,
        })
    }

    /// Records a verified step and schedules the next one (or the next wave, or the end).
    pub fn advance(&mut self, applied: &NextStep, now_ms: u64) {
        for r in &applied.regions {
            self.weights.insert(r.clone(), applied.weight);
        }
        let bake = self.steps.get(self.step).map_or(0, |s| s.bake_secs);
        self.step += 1;
        self.held = None;
        self.changed_at_ms = now_ms;
        if self.step < self.steps.len() {
            self.next_at_ms = now_ms + bake * 1000;
        } else if self.wave + 1 < self.waves.len() {
            self.wave += 1;
            self.step = 0;
            self.next_at_ms = now_ms + self.region_bake_secs * 1000;
        } else {
            // With a post-traffic hook the deployment stays running at 100 %: the hook decides.
            if !self.hooks.contains(&HookPhase::PostTraffic) {
                self.status = Status::Succeeded;
            }
            self.next_at_ms = now_ms;
        }
    }

    /// Every step of every wave is applied.
    pub fn traffic_complete(&self) -> bool {
        self.wave + 1 >= self.waves.len() && self.step >= self.steps.len()
    }

    /// The hook the deployment waits on now, if any (invoked or not).
    pub fn pending_hook(&self) -> Option<HookPhase> {
        let has = |p| self.hooks.contains(&p);
        if self.promote_requested && has(HookPhase::PrePromote) {
            Some(HookPhase::PrePromote)
        } else if has(HookPhase::PreTraffic) && self.wave == 0 && self.step == 0 {
            Some(HookPhase::PreTraffic)
        } else if has(HookPhase::PostTraffic) && self.traffic_complete() {
            Some(HookPhase::PostTraffic)
        } else {
            None
        }
    }

    /// The hook to invoke now: pending, the deployment running and ready, and
    /// the callback delay of its last IN_PROGRESS over.
    pub fn hook_due(&self, now_ms: u64) -> Option<HookPhase> {
        if self.status != Status::Running || !self.ready {
            return None;
        }
        let phase = self.pending_hook()?;
        match &self.hook_wait {
            Some(w) if w.phase == phase && now_ms < w.next_at_ms => None,
            _ => Some(phase),
        }
    }

    /// The hook answered SUCCEEDED: the deployment goes on (post-traffic: it
    /// succeeds; pre-promote: every region to 100 % on the new side).
    pub fn hook_passed(&mut self, phase: HookPhase, now_ms: u64) {
        self.hooks.retain(|p| *p != phase);
        self.hook_wait = None;
        self.held = None;
        self.changed_at_ms = now_ms;
        match phase {
            HookPhase::PreTraffic => self.next_at_ms = self.next_at_ms.max(now_ms),
            HookPhase::PostTraffic => self.status = Status::Succeeded,
            HookPhase::PrePromote => {
                self.promote_requested = false;
                self.promote(now_ms);
            }
        }
    }

    /// The hook answered IN_PROGRESS: ask again after `delay_secs`.
    pub fn hook_in_progress(
        &mut self,
        phase: HookPhase,
        delay_secs: u64,
        details: Option<serde_json::Value>,
        now_ms: u64,
    ) {
        let (since_ms, invocations) = match &self.hook_wait {
            Some(w) if w.phase == phase => (w.since_ms, w.invocations),
            _ => (now_ms, 0),
        };
        self.hook_wait = Some(HookWait {
            phase,
            since_ms,
            next_at_ms: now_ms + delay_secs * 1000,
            invocations: invocations + 1,
            details,
        });
        self.changed_at_ms = now_ms;
    }

    /// Schedules the scale-down of the side that no longer carries traffic.
    pub fn schedule_retire(&mut self, now_ms: u64, bake_secs: u64) {
        if !self.status.is_active() && self.retire_at_ms.is_none() {
            self.retire_at_ms = Some(now_ms + bake_secs * 1000);
        }
    }

    /// The side to scale to zero now, if its bake is over: `false` = the live
    /// side (after success), `true` = the new side (after a rollback or abort).
    pub fn retire_due(&self, now_ms: u64) -> Option<bool> {
        if self.retired || self.status.is_active() {
            return None;
        }
        let at = self.retire_at_ms?;
        (now_ms >= at).then_some(self.status != Status::Succeeded)
    }

    /// Every region of the scope back to 100 % blue.
    pub fn roll_back(&mut self, status: Status, reason: String, now_ms: u64) {
        for r in self.regions() {
            self.weights.insert(r, 0);
        }
        self.status = status;
        self.reason = Some(reason);
        self.held = None;
        self.hook_wait = None;
        self.promote_requested = false;
        self.changed_at_ms = now_ms;
    }

    /// Every region of the scope to 100 % green, now.
    pub fn promote(&mut self, now_ms: u64) {
        for r in self.regions() {
            self.weights.insert(r, 100);
        }
        self.wave = self.waves.len().saturating_sub(1);
        self.step = self.steps.len();
        // With a post-traffic hook it stays running at 100 %: the hook decides.
        self.status = if self.hooks.contains(&HookPhase::PostTraffic) {
            Status::Running
        } else {
            Status::Succeeded
        };
        self.reason = Some("promoted by an operator".into());
        self.held = None;
        self.changed_at_ms = now_ms;
    }

    /// The group that was live at the start, and the group of the new version.
    pub fn sides(&self) -> (&'static str, &'static str) {
        if self.swapped {
            ("green", "blue")
        } else {
            ("blue", "green")
        }
    }

    /// Where the deployment stands, in one line.
    pub fn describe(&self) -> String {
        let (live, new) = self.sides();
        let weights = self
            .weights
            .iter()
            .map(|(r, w)| format!("{r} {}/{w}", 100 - w))
            .collect::<Vec<_>>()
            .join(", ");
        let hook = self
            .pending_hook()
            .filter(|_| self.status.is_active())
            .map(|p| format!("; waiting on the {} hook", p.name()))
            .unwrap_or_default();
        format!(
            "{} {} ({}): {:?}, wave {}/{}, step {}/{}; {live}/{new} {weights}{hook}",
            self.service,
            self.id,
            self.plan,
            self.status,
            (self.wave + 1).min(self.waves.len()),
            self.waves.len(),
            self.step,
            self.steps.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_named;

    fn deployment(plan: &str, scope: Scope, regions: &[&str]) -> Deployment {
        let regions: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
        Deployment {
            id: "d-1".into(),
            service: "app".into(),
            plan: plan.into(),
            steps: parse_named(plan).unwrap(),
            waves: scope.waves(&regions),
            scope,
            region_bake_secs: 60,
            on_gate_failure: OnGateFailure::Hold,
            status: Status::Running,
            wave: 0,
            step: 0,
            swapped: false,
            weights: regions.iter().map(|r| (r.clone(), 0)).collect(),
            next_at_ms: 0,
            held: None,
            reason: None,
            started_at_ms: 0,
            changed_at_ms: 0,
            request_ids: vec![],
            ready: true,
            scale: BTreeMap::new(),
            retire_at_ms: None,
            retired: false,
            hooks: vec![],
            hook_wait: None,
            promote_requested: false,
            image: None,
            release: BTreeMap::new(),
        }
    }

    #[test]
    fn a_canary_bakes_then_completes() {
        let mut d = deployment("canary-10-5m", Scope::All, &["a", "b"]);
        let s = d.due(0).unwrap();
        assert_eq!(s.weight, 10);
        assert_eq!(s.regions, vec!["a", "b"]);
        d.advance(&s, 1_000);
        assert_eq!(d.next_at_ms, 301_000);
        assert_eq!(d.due(300_999), None, "still baking");
        let s = d.due(301_000).unwrap();
        assert_eq!(s.weight, 100);
        d.advance(&s, 301_000);
        assert_eq!(d.status, Status::Succeeded);
        assert_eq!(d.weights["b"], 100);
        assert_eq!(d.due(u64::MAX), None);
    }

    #[test]
    fn region_by_region_bakes_between_regions() {
        let mut d = deployment("all-at-once", Scope::RegionByRegion, &["a", "b"]);
        let s = d.due(0).unwrap();
        assert_eq!(s.regions, vec!["a"]);
        d.advance(&s, 10);
        assert_eq!((d.wave, d.step, d.next_at_ms), (1, 0, 60_010));
        assert_eq!(d.weights["a"], 100);
        assert_eq!(d.weights["b"], 0);
        let s = d.due(60_010).unwrap();
        assert_eq!(s.regions, vec!["b"]);
        d.advance(&s, 60_010);
        assert_eq!(d.status, Status::Succeeded);
    }

    #[test]
    fn paused_and_finished_deployments_do_nothing() {
        let mut d = deployment("linear-50-every-0s", Scope::All, &["a"]);
        d.status = Status::Paused;
        assert_eq!(d.due(u64::MAX), None);
        d.status = Status::Running;
        d.roll_back(Status::RolledBack, "alarm".into(), 5);
        assert_eq!(d.due(u64::MAX), None);
        assert_eq!(d.weights["a"], 0);
        assert!(!d.status.is_active());
    }

    #[test]
    fn no_step_moves_until_the_new_side_is_ready() {
        let mut d = deployment("all-at-once", Scope::All, &["a"]);
        d.ready = false;
        assert_eq!(d.due(u64::MAX), None);
        d.ready = true;
        assert!(d.due(0).is_some());
    }

    #[test]
    fn the_side_without_traffic_retires_after_its_bake() {
        let mut d = deployment("all-at-once", Scope::All, &["a"]);
        d.schedule_retire(0, 60);
        assert_eq!(d.retire_at_ms, None, "a running deployment retires nothing");
        d.advance(&d.due(0).unwrap(), 1_000);
        d.schedule_retire(1_000, 60);
        assert_eq!(d.retire_due(60_999), None, "still baking");
        assert_eq!(
            d.retire_due(61_000),
            Some(false),
            "success retires the old side"
        );
        let mut r = deployment("canary-10-5m", Scope::All, &["a"]);
        r.roll_back(Status::RolledBack, "alarm".into(), 5);
        r.schedule_retire(5, 0);
        assert_eq!(
            r.retire_due(5),
            Some(true),
            "a rollback retires the new side"
        );
        r.retired = true;
        assert_eq!(r.retire_due(u64::MAX), None);
    }

    #[test]
    fn a_pre_traffic_hook_holds_the_first_step_until_it_passes() {
        let mut d = deployment("canary-10-5m", Scope::All, &["a"]);
        d.hooks = vec![HookPhase::PreTraffic];
        assert_eq!(d.due(0), None, "no traffic before the hook passes");
        assert_eq!(d.hook_due(0), Some(HookPhase::PreTraffic));
        d.hook_in_progress(HookPhase::PreTraffic, 30, None, 1_000);
        assert_eq!(d.hook_due(30_999), None, "asked again after the delay only");
        assert_eq!(d.hook_due(31_000), Some(HookPhase::PreTraffic));
        d.hook_in_progress(HookPhase::PreTraffic, 5, None, 31_000);
        let w = d.hook_wait.clone().unwrap();
        assert_eq!((w.since_ms, w.invocations), (1_000, 2));
        d.hook_passed(HookPhase::PreTraffic, 36_000);
        assert_eq!(d.hook_wait, None);
        assert_eq!(d.due(36_000).unwrap().weight, 10);
    }

    #[test]
    fn a_post_traffic_hook_decides_success_at_100() {
        let mut d = deployment("all-at-once", Scope::All, &["a"]);
        d.hooks = vec![HookPhase::PostTraffic];
        assert_eq!(d.hook_due(0), None, "not before the traffic is through");
        d.advance(&d.due(0).unwrap(), 10);
        assert_eq!(d.status, Status::Running, "100 %, not yet succeeded");
        assert_eq!(d.weights["a"], 100);
        assert_eq!(d.due(u64::MAX), None);
        assert_eq!(d.hook_due(10), Some(HookPhase::PostTraffic));
        d.hook_passed(HookPhase::PostTraffic, 20);
        assert_eq!(d.status, Status::Succeeded);
        assert_eq!(d.hook_due(u64::MAX), None);
    }

    #[test]
    fn a_pre_promote_hook_promotes_when_it_passes_and_a_rollback_clears_the_wait() {
        let mut d = deployment("canary-10-1h", Scope::All, &["a", "b"]);
        d.hooks = vec![HookPhase::PrePromote];
        d.advance(&d.due(0).unwrap(), 10);
        assert_eq!(d.hook_due(20), None, "no promote asked");
        d.promote_requested = true;
        assert_eq!(d.hook_due(20), Some(HookPhase::PrePromote));
        assert_eq!(d.due(u64::MAX), None, "no step while the hook decides");
        d.hook_passed(HookPhase::PrePromote, 30);
        assert!(d.weights.values().all(|w| *w == 100));
        assert_eq!(d.status, Status::Succeeded);
        let mut r = deployment("canary-10-1h", Scope::All, &["a"]);
        r.hooks = vec![HookPhase::PreTraffic];
        r.hook_in_progress(HookPhase::PreTraffic, 30, None, 0);
        r.roll_back(Status::RolledBack, "hook failed".into(), 5);
        assert_eq!(r.hook_wait, None);
        assert_eq!(r.hook_due(u64::MAX), None);
    }

    #[test]
    fn promote_goes_to_green_everywhere() {
        let mut d = deployment("canary-10-1h", Scope::RegionByRegion, &["a", "b", "c"]);
        d.promote(7);
        assert!(d.weights.values().all(|w| *w == 100));
        assert_eq!(d.status, Status::Succeeded);
    }

    #[test]
    fn request_ids_make_commands_idempotent_and_stay_bounded() {
        let mut d = deployment("all-at-once", Scope::All, &["a"]);
        assert!(!d.seen(Some("r1")));
        d.remember(Some("r1"));
        d.remember(Some("r1"));
        assert!(d.seen(Some("r1")));
        assert_eq!(d.request_ids.len(), 1);
        for i in 0..100 {
            d.remember(Some(&format!("x{i}")));
        }
        assert_eq!(d.request_ids.len(), KEEP_REQUEST_IDS);
        assert!(!d.seen(None));
    }
}
