//! traffic-shifter against moto's ELBv2, CloudWatch and DynamoDB in three
//! regions: every plan, command, gate, conflict and bad input. The tests share
//! the world's listeners, so they take turns and start from 100 % blue.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use cutover_rehearsal::traffic::{green_weights, reset, set_alarm, shifter, tasks, BLUE_TASKS};
use cutover_rehearsal::world::World;
use serde_json::{json, Value};
use traffic_shifter::deployment::Status;
use traffic_shifter::handler::handle;
use traffic_shifter::shifter::{Outcome, Shifter};
use traffic_shifter::ShiftError;

static TURN: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

async fn setup() -> (World, Shifter) {
    let world = World::load().unwrap();
    let s = shifter(&world).await.unwrap();
    reset(&world, &s).await.unwrap();
    (world, s)
}

async fn run(s: &Shifter, event: Value) -> Outcome {
    handle(s, event.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{event}: {e}"))
}

fn all(w: i32) -> BTreeMap<String, i32> {
    ["ap-southeast-1", "eu-west-1", "us-east-1"]
        .iter()
        .map(|r| (r.to_string(), w))
        .collect()
}

fn status(o: &Outcome) -> Status {
    o.deployment.as_ref().unwrap().status
}

fn alarm_event(name: &str, state: &str, region: &str, id: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-24T10:00:00Z",
        "region": region, "resources": [],
        "detail": {"alarmName": name, "state": {"value": state}, "previousState": {"value": "OK"}}
    })
}

#[tokio::test]
async fn a_canary_bakes_pauses_resumes_and_is_promoted() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let o = run(
        &s,
        json!({"command": "start", "plan": "canary-10-5m", "request_id": "c-1"}),
    )
    .await;
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(10));
    assert_eq!(o.steps.len(), 1);
    assert!(o.steps[0].verify_reads.iter().all(|r| *r >= 1));
    // Redelivered start: the same state, no second step.
    let again = run(
        &s,
        json!({"command": "start", "plan": "canary-10-5m", "request_id": "c-1"}),
    )
    .await;
    assert_eq!(again.action, "duplicate");
    assert_eq!(again.deployment.as_ref().unwrap().step, 1);
    // Baking: a tick does nothing.
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "nothing-due");
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(10));
    let p = run(&s, json!({"command": "pause"})).await;
    assert_eq!(status(&p), Status::Paused);
    assert_eq!(
        status(&run(&s, json!({"command": "pause"})).await),
        Status::Paused
    );
    assert_eq!(
        status(&run(&s, json!({"command": "resume"})).await),
        Status::Running
    );
    let done = run(&s, json!({"command": "promote"})).await;
    assert_eq!(status(&done), Status::Succeeded);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(100));
    let st = run(&s, json!({"command": "status"})).await;
    let history = st.history.unwrap();
    let actions: Vec<&str> = history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["started", "ready", "stepped", "paused", "resumed", "promoted"],
        "{history:?}"
    );
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn linear_with_zero_bake_runs_every_step_and_records_each() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let o = run(
        &s,
        json!({"command": "start", "plan": "linear-25-every-0s"}),
    )
    .await;
    assert_eq!(
        o.steps.iter().map(|s| s.weight).collect::<Vec<_>>(),
        vec![25, 50, 75, 100]
    );
    assert_eq!(status(&o), Status::Succeeded);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(100));
    let history = s.history(&o.deployment.unwrap().id).await.unwrap();
    assert_eq!(history.iter().filter(|h| h.action == "stepped").count(), 4);
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn region_by_region_bakes_between_regions_and_abort_restores_blue() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let o = run(
        &s,
        json!({"command": "start", "steps": [{"weight": 20}, {"weight": 100}], "scope": "region-by-region", "region_bake": "1h"}),
    )
    .await;
    let d = o.deployment.unwrap();
    assert_eq!((d.wave, d.step), (1, 0));
    let w = green_weights(&world, &s).await.unwrap();
    assert_eq!(
        (w["us-east-1"], w["eu-west-1"], w["ap-southeast-1"]),
        (100, 0, 0)
    );
    assert_eq!(
        run(&s, json!({"command": "tick"})).await.action,
        "nothing-due"
    );
    let a = run(&s, json!({"command": "abort", "reason": "test"})).await;
    assert_eq!(status(&a), Status::Aborted);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn after_a_release_to_green_the_next_goes_to_blue_and_rolls_back_to_green() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let first = run(&s, json!({"command": "start", "plan": "all-at-once"})).await;
    assert_eq!(status(&first), Status::Succeeded);
    assert!(!first.deployment.unwrap().swapped);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(100));

    // Green is live now: the next release is in blue, and a canary sends blue 10 %.
    let second = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    let d = second.deployment.unwrap();
    assert!(d.swapped, "green was live, so the roles are exchanged");
    assert_eq!(d.weights["us-east-1"], 10, "the new side's share");
    assert!(d.describe().contains("green/blue"), "{}", d.describe());
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(90));
    // An alarm rolls back to the live group: green, not blue.
    let r = run(
        &s,
        alarm_event("app-5xx-local", "ALARM", "us-east-1", "swap-1"),
    )
    .await;
    assert_eq!(r.action, "rolled-back");
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(100));

    // The release again, to the end: blue carries everything.
    let third = run(
        &s,
        json!({"command": "start", "plan": "linear-50-every-0s"}),
    )
    .await;
    assert_eq!(status(&third), Status::Succeeded);
    assert!(third.deployment.unwrap().swapped);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    // And the one after goes to green again.
    let fourth = run(&s, json!({"command": "start", "plan": "canary-20-5m"})).await;
    assert!(!fourth.deployment.unwrap().swapped);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(20));
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn one_region_scope_touches_only_that_region() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    run(
        &s,
        json!({"command": "start", "plan": "all-at-once", "scope": "eu-west-1"}),
    )
    .await;
    let w = green_weights(&world, &s).await.unwrap();
    assert_eq!(
        (w["us-east-1"], w["eu-west-1"], w["ap-southeast-1"]),
        (0, 100, 0)
    );
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn a_watched_alarm_rolls_every_region_back_and_says_why() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    run(&s, json!({"command": "start", "plan": "canary-30-10m"})).await;
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(30));
    // Not watched, and watched-but-OK: ignored.
    let i = run(
        &s,
        alarm_event("replication-lag-local", "ALARM", "us-east-1", "e-1"),
    )
    .await;
    assert_eq!(i.action, "ignored");
    let i = run(&s, alarm_event("app-5xx-local", "OK", "eu-west-1", "e-2")).await;
    assert_eq!(i.action, "ignored");
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(30));
    let r = run(
        &s,
        alarm_event("app-5xx-local", "ALARM", "eu-west-1", "e-3"),
    )
    .await;
    assert_eq!(r.action, "rolled-back");
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    let d = r.deployment.unwrap();
    assert_eq!(d.status, Status::RolledBack);
    assert!(d
        .reason
        .unwrap()
        .contains("app-5xx-local went to ALARM in eu-west-1"));
    // The same event again changes nothing.
    let again = run(
        &s,
        alarm_event("app-5xx-local", "ALARM", "eu-west-1", "e-3"),
    )
    .await;
    assert_ne!(again.action, "rolled-back");
    // The SNS-wrapped alarm sample also rolls back.
    run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    let sns: Value = serde_json::from_str(
        &std::fs::read_to_string(world.root().join("events/traffic-shifter/alarm-sns.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(run(&s, sns).await.action, "rolled-back");
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn a_failed_gate_holds_or_rolls_back_as_the_plan_says() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let aws = world.aws().await.unwrap();
    let eu = aws.cloudwatch(&"eu-west-1".parse().unwrap());
    set_alarm(&eu, "app-p99-latency-local", "ALARM")
        .await
        .unwrap();
    let held = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    assert_eq!(held.action, "started; held");
    let why = held.deployment.as_ref().unwrap().held.clone().unwrap();
    assert!(
        why.contains("eu-west-1 alarms: app-p99-latency-local is in ALARM"),
        "{why}"
    );
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    assert!(held.gates.iter().any(|g| !g.ok));
    set_alarm(&eu, "app-p99-latency-local", "OK").await.unwrap();
    let stepped = run(&s, json!({"command": "tick"})).await;
    assert_eq!(stepped.action, "stepped");
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(10));
    reset(&world, &s).await.unwrap();

    // A gate failing with on_gate_failure = rollback: every region back to blue.
    set_alarm(&eu, "app-5xx-local", "ALARM").await.unwrap();
    let o = run(
        &s,
        json!({"command": "start", "plan": "linear-50-every-0s", "on_gate_failure": "rollback"}),
    )
    .await;
    assert_eq!(status(&o), Status::RolledBack);
    let reason = o.deployment.unwrap().reason.unwrap();
    assert!(
        reason.contains("eu-west-1 alarms: app-5xx-local is in ALARM"),
        "{reason}"
    );
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    reset(&world, &s).await.unwrap();
}

fn colours(blue: i32, green: i32) -> BTreeMap<String, (i32, i32)> {
    ["ap-southeast-1", "eu-west-1", "us-east-1"]
        .iter()
        .map(|r| (r.to_string(), (blue, green)))
        .collect()
}

#[tokio::test]
async fn a_release_scales_green_up_first_and_the_old_colour_down_after_the_bake() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    assert_eq!(
        tasks(&world, &s).await.unwrap(),
        colours(BLUE_TASKS, 0),
        "idle green runs nothing"
    );
    // The release registered a new revision of green's family only.
    let aws = world.aws().await.unwrap();
    let eu = aws_sdk_ecs::Client::new(&aws.regional(&"eu-west-1".parse().unwrap()));
    let e = s.config.alb("eu-west-1").unwrap().ecs.clone().unwrap();
    let (_, green_before) = traffic_shifter::ecs::describe(&eu, &e.cluster, &e.green_service)
        .await
        .unwrap();
    let (_, blue_before) = traffic_shifter::ecs::describe(&eu, &e.cluster, &e.blue_service)
        .await
        .unwrap();
    let family = traffic_shifter::ecs::family(&green_before).to_string();
    let registered = eu
        .register_task_definition()
        .family(&family)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("public.ecr.aws/nginx/nginx:release-2")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let revision = registered.task_definition().unwrap().revision();

    let o = run(&s, json!({"command": "start", "plan": "all-at-once"})).await;
    assert_eq!(status(&o), Status::Succeeded, "{}", o.summary);
    assert_eq!(
        o.deployment.as_ref().unwrap().scale["eu-west-1"],
        BLUE_TASKS
    );
    assert_eq!(
        tasks(&world, &s).await.unwrap(),
        colours(BLUE_TASKS, BLUE_TASKS),
        "both run until the bake ends"
    );
    let (_, green_after) = traffic_shifter::ecs::describe(&eu, &e.cluster, &e.green_service)
        .await
        .unwrap();
    let (_, blue_after) = traffic_shifter::ecs::describe(&eu, &e.cluster, &e.blue_service)
        .await
        .unwrap();
    let described = eu
        .describe_task_definition()
        .task_definition(&green_after)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.task_definition().unwrap().revision(),
        revision,
        "green runs the release"
    );
    assert_eq!(blue_after, blue_before, "the live colour is not redeployed");

    // The bake is 0 s in the local world: the next tick retires blue.
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "retired", "{}", t.summary);
    assert_eq!(tasks(&world, &s).await.unwrap(), colours(0, BLUE_TASKS));
    assert_eq!(
        run(&s, json!({"command": "tick"})).await.action,
        "nothing-due"
    );

    // The next release goes to blue: scaled to green's count first, rolled back by an alarm,
    // and blue (the new side now) scaled down only after the listeners are back on green.
    let o = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    assert!(o.deployment.as_ref().unwrap().swapped);
    assert_eq!(
        tasks(&world, &s).await.unwrap(),
        colours(BLUE_TASKS, BLUE_TASKS)
    );
    let r = run(
        &s,
        alarm_event("app-5xx-local", "ALARM", "us-east-1", "scale-1"),
    )
    .await;
    assert_eq!(r.action, "rolled-back");
    assert_eq!(
        tasks(&world, &s).await.unwrap(),
        colours(BLUE_TASKS, BLUE_TASKS),
        "a rollback scales nothing down itself"
    );
    // A listener that is not back yet holds the scale-down (and is put back).
    let ap = s.config.alb("ap-southeast-1").unwrap().swapped();
    traffic_shifter::alb::set_green(&aws.elbv2(&"ap-southeast-1".parse().unwrap()), &ap, 10)
        .await
        .unwrap();
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "waiting", "{}", t.summary);
    assert!(
        t.summary
            .contains("ap-southeast-1: listener 90/10, recorded 100/0"),
        "{}",
        t.summary
    );
    assert_eq!(
        tasks(&world, &s).await.unwrap(),
        colours(BLUE_TASKS, BLUE_TASKS)
    );
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(100));
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "retired", "{}", t.summary);
    assert_eq!(tasks(&world, &s).await.unwrap(), colours(0, BLUE_TASKS));
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn no_step_moves_until_the_new_targets_are_healthy() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let aws = world.aws().await.unwrap();
    // The stand-in for green's tasks in ap-southeast-1 not yet registered.
    let elb = aws.elbv2(&"ap-southeast-1".parse().unwrap());
    let green = s.config.alb("ap-southeast-1").unwrap().green_tg_arn.clone();
    let targets: Vec<_> = elb
        .describe_target_health()
        .target_group_arn(&green)
        .send()
        .await
        .unwrap()
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target().cloned())
        .collect();
    elb.deregister_targets()
        .target_group_arn(&green)
        .set_targets(Some(targets.clone()))
        .send()
        .await
        .unwrap();
    let o = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    assert_eq!(o.action, "started; waiting", "{}", o.summary);
    assert!(
        o.summary.contains(
            "ap-southeast-1: 2 of 2 tasks running, 0 of 0 green targets healthy (need 2)"
        ),
        "{}",
        o.summary
    );
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    assert_eq!(
        tasks(&world, &s).await.unwrap(),
        colours(BLUE_TASKS, BLUE_TASKS)
    );
    assert_eq!(run(&s, json!({"command": "tick"})).await.action, "waiting");
    elb.register_targets()
        .target_group_arn(&green)
        .set_targets(Some(targets))
        .send()
        .await
        .unwrap();
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "stepped", "{}", t.summary);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(10));
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn reconcile_puts_a_finished_deployment_back_and_says_so() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    assert_eq!(
        run(&s, json!({"command": "reconcile"})).await.action,
        "in-sync"
    );
    run(&s, json!({"command": "start", "plan": "all-at-once"})).await;
    assert_eq!(
        run(&s, json!({"command": "reconcile"})).await.action,
        "in-sync"
    );
    // Someone moves a listener of a finished deployment by hand.
    let aws = world.aws().await.unwrap();
    let eu = s.config.alb("eu-west-1").unwrap().clone();
    traffic_shifter::alb::set_green(&aws.elbv2(&"eu-west-1".parse().unwrap()), &eu, 50)
        .await
        .unwrap();
    let r = run(&s, json!({"command": "reconcile"})).await;
    assert_eq!(r.action, "reconciled");
    assert!(
        r.summary
            .contains("eu-west-1: listener 50/50, recorded 0/100"),
        "{}",
        r.summary
    );
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(100));
    assert_eq!(
        run(&s, json!({"command": "reconcile"})).await.action,
        "in-sync"
    );
    reset(&world, &s).await.unwrap();
}

/// A small deterministic generator, so a failing interleaving can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

async fn delayed(ms: u64, shifter: &Shifter, event: Value) -> Result<Outcome, ShiftError> {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    handle(shifter, event, None).await
}

/// Starts a four-step canary and makes its next steps (30, 60, 100) due now.
async fn mid_canary(s: &Shifter) {
    run(s, json!({"command": "start", "steps": [{"weight": 10, "bake": "1h"}, {"weight": 30}, {"weight": 60}, {"weight": 100}]})).await;
    let mut current = s.load().await.unwrap().unwrap();
    current.value.next_at_ms = 0;
    s.store
        .save(
            &cutover_core::state::keys::deployment_current("app"),
            &current.value,
            Some(current.version),
        )
        .await
        .unwrap();
}

/// The listeners' green weights and the final record's, side by side.
async fn listeners_and_record(
    world: &World,
    s: &Shifter,
) -> (BTreeMap<String, i32>, BTreeMap<String, i32>, Status) {
    let fin = s.load().await.unwrap().unwrap().value;
    let recorded = fin
        .weights
        .iter()
        .map(|(r, w)| (r.clone(), i32::from(*w)))
        .collect();
    (green_weights(world, s).await.unwrap(), recorded, fin.status)
}

/// A rollback that runs from start to end while the next tick of `hooks`'
/// shifters is held between recording its step and writing it; `None` when no
/// tick reached its write (none recorded a step within 5 s).
async fn rollback_inside_a_write_window(
    hooks: &traffic_shifter::hooks::Hooks,
    shifter: &Shifter,
    event: Value,
) -> Option<Result<Outcome, ShiftError>> {
    let held = tokio::time::timeout(std::time::Duration::from_secs(5), hooks.paused()).await;
    if held.is_err() {
        hooks.disarm();
        return None;
    }
    let r = handle(shifter, event, None).await;
    hooks.release();
    Some(r)
}

#[tokio::test]
async fn a_rollback_inside_a_ticks_write_window_is_overwritten_unless_the_tick_follows_the_record()
{
    let _t = TURN.lock().await;
    let (world, mut s) = setup().await;
    let s3 = shifter(&world).await.unwrap();
    let mut seen = Vec::new();
    for follow in [false, true] {
        reset(&world, &s).await.unwrap();
        s.hooks = Default::default();
        s.hooks.skip_follow(!follow);
        mid_canary(&s).await;
        s.hooks.hold_next_write();
        let alarm = alarm_event(
            "app-5xx-local",
            "ALARM",
            "eu-west-1",
            &format!("window-{follow}"),
        );
        let (tick, rollback) = tokio::join!(
            handle(&s, json!({"command": "tick"}), None),
            rollback_inside_a_write_window(&s.hooks, &s3, alarm),
        );
        let rollback = rollback
            .expect("the tick recorded its step and was held")
            .unwrap();
        assert_eq!(rollback.action, "rolled-back");
        // The tick wrote 30 % after the rollback's 100 % blue, then lost the record race on 60 %.
        assert!(
            tick.is_err(),
            "the tick's next record must conflict: {tick:?}"
        );
        let (listeners, recorded, status) = listeners_and_record(&world, &s).await;
        assert_eq!(status, Status::RolledBack);
        assert_eq!(recorded, all(0));
        seen.push((follow, listeners));
    }
    s.hooks.skip_follow(false);
    assert_eq!(
        seen,
        vec![(false, all(30)), (true, all(0))],
        "without following the record the tick's late write stays (30 % green under a RolledBack record); with it, 0 %"
    );
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn concurrent_ticks_and_rollbacks_always_end_on_the_recorded_weights() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let (mut s2, mut s3) = (
        shifter(&world).await.unwrap(),
        shifter(&world).await.unwrap(),
    );
    // One set of pause points for the three: whichever tick records first is held.
    s2.hooks = s.hooks.clone();
    s3.hooks = s.hooks.clone();
    // TRAFFIC_SKIP_FOLLOW=1 turns the follow step off, to see this test fail.
    s.hooks
        .skip_follow(std::env::var("TRAFFIC_SKIP_FOLLOW").is_ok_and(|v| v == "1"));
    let runs: usize = std::env::var("TRAFFIC_INTERLEAVINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut rng = Lcg(17);
    let (mut rolled_back, mut succeeded, mut errors, mut in_window) = (0, 0, 0, 0);
    for run_no in 0..runs {
        reset(&world, &s).await.unwrap();
        mid_canary(&s).await;
        let (d1, d2, d3) = (rng.below(60), rng.below(60), rng.below(60));
        // Every other run (at random) the rollback lands inside a tick's write window.
        let held = rng.below(2) == 0;
        let alarm = alarm_event(
            "app-5xx-local",
            "ALARM",
            "eu-west-1",
            &format!("race-{run_no}"),
        );
        if held {
            s.hooks.hold_next_write();
        }
        let rollback = async {
            if held {
                if let Some(r) = rollback_inside_a_write_window(&s.hooks, &s3, alarm.clone()).await
                {
                    return (r, true);
                }
            }
            (delayed(d3, &s3, alarm).await, false)
        };
        let (a, b, (c, windowed)) = tokio::join!(
            delayed(d1, &s, json!({"command": "tick"})),
            delayed(d2, &s2, json!({"command": "tick"})),
            rollback,
        );
        in_window += usize::from(windowed);
        errors += [a.is_err(), b.is_err(), c.is_err()]
            .iter()
            .filter(|e| **e)
            .count();
        let (listeners, recorded, status) = listeners_and_record(&world, &s).await;
        assert_eq!(
            listeners, recorded,
            "run {run_no} (delays tick {d1} ms, tick {d2} ms, rollback {d3} ms, in a write window: {windowed}): the listeners differ from the final state {status:?}; outcomes {:?} / {:?} / {:?}",
            a.map(|o| o.action), b.map(|o| o.action), c.map(|o| o.action)
        );
        match status {
            Status::RolledBack => rolled_back += 1,
            Status::Succeeded => succeeded += 1,
            other => panic!("run {run_no}: ended {other:?}"),
        }
    }
    s.hooks.skip_follow(false);
    println!("{runs} interleavings: {rolled_back} rolled back ({in_window} inside a tick's write window), {succeeded} succeeded before the alarm, {errors} calls lost a race (conflict), every one ending on the recorded weights");
    assert!(
        rolled_back > 0,
        "the alarm must land during some deployments"
    );
    assert!(
        in_window >= runs / 4,
        "only {in_window} of {runs} rollbacks landed inside a write window"
    );
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn two_concurrent_starts_one_wins_the_other_gets_a_conflict() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let s2 = shifter(&world).await.unwrap();
    let (a, b) = tokio::join!(
        handle(
            &s,
            json!({"command": "start", "plan": "canary-10-5m"}),
            None
        ),
        handle(
            &s2,
            json!({"command": "start", "plan": "canary-20-5m"}),
            None
        )
    );
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (a, b) => panic!("expected one winner: {a:?} / {b:?}"),
    };
    assert!(
        matches!(
            &lost,
            ShiftError::Core(cutover_core::Error::Conflict { .. })
        ),
        "{lost}"
    );
    assert!(
        lost.to_string().contains("someone else moved first")
            || lost.to_string().contains("promote or abort"),
        "{lost}"
    );
    let expected = if won.deployment.as_ref().unwrap().plan == "canary-10-5m" {
        10
    } else {
        20
    };
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(expected));
    // A third start while one runs: a clear conflict, nothing changed.
    let third = handle(&s, json!({"command": "start", "plan": "all-at-once"}), None)
        .await
        .unwrap_err();
    assert!(
        third
            .to_string()
            .contains("promote or abort it before starting another"),
        "{third}"
    );
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(expected));
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn a_redelivered_tick_never_steps_twice() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    run(
        &s,
        json!({"command": "start", "steps": [{"weight": 10}, {"weight": 40}, {"weight": 100}]}),
    )
    .await;
    // The zero-bake steps ran at start; a fresh deployment with a bake shows the tick dedup.
    reset(&world, &s).await.unwrap();
    run(&s, json!({"command": "start", "steps": [{"weight": 10, "bake": "0s"}, {"weight": 40, "bake": "1h"}, {"weight": 100}]})).await;
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(40));
    let tick = json!({"version": "0", "id": "tick-1", "detail-type": "Scheduled Event", "source": "aws.events",
                      "account": "1", "time": "t", "region": "us-east-1", "resources": [], "detail": {}});
    let first = run(&s, tick.clone()).await;
    assert_eq!(first.action, "nothing-due");
    let second = run(&s, tick).await;
    assert_eq!(second.action, "duplicate");
    assert_eq!(second.deployment.unwrap().step, 2);
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_changes() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    for (event, needle) in [
        (
            json!({"command": "start", "plan": "canary-10-5m", "service": "billing"}),
            "unknown service \"billing\"",
        ),
        (
            json!({"command": "start", "plan": "canary-10-5m", "scope": "mars-north-1"}),
            "unknown scope or region",
        ),
        (
            json!({"command": "start", "plan": "canary-x"}),
            "canary-<pct>-<bake>",
        ),
        (
            json!({"command": "start", "steps": [{"weight": 70}, {"weight": 130}]}),
            "not 1 to 100",
        ),
        (json!({"command": "pause"}), "no deployment to pause"),
    ] {
        let err = handle(&s, event.clone(), None).await.unwrap_err();
        assert!(matches!(err, ShiftError::InvalidInput(_)), "{event}: {err}");
        assert!(err.to_string().contains(needle), "{event}: {err}");
    }
    assert!(s.load().await.unwrap().is_none());

    // A listener that is not a clean blue/green forward: refused, naming the region; nothing changed.
    let aws = world.aws().await.unwrap();
    let eu = s.config.alb("eu-west-1").unwrap().clone();
    let elb = aws.elbv2(&"eu-west-1".parse().unwrap());
    for (blue, green, needle) in [
        (60, 60, "= 120, not 100"),
        (70, 30, "is split blue 70 / green 30"),
        (0, 100, "do not agree on the live group"),
    ] {
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
        };
        let forward = ForwardActionConfig::builder()
            .target_groups(
                TargetGroupTuple::builder()
                    .target_group_arn(&eu.blue_tg_arn)
                    .weight(blue)
                    .build(),
            )
            .target_groups(
                TargetGroupTuple::builder()
                    .target_group_arn(&eu.green_tg_arn)
                    .weight(green)
                    .build(),
            )
            .build();
        elb.modify_listener()
            .listener_arn(&eu.listener_arn)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .forward_config(forward)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let err = handle(
            &s,
            json!({"command": "start", "plan": "canary-10-5m"}),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("eu-west-1") && err.to_string().contains(needle),
            "{err}"
        );
        assert!(
            s.load().await.unwrap().is_none(),
            "no deployment was recorded"
        );
        let w = green_weights(&world, &s).await;
        if blue + green == 100 {
            let w = w.unwrap();
            assert_eq!(
                (w["us-east-1"], w["ap-southeast-1"]),
                (0, 0),
                "other regions untouched"
            );
        }
    }
    reset(&world, &s).await.unwrap();
}

/// The demo's traffic stage (`make demo`, stage "traffic shift") on this world: the
/// whole-ALB alarm rollback, a canary rolled back on green's own 5XX share that the
/// whole-ALB threshold misses, and a release with green scaled 0 -> N -> live -> blue 0.
#[tokio::test]
async fn the_demo_stage_rolls_back_a_green_only_failure_and_scales_the_release() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let mut lines = Vec::new();
    let v = cutover_rehearsal::traffic_stage::run(&world, &mut |l| {
        println!("{l}");
        lines.push(l)
    })
    .await
    .unwrap();
    let g = &v["green_only"];
    assert_eq!(
        (g["whole_errors"].as_f64(), g["whole_requests"].as_f64()),
        (Some(40.0), Some(1000.0)),
        "{g}"
    );
    assert_eq!(
        (g["green_errors"].as_f64(), g["green_requests"].as_f64()),
        (Some(40.0), Some(100.0)),
        "{g}"
    );
    assert_eq!(g["whole_alarm_would_fire"], false, "4 % is under 5 %");
    assert_eq!(g["rolled_back"], true, "{g}");
    assert!(g["reason"].as_str().unwrap().contains("40.0 %"), "{g}");
    let moments: Vec<(String, i64, i64)> = v["scaling"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["region"] == "eu-west-1")
        .map(|r| {
            (
                r["moment"].as_str().unwrap().to_string(),
                r["blue"].as_i64().unwrap(),
                r["green"].as_i64().unwrap(),
            )
        })
        .collect();
    let n = i64::from(BLUE_TASKS);
    assert_eq!(
        moments,
        vec![
            ("before start".into(), n, 0),
            ("after start".into(), n, n),
            ("100 % green".into(), n, n),
            ("after the bake".into(), 0, n),
        ]
    );
    assert_eq!(v["ok"], true, "{v}");
    assert!(lines
        .iter()
        .any(|l| l.contains("= 4.0 %") && l.contains("= 40.0 %")));
    reset(&world, &s).await.unwrap();
}

// --- lifecycle hooks: the real release-hook Lambda, served by the world's `cargo lambda watch`
// and invoked through its router, smoke-checking an HTTP endpoint this test serves.

/// A loopback HTTP endpoint standing in for the new colour's test listener:
/// answers `status` to every request (or accepts and never answers, `None`).
async fn endpoint_on(listener: tokio::net::TcpListener, status: Option<u16>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            match status {
                Some(code) => {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 2048];
                        let _ = s.read(&mut buf).await;
                        let _ = s
                            .write_all(
                                format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n")
                                    .as_bytes(),
                            )
                            .await;
                    });
                }
                None => held.push(s),
            }
        }
    });
}

async fn endpoint(status: Option<u16>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    endpoint_on(listener, status).await;
    format!("http://127.0.0.1:{port}/health?region={{region}}")
}

/// A shifter whose hooks are the release-hook Lambda; `phases` = (setting, function).
async fn hooked(
    world: &World,
    phases: &[(&str, &str)],
    details: Value,
    extra: &[(&str, &str)],
) -> Shifter {
    let details = details.to_string();
    let mut pairs: Vec<(&str, &str)> = phases.to_vec();
    pairs.push(("CUTOVER_HOOK_DETAILS", details.as_str()));
    // The first invocation builds the function under cargo lambda watch.
    pairs.push(("CUTOVER_HOOK_TIMEOUT", "10m"));
    pairs.extend_from_slice(extra);
    let s = cutover_rehearsal::traffic::shifter_with(world, &pairs)
        .await
        .unwrap();
    reset(world, &s).await.unwrap();
    s
}

async fn warm_release_hook(world: &World) -> cutover_rehearsal::runbooks::Router {
    let router = cutover_rehearsal::runbooks::Router::of(world).unwrap();
    // Built on first use; an empty context is refused once it runs.
    let e = router.invoke("release-hook", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("InvalidInput"), "{e}");
    router.reset().await.unwrap();
    router
}

async fn history_actions(s: &Shifter, o: &Outcome) -> Vec<String> {
    s.history(&o.deployment.as_ref().unwrap().id)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}: {}", e.action, e.detail))
        .collect()
}

#[tokio::test]
async fn hooks_that_succeed_let_the_release_through_at_each_phase() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    let router = warm_release_hook(&world).await;
    let url = endpoint(Some(200)).await;
    let s = hooked(
        &world,
        &[
            ("CUTOVER_PRE_TRAFFIC_HOOK", "release-hook"),
            ("CUTOVER_PRE_PROMOTE_HOOK", "release-hook"),
            ("CUTOVER_POST_TRAFFIC_HOOK", "release-hook"),
        ],
        json!({"url": url, "requests": 3, "maxLatencyMs": 1000}),
        &[],
    )
    .await;
    let o = run(&s, json!({"command": "start", "plan": "canary-10-1h"})).await;
    assert_eq!(o.action, "started; stepped", "{}", o.summary);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(10));
    let p = run(&s, json!({"command": "promote"})).await;
    assert_eq!(p.action, "promote-requested; succeeded", "{}", p.summary);
    assert_eq!(status(&p), Status::Succeeded);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(100));
    let h = history_actions(&s, &o).await;
    let hooks: Vec<&String> = h.iter().filter(|e| e.starts_with("hook-")).collect();
    assert_eq!(hooks.len(), 3, "{h:#?}");
    for (event, phase) in hooks
        .iter()
        .zip(["pre-traffic", "pre-promote", "post-traffic"])
    {
        assert!(
            event.starts_with(&format!(
                "hook-succeeded: the {phase} hook release-hook answered SUCCEEDED"
            )),
            "{event}"
        );
        assert!(event.contains("3 requests per region, all 2xx"), "{event}");
    }
    let stages: Vec<String> = router
        .invocations()
        .await
        .unwrap()
        .iter()
        .filter(|i| i["function"] == "release-hook")
        .map(|i| i["payload"]["lifecycleStage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stages, ["PRE_TRAFFIC", "PRE_PROMOTE", "POST_TRAFFIC"]);
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn an_in_progress_hook_is_asked_again_after_its_delay_then_the_release_proceeds() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    let router = warm_release_hook(&world).await;
    // Nothing listens yet: the new colour is not answering, so the hook says IN_PROGRESS.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/health");
    let s = hooked(
        &world,
        &[("CUTOVER_PRE_TRAFFIC_HOOK", "release-hook")],
        json!({"url": url, "requests": 2, "callBackDelay": 2, "attempts": 5}),
        &[],
    )
    .await;
    let o = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    assert_eq!(o.action, "started; hook-in-progress", "{}", o.summary);
    assert!(o.summary.contains("asked again in 2 s"), "{}", o.summary);
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(
        t.action, "hook-waiting",
        "not asked again before the delay: {}",
        t.summary
    );
    assert_eq!(
        green_weights(&world, &s).await.unwrap(),
        all(0),
        "no traffic before the hook passes"
    );
    endpoint_on(
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap(),
        Some(200),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "stepped", "{}", t.summary);
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(10));
    let calls: Vec<Value> = router
        .invocations()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i["function"] == "release-hook")
        .collect();
    assert_eq!(calls.len(), 2, "invoked twice, not once per tick");
    assert_eq!(calls[1]["payload"]["invocation"], 2);
    assert_eq!(
        calls[1]["payload"]["hookDetails"]["attempt"], 1,
        "its hookDetails came back"
    );
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn a_failed_hook_rolls_back_from_100_and_says_why() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    warm_release_hook(&world).await;
    let url = endpoint(Some(503)).await;
    let s = hooked(
        &world,
        &[("CUTOVER_POST_TRAFFIC_HOOK", "release-hook")],
        json!({"url": url, "requests": 2}),
        &[],
    )
    .await;
    let o = run(&s, json!({"command": "start", "plan": "all-at-once"})).await;
    assert_eq!(o.action, "started; rolled-back", "{}", o.summary);
    assert_eq!(status(&o), Status::RolledBack);
    let reason = o.deployment.as_ref().unwrap().reason.clone().unwrap();
    assert!(
        reason.starts_with("the post-traffic hook release-hook answered FAILED: POST_TRAFFIC:")
            && reason.contains("answered HTTP 503"),
        "{reason}"
    );
    assert_eq!(
        green_weights(&world, &s).await.unwrap(),
        all(0),
        "back to blue everywhere"
    );
    let h = history_actions(&s, &o).await;
    assert!(
        h.iter().any(|e| e.starts_with("stepped:")),
        "it did reach 100 %: {h:#?}"
    );
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn a_hook_that_errors_times_out_or_waits_too_long_counts_as_failed() {
    let _t = TURN.lock().await;
    let world = World::load().unwrap();
    warm_release_hook(&world).await;
    // A function error: the hook's context without settings is refused by release-hook.
    let s = hooked(
        &world,
        &[("CUTOVER_PRE_TRAFFIC_HOOK", "release-hook")],
        json!({}),
        &[],
    )
    .await;
    let o = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    assert_eq!(o.action, "started; rolled-back", "{}", o.summary);
    let reason = o.deployment.as_ref().unwrap().reason.clone().unwrap();
    // Lambda answers a function error with 200 + X-Amz-Function-Error ("failed (Unhandled): …");
    // cargo lambda watch with HTTP 500, which the SDK sees as an Invoke failure ("could not be
    // invoked: …"). Either way the function's own message is the reason, and it rolls back.
    assert!(
        reason.starts_with("the pre-traffic hook release-hook ")
            && reason.contains("hookDetails has no url"),
        "{reason}"
    );
    // No answer within the bound: an endpoint that accepts and never answers.
    let url = endpoint(None).await;
    let s = hooked(
        &world,
        &[("CUTOVER_PRE_TRAFFIC_HOOK", "release-hook")],
        json!({"url": url, "requests": 1, "maxLatencyMs": 1000}),
        &[("CUTOVER_HOOK_TIMEOUT", "1s")],
    )
    .await;
    let o = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    assert_eq!(o.action, "started; rolled-back", "{}", o.summary);
    let reason = o.deployment.as_ref().unwrap().reason.clone().unwrap();
    assert!(
        reason.contains("gave no answer within 1 s (CUTOVER_HOOK_TIMEOUT)"),
        "{reason}"
    );
    // IN_PROGRESS for longer than CUTOVER_HOOK_MAX_WAIT.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = hooked(
        &world,
        &[("CUTOVER_PRE_TRAFFIC_HOOK", "release-hook")],
        json!({"url": format!("http://127.0.0.1:{port}/"), "requests": 1, "callBackDelay": 1, "attempts": 100}),
        &[("CUTOVER_HOOK_MAX_WAIT", "1s")],
    )
    .await;
    let o = run(&s, json!({"command": "start", "plan": "canary-10-5m"})).await;
    assert_eq!(o.action, "started; hook-in-progress", "{}", o.summary);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "rolled-back", "{}", t.summary);
    let reason = t.deployment.as_ref().unwrap().reason.clone().unwrap();
    assert!(
        reason.contains("still answered IN_PROGRESS after 2 s"),
        "{reason}"
    );
    assert_eq!(green_weights(&world, &s).await.unwrap(), all(0));
    reset(&world, &s).await.unwrap();
}

#[tokio::test]
async fn a_release_names_the_image_for_the_idle_colour_only() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    let aws = world.aws().await.unwrap();
    let image = "public.ecr.aws/nginx/nginx:release-3";
    let running = |region: &str| {
        let client = aws_sdk_ecs::Client::new(&aws.regional(&region.parse().unwrap()));
        let e = s.config.alb(region).unwrap().ecs.clone().unwrap();
        async move {
            let mut out = Vec::new();
            for service in [&e.blue_service, &e.green_service] {
                let (_, td) = traffic_shifter::ecs::describe(&client, &e.cluster, service)
                    .await
                    .unwrap();
                let d = client
                    .describe_task_definition()
                    .task_definition(&td)
                    .send()
                    .await
                    .unwrap();
                let image = d.task_definition().unwrap().container_definitions()[0]
                    .image()
                    .unwrap()
                    .to_string();
                out.push((td, image));
            }
            out
        }
    };
    let before = running("eu-west-1").await;
    // A container the task definitions do not have: refused before anything is recorded or scaled.
    let other =
        cutover_rehearsal::traffic::shifter_with(&world, &[("CUTOVER_APP_CONTAINER", "web")])
            .await
            .unwrap();
    let e = handle(
        &other,
        json!({"command": "start", "plan": "all-at-once", "image": image}),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ShiftError::InvalidInput(_)), "{e}");
    assert!(e.to_string().contains("no container \"web\""), "{e}");
    assert!(s.load().await.unwrap().is_none(), "nothing recorded");
    assert_eq!(tasks(&world, &s).await.unwrap(), colours(BLUE_TASKS, 0));

    let o = run(
        &s,
        json!({"command": "start", "plan": "all-at-once", "image": image}),
    )
    .await;
    assert_eq!(status(&o), Status::Succeeded, "{}", o.summary);
    let d = o.deployment.unwrap();
    assert_eq!(d.image.as_deref(), Some(image));
    assert_eq!(d.release.len(), 3, "a revision per region: {:?}", d.release);
    let after = running("eu-west-1").await;
    assert_eq!(after[0], before[0], "the live colour runs what it ran");
    assert_eq!(
        after[1].0, d.release["eu-west-1"],
        "green runs the release's revision"
    );
    assert_eq!(after[1].1, image);
    assert_eq!(
        traffic_shifter::ecs::family(&after[1].0),
        traffic_shifter::ecs::family(&before[1].0),
        "in green's own family"
    );
    assert_ne!(after[1].0, before[1].0);
    reset(&world, &s).await.unwrap();
}

/// Each colour's autoscaling floor (min capacity) per region: (blue, green).
async fn floors(world: &World, s: &Shifter) -> BTreeMap<String, (i32, i32)> {
    use aws_sdk_applicationautoscaling::types::ServiceNamespace;
    let aws = world.aws().await.unwrap();
    let mut out = BTreeMap::new();
    for a in &s.config.albs {
        let e = a.ecs.clone().unwrap();
        let client =
            aws_sdk_applicationautoscaling::Client::new(&aws.regional(&a.region.parse().unwrap()));
        let mut min = Vec::new();
        for service in [&e.blue_service, &e.green_service] {
            let t = client
                .describe_scalable_targets()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_ids(traffic_shifter::ecs::scaling_resource_id(
                    &e.cluster, service,
                ))
                .send()
                .await
                .unwrap();
            min.push(
                t.scalable_targets()
                    .first()
                    .map_or(-1, |t| t.min_capacity()),
            );
        }
        out.insert(a.region.clone(), (min[0], min[1]));
    }
    out
}

/// The colours' scalable targets as infra/ creates them (blue's floor its count, green's 0), or gone.
async fn scalable_targets(world: &World, s: &Shifter, present: bool) {
    use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
    let aws = world.aws().await.unwrap();
    for a in &s.config.albs {
        let e = a.ecs.clone().unwrap();
        let client =
            aws_sdk_applicationautoscaling::Client::new(&aws.regional(&a.region.parse().unwrap()));
        for (service, min) in [(&e.blue_service, BLUE_TASKS), (&e.green_service, 0)] {
            let id = traffic_shifter::ecs::scaling_resource_id(&e.cluster, service);
            if present {
                client
                    .register_scalable_target()
                    .service_namespace(ServiceNamespace::Ecs)
                    .resource_id(id)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .min_capacity(min)
                    .max_capacity(6)
                    .send()
                    .await
                    .unwrap();
            } else {
                let _ = client
                    .deregister_scalable_target()
                    .service_namespace(ServiceNamespace::Ecs)
                    .resource_id(id)
                    .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                    .send()
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn the_autoscaling_floor_moves_with_the_colours_count() {
    let _t = TURN.lock().await;
    let (world, s) = setup().await;
    scalable_targets(&world, &s, true).await;
    let per_region = |b: i32, g: i32| -> BTreeMap<String, (i32, i32)> { colours(b, g) };
    assert_eq!(floors(&world, &s).await, per_region(BLUE_TASKS, 0));
    let o = run(&s, json!({"command": "start", "plan": "all-at-once"})).await;
    assert_eq!(status(&o), Status::Succeeded, "{}", o.summary);
    assert_eq!(
        floors(&world, &s).await,
        per_region(BLUE_TASKS, BLUE_TASKS),
        "green's floor rises with its count: autoscaling must not scale the release back in"
    );
    let t = run(&s, json!({"command": "tick"})).await;
    assert_eq!(t.action, "retired", "{}", t.summary);
    assert_eq!(
        floors(&world, &s).await,
        per_region(0, BLUE_TASKS),
        "the retired colour's floor is 0: autoscaling must not scale it back up"
    );
    assert_eq!(tasks(&world, &s).await.unwrap(), colours(0, BLUE_TASKS));
    scalable_targets(&world, &s, false).await;
    reset(&world, &s).await.unwrap();
}
