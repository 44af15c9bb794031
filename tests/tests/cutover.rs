//! The cutover's drills against the real world: the switch under load and the
//! fallback (nothing lost, nothing duplicated), a failed gate and its rollback,
//! two advances at once, sequences. The tests share one world and run one at a time.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cutover::postgres as pg;
use cutover_core::state::{keys, Phase, StateStore};
use cutover_rehearsal::cutover_stage::{self, controller, prepare};
use cutover_rehearsal::replication::wait_for_cdc;
use cutover_rehearsal::world::{Node, World};
use serde_json::Value;
use tokio::sync::Mutex;

static WORLD: Mutex<()> = Mutex::const_new(());

fn quiet(_: String) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switch_under_load_and_fallback_lose_and_duplicate_nothing() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let mut lines = Vec::new();
    let report =
        cutover_stage::switch_and_fall_back(&world, Duration::from_secs(5), false, &mut |l| {
            println!("{l}");
            lines.push(l)
        })
        .await
        .unwrap();
    assert!(report["on_source"].as_u64().unwrap() > 100, "{report}");
    assert!(
        report["on_target"].as_u64().unwrap() > 100,
        "the application wrote to the target: {report}"
    );
    assert_eq!(report["lost_on_source"], 0, "{report}");
    assert_eq!(report["lost_on_target"], 0, "{report}");
    assert_eq!(report["duplicated"], 0, "{report}");
    assert_eq!(
        report["duplicate_key_errors"], 0,
        "the first inserts after the switch succeed: {report}"
    );
    assert_eq!(report["final_validation"]["verdict"], "MATCH", "{report}");
    assert_eq!(
        report["validation_after_fallback"]["verdict"], "MATCH",
        "{report}"
    );
    // Both moves happened, and their windows were measured (the figures live in make demo / bench).
    assert!(
        report["unavailability_switch_ms"].as_f64().is_some(),
        "{report}"
    );
    assert!(
        report["unavailability_fallback_ms"].as_f64().is_some(),
        "{report}"
    );
    let c = controller(&world, &[]).await.unwrap();
    assert_eq!(c.status().await.unwrap().phase, Phase::Cdc);
    assert_eq!(c.writes_to().await.unwrap(), "source");
    let target = world.admin(Node::UsEast1).await.unwrap();
    assert!(
        pg::is_frozen(&target, "app", "cutover").await.unwrap(),
        "after the fallback the target refuses the application's writes"
    );
    cutover_stage::restore(&world).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_refuses_the_freeze_with_the_keys_and_rollback_leaves_the_source_writable() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    let r = cutover_stage::failed_gate(&world, &mut quiet)
        .await
        .unwrap();
    assert_eq!(r["validation"]["verdict"], "MISMATCH", "{r}");
    assert_eq!(r["advance"]["result"], "refused", "{r}");
    assert_eq!(r["advance"]["phase"], "in-sync", "{r}");
    let detail = r["advance"]["detail"].as_str().unwrap();
    assert!(detail.contains("app.customers MISMATCH"), "{detail}");
    assert!(
        detail.contains(r["drift_key"].as_str().unwrap()),
        "the refusal names the key: {detail}"
    );
    assert_eq!(
        r["source_frozen_after_refusal"], false,
        "a refused freeze froze nothing"
    );
    assert_eq!(r["rollback"]["result"], "rolled-back");
    assert_eq!(r["rollback"]["phase"], "cdc");
    assert_eq!(r["source_writable_after_rollback"], true);
    // The audit trail has the refusal and the rollback.
    let aws = world.aws().await.unwrap();
    let store = StateStore::new(
        aws.dynamodb(),
        world.get("CUTOVER_STATE_TABLE").unwrap().to_string(),
    );
    let events = store
        .query_prefix::<Value>("MIGRATION", "EVENT#")
        .await
        .unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|(_, v)| v.value["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"refused".to_string()) && kinds.contains(&"rolled-back".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stable_waits_for_the_watch_window_and_done_ends_replication() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    prepare(&world).await.unwrap();
    let c = controller(&world, &[]).await.unwrap();
    c.advance("t", Some(Phase::Cdc), None, None).await.unwrap();
    let r = cutover_stage::finish(&world, &mut quiet).await;
    let source = world.admin(Node::Source).await.unwrap();
    let target = world.admin(Node::UsEast1).await.unwrap();
    let forward = pg::subscription_enabled(&target, "cutover_sub")
        .await
        .unwrap();
    let reverse = pg::subscription_enabled(&source, "cutover_reverse")
        .await
        .unwrap();
    let writes_to = c.writes_to().await.unwrap();
    let source_frozen = pg::is_frozen(&source, "app", "cutover").await.unwrap();
    cutover_stage::reopen(&world).await.unwrap();
    let r = r.unwrap();
    assert_eq!(r["phase"], "done", "{r}");
    assert_eq!(r["stable_refused_before_the_window"], true, "{r}");
    assert_eq!(r["rollback_after_done"], "refused", "{r}");
    assert_eq!(forward, None, "done drops the forward subscription");
    assert_eq!(reverse, None, "done drops the reverse subscription");
    assert_eq!(writes_to, "target");
    assert!(source_frozen, "the retired source stays read-only");
    // The reopened world replicates again.
    source
        .batch_execute("INSERT INTO drill.cutover_writes (writer_seq, side) VALUES (-2, 'source')")
        .await
        .unwrap();
    wait_for_cdc(&source, Duration::from_secs(30))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_advances_at_once_make_one_transition() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    prepare(&world).await.unwrap();
    let c1 = controller(&world, &[]).await.unwrap();
    let c2 = controller(&world, &[]).await.unwrap();
    let (a, b) = tokio::join!(
        c1.advance("first", Some(Phase::Cdc), None, None),
        c2.advance("second", Some(Phase::Cdc), None, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut results = [a.result.clone(), b.result.clone()];
    results.sort();
    // A "busy" answer reports the phase it read while the other was still moving.
    assert_eq!(c1.status().await.unwrap().phase, Phase::Cdc);
    let advanced = results.iter().filter(|r| *r == "advanced").count();
    assert_eq!(
        advanced, 1,
        "exactly one transition: {results:?} ({} / {})",
        a.detail, b.detail
    );
    assert!(
        results.iter().any(|r| r == "busy" || r == "already"),
        "{results:?}"
    );
    let aws = world.aws().await.unwrap();
    let store = StateStore::new(
        aws.dynamodb(),
        world.get("CUTOVER_STATE_TABLE").unwrap().to_string(),
    );
    let phase = store
        .get::<Value>(&keys::migration_phase())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(phase.version, 1, "one write of the phase");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_insert_after_a_switch_needs_the_sequences_moved() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    prepare(&world).await.unwrap();
    let source = world.admin(Node::Source).await.unwrap();
    let target = world.admin(Node::UsEast1).await.unwrap();
    source
        .batch_execute("INSERT INTO drill.cutover_writes (writer_seq, side) SELECT -g, 'source' FROM generate_series(1, 5) g")
        .await
        .unwrap();
    wait_for_cdc(&source, Duration::from_secs(30))
        .await
        .unwrap();
    // As after any initial copy: the target's identity sequence where it started
    // (an earlier switch in this world may have moved it).
    target
        .batch_execute("SELECT setval('drill.cutover_writes_id_seq', 1, false)")
        .await
        .unwrap();
    // Logical replication carried the rows, not the sequence: the target's identity
    // starts again at 1, on ids the source already used.
    let insert =
        "INSERT INTO drill.cutover_writes (writer_seq, side) VALUES (-100, 'target') RETURNING id";
    let refused = target.query_one(insert, &[]).await;
    let moves = pg::sync_sequences(&source, &target, &["drill".to_string()], 1000)
        .await
        .unwrap();
    let accepted = target.query_one(insert, &[]).await;
    // Take the target-only rows away before judging: the source will reach those ids one day.
    target
        .execute(
            "DELETE FROM drill.cutover_writes WHERE writer_seq = -100",
            &[],
        )
        .await
        .unwrap();
    let err = refused.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
        "{err}"
    );
    let mv = moves
        .iter()
        .find(|m| m.sequence == "drill.cutover_writes_id_seq")
        .unwrap();
    assert_eq!(mv.after, mv.from_value.map(|v| v + 1000), "{moves:?}");
    let id: i64 = accepted.unwrap().get(0);
    assert!(id > mv.from_value.unwrap(), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_cut_short_is_finished_by_the_next_advance() {
    let _one = WORLD.lock().await;
    let world = World::load().unwrap();
    prepare(&world).await.unwrap();
    let c = controller(&world, &[]).await.unwrap();
    let run_a = cutover_stage::to_in_sync(&world, &c, &mut quiet)
        .await
        .unwrap();
    let source = world.admin(Node::Source).await.unwrap();
    let target = world.admin(Node::UsEast1).await.unwrap();

    // Killed after freezing the source, before recording `frozen`.
    pg::freeze(&source, "app", "cutover").await.unwrap();
    assert_eq!(c.status().await.unwrap().phase, Phase::InSync);
    let out = c
        .advance("t", Some(Phase::Drained), None, Some(&run_a))
        .await
        .unwrap();
    assert_eq!(out.result, "advanced", "{}", out.detail);
    assert_eq!(out.phase, Phase::Drained);
    let revalidate: Vec<String> = out.transitions[0].action["revalidate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let run_b = if revalidate.is_empty() {
        None
    } else {
        Some(
            cutover_stage::validation_of(&world, false, &revalidate)
                .await
                .unwrap()
                .0,
        )
    };
    let out = c
        .advance("t", Some(Phase::Verified), None, run_b.as_deref())
        .await
        .unwrap();
    assert_eq!(out.phase, Phase::Verified, "{}", out.detail);

    // Killed in the middle of the switch: sequences moved, forward CDC stopped, reverse
    // replication started, but the application not yet told and `switched` not recorded.
    let (tables, _) = pg::subscribed_tables(&target, "cutover_sub").await.unwrap();
    pg::sync_sequences(&source, &target, &["app".into(), "drill".into()], 1000)
        .await
        .unwrap();
    pg::set_subscription_enabled(&target, "cutover_sub", false)
        .await
        .unwrap();
    let conninfo = cutover_core::db::secure_string(
        &world.aws().await.unwrap().ssm(),
        &format!(
            "/migration/db/{}/reverse-conninfo",
            world.get("CUTOVER_SUFFIX").unwrap()
        ),
    )
    .await
    .unwrap();
    pg::start_reverse(
        &target,
        &source,
        "cutover_reverse",
        &tables,
        conninfo.expose(),
    )
    .await
    .unwrap();
    assert_eq!(c.writes_to().await.unwrap(), "source");

    let out = c
        .advance("t", Some(Phase::Switched), None, None)
        .await
        .unwrap();
    let writes_to = c.writes_to().await.unwrap();
    let reverse = pg::slot_position(&target, "cutover_reverse", "0/0")
        .await
        .unwrap();
    // Back to cdc whatever happened, so the world is left as found.
    let back = c.rollback("t", "the drill is over").await.unwrap();
    cutover_stage::restore(&world).await.unwrap();
    assert_eq!(out.result, "advanced", "{}", out.detail);
    assert_eq!(out.phase, Phase::Switched);
    assert_eq!(writes_to, "target");
    assert!(
        reverse.is_some(),
        "one reverse slot, the one made before the crash"
    );
    assert_eq!(back.phase, Phase::Cdc, "{}", back.detail);
}
