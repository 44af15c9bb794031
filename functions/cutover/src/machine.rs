//! Which transitions exist and what each one must prove before it happens (pure).
//!
//! `advance` moves one phase forward; each step names its gates and, where the step
//! itself changes the world (freeze, switch, end of reverse replication), its action.
//! `rollback` goes back to `cdc` from any phase before `done`: before `switched` it
//! unfreezes the source; from `switched` or `stable` it moves the application's writes
//! back to the source, which reverse replication kept current.

use cutover_core::state::Phase;
use serde::{Deserialize, Serialize};

/// What a gate checks; the names appear in refusals, the audit trail and SNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// The initial copy of every table finished.
    InitialCopy,
    /// A validation run, recent enough, says MATCH (or MATCH_WITH_FINDINGS).
    Validation,
    /// The same, from a run that started after the freeze.
    ValidationAfterFreeze,
    /// Replication applies the source's latest position within the lag budget.
    ReplicationLatency,
    /// No failover holds its lease: never move writes while the target moves region.
    NoFailoverInFlight,
    /// The source refuses the application role's writes.
    SourceFrozen,
    /// The target applied everything the source committed before the freeze.
    Drained,
    /// Exact row counts of every replicated table agree.
    Counts,
    /// The watch window since `switched` passed.
    WatchWindow,
    /// None of the watched alarms is in ALARM.
    Alarms,
    /// Reverse replication is running (its slot active on the target).
    ReverseReplication,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::InitialCopy => "initial-copy",
            Gate::Validation => "validation",
            Gate::ValidationAfterFreeze => "validation-after-freeze",
            Gate::ReplicationLatency => "replication-latency",
            Gate::NoFailoverInFlight => "no-failover-in-flight",
            Gate::SourceFrozen => "source-frozen",
            Gate::Drained => "drained",
            Gate::Counts => "counts",
            Gate::WatchWindow => "watch-window",
            Gate::Alarms => "alarms",
            Gate::ReverseReplication => "reverse-replication",
        }
    }
}

/// What the step into a phase does to the world, besides recording it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing: the gates are the whole step.
    None,
    /// The source refuses the application's writes; the freeze position is recorded.
    Freeze,
    /// Sequences past the source's, forward CDC stopped, reverse replication started,
    /// the application's write endpoint moved to the target.
    Switch,
    /// Reverse and forward replication ended.
    Finish,
}

/// One forward step: its gates are checked in order, before its action, except
/// `drained` and `source-frozen`, which are what the freeze leads to and are
/// checked after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub from: Phase,
    pub to: Phase,
    pub gates: Vec<Gate>,
    pub action: Action,
}

/// The step out of `from`, or `None` after `done`.
pub fn step_from(from: Phase) -> Option<Step> {
    let to = from.next()?;
    let (gates, action) = match to {
        Phase::FullLoad => (vec![], Action::None),
        Phase::Cdc => (vec![Gate::InitialCopy], Action::None),
        Phase::InSync => (
            vec![Gate::Validation, Gate::ReplicationLatency],
            Action::None,
        ),
        Phase::Frozen => (
            vec![
                Gate::Validation,
                Gate::ReplicationLatency,
                Gate::NoFailoverInFlight,
                Gate::SourceFrozen,
            ],
            Action::Freeze,
        ),
        Phase::Drained => (vec![Gate::SourceFrozen, Gate::Drained], Action::None),
        Phase::Verified => (
            vec![Gate::Drained, Gate::Counts, Gate::ValidationAfterFreeze],
            Action::None,
        ),
        // The counts were taken at `verified`, with the source frozen; nothing the
        // application writes can have changed them since.
        Phase::Switched => (
            vec![Gate::NoFailoverInFlight, Gate::Drained],
            Action::Switch,
        ),
        Phase::Stable => (
            vec![Gate::WatchWindow, Gate::Alarms, Gate::ReverseReplication],
            Action::None,
        ),
        Phase::Done => (vec![], Action::Finish),
    };
    Some(Step {
        from,
        to,
        gates,
        action,
    })
}

/// Whether a gate is checked after the step's action (it proves what the action did).
pub fn checked_after_action(gate: Gate, action: Action) -> bool {
    action == Action::Freeze && gate == Gate::SourceFrozen
}

/// How a rollback from a phase undoes what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rollback {
    /// Nothing was changed outside the state table.
    Nothing,
    /// Unfreeze the source; CDC never stopped.
    Unfreeze,
    /// Freeze the target, drain reverse replication, sequences past the target's,
    /// forward CDC resumed from the fallback point, writes moved back to the source.
    FallBack,
}

/// The rollback plan from `phase`, or why there is none.
pub fn rollback_from(phase: Phase) -> Result<Rollback, String> {
    match phase {
        Phase::FullLoad | Phase::Cdc | Phase::InSync => Ok(Rollback::Nothing),
        Phase::Frozen | Phase::Drained | Phase::Verified => Ok(Rollback::Unfreeze),
        Phase::Switched | Phase::Stable => Ok(Rollback::FallBack),
        Phase::Done => Err(
            "the migration is done: reverse replication ended with it, so the source no longer \
             has the target's writes; a fallback now is a new migration in the other direction"
                .into(),
        ),
    }
}

/// The phase a rollback ends in.
pub fn rollback_to(phase: Phase) -> Phase {
    if phase == Phase::FullLoad {
        Phase::FullLoad
    } else {
        Phase::Cdc
    }
}

/// The steps from `from` to `until` (inclusive), or why `until` cannot be reached by advancing.
pub fn path(from: Phase, until: Phase) -> Result<Vec<Step>, String> {
    if until <= from {
        return Ok(Vec::new());
    }
    let mut steps = Vec::new();
    let mut at = from;
    while at < until {
        let step = step_from(at).ok_or_else(|| format!("nothing comes after {at}"))?;
        at = step.to;
        steps.push(step);
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_but_done_has_one_step_forward() {
        for p in Phase::ALL {
            match step_from(p) {
                Some(s) => assert_eq!(s.to, p.next().unwrap()),
                None => assert_eq!(p, Phase::Done),
            }
        }
    }

    #[test]
    fn writes_move_only_after_drain_counts_and_a_validation_after_the_freeze() {
        let verified = step_from(Phase::Drained).unwrap();
        assert!(verified.gates.contains(&Gate::ValidationAfterFreeze));
        assert!(verified.gates.contains(&Gate::Counts));
        let switched = step_from(Phase::Verified).unwrap();
        assert_eq!(switched.action, Action::Switch);
        assert!(switched.gates.contains(&Gate::Drained));
        assert!(switched.gates.contains(&Gate::NoFailoverInFlight));
    }

    #[test]
    fn the_freeze_is_proven_after_it_is_done() {
        let frozen = step_from(Phase::InSync).unwrap();
        assert_eq!(frozen.action, Action::Freeze);
        assert!(checked_after_action(Gate::SourceFrozen, frozen.action));
        assert!(!checked_after_action(Gate::Validation, frozen.action));
    }

    #[test]
    fn rollback_undoes_what_each_phase_did_and_refuses_after_done() {
        assert_eq!(rollback_from(Phase::InSync), Ok(Rollback::Nothing));
        assert_eq!(rollback_from(Phase::Frozen), Ok(Rollback::Unfreeze));
        assert_eq!(rollback_from(Phase::Verified), Ok(Rollback::Unfreeze));
        assert_eq!(rollback_from(Phase::Switched), Ok(Rollback::FallBack));
        assert_eq!(rollback_from(Phase::Stable), Ok(Rollback::FallBack));
        assert!(rollback_from(Phase::Done)
            .unwrap_err()
            .contains("reverse replication ended"));
        assert_eq!(rollback_to(Phase::Stable), Phase::Cdc);
        assert_eq!(rollback_to(Phase::FullLoad), Phase::FullLoad);
    }

    #[test]
    fn a_path_lists_every_step_and_is_empty_when_already_there() {
        let p = path(Phase::Cdc, Phase::Switched).unwrap();
        let to: Vec<Phase> = p.iter().map(|s| s.to).collect();
        assert_eq!(
            to,
            [
                Phase::InSync,
                Phase::Frozen,
                Phase::Drained,
                Phase::Verified,
                Phase::Switched
            ]
        );
        assert!(path(Phase::Switched, Phase::Cdc).unwrap().is_empty());
        assert!(path(Phase::Stable, Phase::Stable).unwrap().is_empty());
    }
}
