//! The state machines infra deploys, executed in the local world against the real functions
//! (moto's interpreter; Lambda through the world's router to `cargo lambda watch`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cutover_core::state::Phase;
use cutover_rehearsal::cutover_stage::{self, controller, prepare};
use cutover_rehearsal::runbooks::{self, Router};
use cutover_rehearsal::traffic;
use cutover_rehearsal::world::{Node, World};
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// One execution at a time: the router's faults and the world are shared.
static WORLD: Mutex<()> = Mutex::const_new(());

const LIMIT: Duration = Duration::from_secs(300);

/// `drill.fanout` on the source and the primary, the same 200,000 rows (10 segments of the
/// rehearsal's 20,000), not replicated: the differences are made by hand.
async fn fanout_table(world: &World) {
    for node in [Node::Source, Node::UsEast1] {
        let c = world.admin_db(node, "app").await.unwrap();
        c.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS drill;
             DROP TABLE IF EXISTS drill.fanout;
             CREATE TABLE drill.fanout (id bigint PRIMARY KEY, label text NOT NULL, amount numeric(12,2));
             INSERT INTO drill.fanout SELECT g, 'row ' || g, g * 1.25 FROM generate_series(1, 200000) g;
             ANALYZE drill.fanout;
             GRANT USAGE ON SCHEMA drill TO PUBLIC;
             GRANT SELECT ON drill.fanout TO PUBLIC;",
        )
        .await
        .unwrap();
    }
}

async fn drop_fanout_table(world: &World) {
    for node in [Node::Source, Node::UsEast1] {
        let c = world.admin_db(node, "app").await.unwrap();
        c.batch_execute("DROP TABLE IF EXISTS drill.fanout")
            .await
            .unwrap();
    }
}

fn segments_invoked(invocations: &[Value]) -> Vec<(u64, u64)> {
    let mut seen: Vec<(u64, u64)> = invocations
        .iter()
        .filter(|i| i["payload"]["command"] == "validate-segment")
        .map(|i| {
            (
                i["payload"]["segment"].as_u64().unwrap(),
                i["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    seen.sort();
    seen
}

/// `held` equals `template` except where the template holds a `${Name}` placeholder, which
/// must hold that name's value (a number for a quoted number placeholder).
fn same_but_placeholders(
    template: &Value,
    held: &Value,
    values: &[(String, String)],
    at: &str,
    filled: &mut usize,
) -> Result<(), String> {
    match (template, held) {
        (Value::String(t), _) if t.contains("${") => {
            let mut want = t.clone();
            for (name, value) in values {
                want = want.replace(&format!("${{{name}}}"), value);
            }
            *filled += 1;
            let ok = match held {
                Value::String(h) => *h == want,
                Value::Number(n) => {
                    n.to_string() == want && t.starts_with("${") && t.ends_with('}')
                }
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                Err(format!("{at}: {held} where the template says {t:?}"))
            }
        }
        (Value::Object(t), Value::Object(h)) => {
            if t.keys().ne(h.keys()) {
                return Err(format!(
                    "{at}: keys {:?} vs {:?}",
                    t.keys().collect::<Vec<_>>(),
                    h.keys().collect::<Vec<_>>()
                ));
            }
            t.iter().try_for_each(|(k, v)| {
                same_but_placeholders(v, &h[k], values, &format!("{at}.{k}"), filled)
            })
        }
        (Value::Array(t), Value::Array(h)) if t.len() == h.len() => {
            t.iter().zip(h).enumerate().try_for_each(|(i, (a, b))| {
                same_but_placeholders(a, b, values, &format!("{at}[{i}]"), filled)
            })
        }
        _ if template == held => Ok(()),
        _ => Err(format!("{at}: {held} where the template says {template}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_world_holds_exactly_the_machines_infra_deploys() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let values = runbooks::values(&world).unwrap();
    for machine in runbooks::MACHINES {
        let template = runbooks::template(machine).unwrap();
        let arn = runbooks::install(&world, machine).await.unwrap();
        let held: Value =
            serde_json::from_str(&runbooks::deployed_definition(&world, &arn).await.unwrap())
                .unwrap();
        let filled: Value =
            serde_json::from_str(&runbooks::fill(&template, &values).unwrap()).unwrap();
        assert_eq!(
            held, filled,
            "{machine}: the world runs infra's definition, placeholders filled"
        );
        // Walked side by side: the held definition differs from the template only where the
        // template holds a placeholder.
        let template: Value = serde_json::from_str(&template).unwrap();
        let mut filled_at = 0;
        same_but_placeholders(&template, &held, &values, "$", &mut filled_at).unwrap();
        assert!(filled_at > 0, "{machine}: its ARNs are placeholders");
    }
    // A template with a placeholder the rehearsal does not know is refused, not run.
    let err = runbooks::fill(r#"{"a": "${Unknown}"}"#, &values).unwrap_err();
    assert!(err.to_string().contains("${Unknown}"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_validation_fan_out_runs_every_segment_and_agrees_with_a_direct_validate() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let router = Router::of(&world).unwrap();
    router.reset().await.unwrap();
    fanout_table(&world).await;
    let target = world.admin_db(Node::UsEast1, "app").await.unwrap();
    target
        .batch_execute(
            "UPDATE drill.fanout SET label = 'changed' WHERE id IN (7, 150001);
             DELETE FROM drill.fanout WHERE id = 99999;
             INSERT INTO drill.fanout VALUES (200001, 'extra', 1);",
        )
        .await
        .unwrap();
    let arn = runbooks::install(&world, "validation").await.unwrap();
    let exec = runbooks::run(&world, &arn, &json!({"tables": ["drill.fanout"]}), LIMIT)
        .await
        .unwrap();
    let direct = router
        .invoke(
            "data-validator",
            json!({"command": "validate", "tables": ["drill.fanout"]}),
        )
        .await;
    let invocations = router.invocations().await.unwrap();
    drop_fanout_table(&world).await;
    println!("{}", exec.timeline());
    assert_eq!(exec.status, "FAILED", "a mismatch fails the execution");
    assert_eq!(exec.error.as_deref(), Some("ValidationMismatch"));
    let merged = exec.output_of("ValidateMerge").expect("the merge's output");
    let direct = direct.unwrap();
    let table = |v: &Value| v["tables"][0].clone();
    let (m, d) = (table(&merged), table(&direct));
    assert_eq!(merged["verdict"], "MISMATCH", "{merged}");
    assert!(
        m["segments"].as_u64().unwrap() >= 8,
        "at least 8 segments: {m}"
    );
    for field in [
        "verdict",
        "segments",
        "source_rows",
        "target_rows",
        "missing_in_target",
        "extra_in_target",
        "different",
        "first_keys",
    ] {
        assert_eq!(m[field], d[field], "{field}: fan-out {m} vs direct {d}");
    }
    assert_eq!(
        (
            m["missing_in_target"].as_u64(),
            m["extra_in_target"].as_u64(),
            m["different"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    // Every segment was validated by its own invocation, once.
    let segments = segments_invoked(&invocations);
    let expected: Vec<(u64, u64)> = (0..m["segments"].as_u64().unwrap())
        .map(|i| (i, 200))
        .collect();
    assert_eq!(segments, expected);
    assert!(
        exec.states_entered()
            .iter()
            .filter(|s| **s == "ValidateSegment")
            .count()
            >= 8
    );
}

/// The validation machine over `drill.fanout` with segment `segment`'s next `times`
/// invocations failed by the Lambda service: the execution, and what the router routed.
async fn fan_out_with_failing_segment(
    world: &World,
    router: &Router,
    segment: u64,
    times: u32,
) -> (runbooks::Execution, Vec<Value>) {
    router.reset().await.unwrap();
    fanout_table(world).await;
    router
        .fail_next(
            "data-validator",
            json!({"command": "validate-segment", "segment": segment}),
            times,
        )
        .await
        .unwrap();
    let arn = runbooks::install(world, "validation").await.unwrap();
    let exec = runbooks::run(world, &arn, &json!({"tables": ["drill.fanout"]}), LIMIT).await;
    let invocations = router.invocations().await.unwrap();
    router.reset().await.unwrap();
    (exec.unwrap(), invocations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_segment_that_fails_once_is_retried_and_the_run_completes() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let router = Router::of(&world).unwrap();
    let (exec, invocations) = fan_out_with_failing_segment(&world, &router, 3, 1).await;
    drop_fanout_table(&world).await;
    println!("{}", exec.timeline());
    assert!(exec.succeeded(), "{}", exec.timeline());
    assert_eq!(exec.output.as_ref().unwrap()["verdict"], "MATCH");
    let third: Vec<u64> = segments_invoked(&invocations)
        .into_iter()
        .filter(|(s, _)| *s == 3)
        .map(|(_, st)| st)
        .collect();
    assert_eq!(
        third,
        vec![200, 500],
        "segment 3: failed by the Lambda service once, then run by the Retry"
    );
    assert!(
        exec.steps
            .iter()
            .any(|s| s.kind == "TaskFailed" && s.detail.contains("ServiceException")),
        "{}",
        exec.timeline()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_segment_that_keeps_failing_ends_the_run_as_error_not_a_hang() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let router = Router::of(&world).unwrap();
    let (exec, invocations) = fan_out_with_failing_segment(&world, &router, 5, 100).await;
    let run_id = exec
        .output_of("AllTablesPlan")
        .or_else(|| exec.output_of("SomeTablesPlan"))
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = router
        .invoke(
            "data-validator",
            json!({"command": "status", "run_id": run_id}),
        )
        .await;
    drop_fanout_table(&world).await;
    println!("{}", exec.timeline());
    assert_eq!(exec.status, "FAILED");
    assert_eq!(exec.error.as_deref(), Some("ValidationError"));
    assert!(
        exec.states_entered().contains(&"RecordFailure"),
        "{}",
        exec.timeline()
    );
    let attempts = segments_invoked(&invocations)
        .into_iter()
        .filter(|(s, _)| *s == 5)
        .count();
    assert_eq!(attempts, 4, "the first attempt and the Retry's three");
    let status = status.unwrap();
    assert_eq!(status["verdict"], "ERROR", "{status}");
    let errors = status["tables"][0]["errors"].to_string();
    assert!(
        errors.contains("not validated") && errors.contains("ServiceException"),
        "{errors}"
    );
}

fn quiet(_: String) {}

/// The world as a runbook starts from: no faults routed, the cutover prepared and in `cdc`.
async fn at_cdc(world: &World) -> cutover::controller::Controller {
    Router::of(world).unwrap().reset().await.unwrap();
    prepare(world).await.unwrap();
    let c = controller(world, &[]).await.unwrap();
    c.advance("t", Some(Phase::Cdc), None, None).await.unwrap();
    c
}

fn entered(r: &Value) -> Vec<String> {
    r["execution"]["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str()?.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cutover_runbook_runs_phase_by_phase_to_done() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    at_cdc(&world).await;
    let r = cutover_stage::finish_by_runbook(&world, &mut quiet).await;
    cutover_stage::reopen(&world).await.unwrap();
    let s = traffic::shifter(&world).await.unwrap();
    traffic::reset(&world, &s).await.unwrap();
    let r = r.unwrap();
    println!("{r:#}");
    assert_eq!(r["execution"]["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["phase"], "done");
    assert_eq!(r["writes_to"], "target");
    assert!(
        r["green"].as_object().unwrap().values().all(|w| w == 100),
        "the shift ended 100 % green: {}",
        r["green"]
    );
    let entered = entered(&r);
    for step in [
        "InSyncValidateVerdict",
        "AdvanceInSync",
        "AdvanceDrained",
        "WatchWindow",
        "AdvanceStable",
        "StartShift",
        "Tick",
        "AdvanceDone",
        "Done",
    ] {
        assert!(entered.iter().any(|e| e == step), "{step} ran: {entered:?}");
    }
    assert!(
        entered.iter().any(|e| e.starts_with("AdvanceSwitched")),
        "{entered:?}"
    );
    assert!(!entered.iter().any(|e| e == "Rollback"), "{entered:?}");
    assert_eq!(r["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_sends_the_runbook_down_its_rollback_branch_and_tells_the_ops_topic() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    at_cdc(&world).await;
    let r = cutover_stage::rollback_by_runbook(&world, &mut quiet)
        .await
        .unwrap();
    println!("{r:#}");
    assert_eq!(r["execution"]["error"], "CutoverAborted");
    let entered = entered(&r);
    for step in ["InSyncValidateVerdict", "Rollback", "Notify", "Aborted"] {
        assert!(entered.iter().any(|e| e == step), "{step} ran: {entered:?}");
    }
    assert!(
        !entered.iter().any(|e| e == "AdvanceInSync"),
        "the drift stopped it before the first advance: {entered:?}"
    );
    assert_eq!(r["validation_verdict"], "MISMATCH");
    assert_eq!(
        r["drift_found"], true,
        "the validation names the drifted key"
    );
    assert_eq!(
        r["ops_told"], 1,
        "one runbook-aborted message on the ops topic"
    );
    assert_eq!(r["ops_message_names_the_execution"], true);
    assert_eq!(
        (r["phase_before"].as_str(), r["phase_after"].as_str()),
        (Some("cdc"), Some("cdc")),
        "nothing moved"
    );
    assert_eq!(r["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_freeze_the_cutover_refuses_sends_the_runbook_down_its_rollback_branch() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let c = at_cdc(&world).await;
    // A failover in flight: the cutover refuses to freeze (gate no-failover-in-flight).
    c.failover_lease
        .acquire("drill-failover", Duration::from_secs(120))
        .await
        .unwrap();
    let arn = runbooks::install(&world, "runbook").await.unwrap();
    let exec = runbooks::run(&world, &arn, &json!({}), LIMIT).await;
    c.store
        .delete(&cutover_core::state::keys::failover_lease())
        .await
        .unwrap();
    let phase = c.status().await.map(|s| s.phase);
    let source = world.admin(Node::Source).await.unwrap();
    let frozen = cutover::postgres::is_frozen(&source, "app", "cutover")
        .await
        .unwrap();
    let exec = exec.unwrap();
    println!("{}", exec.timeline());
    assert_eq!(exec.error.as_deref(), Some("CutoverAborted"));
    let entered = exec.states_entered();
    assert!(
        entered.contains(&"AdvanceInSync") && entered.contains(&"AdvanceDrained"),
        "{entered:?}"
    );
    assert!(
        !entered.contains(&"AdvanceSwitched") && entered.contains(&"Rollback"),
        "{entered:?}"
    );
    let refused = exec.output_of("AdvanceDrained").unwrap();
    assert_eq!(refused["result"], "refused", "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("failover"),
        "{refused}"
    );
    let rolled = exec.output_of("Rollback").unwrap();
    assert_eq!(
        rolled["rollback"]["outcome"]["result"], "rolled-back",
        "{rolled}"
    );
    assert_eq!(phase.unwrap(), Phase::Cdc, "rolled back from in-sync");
    assert!(!frozen, "the source was never frozen, and is writable");
}
