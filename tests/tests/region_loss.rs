//! The region-loss drill (`cutover_rehearsal::region_loss`): us-east-1 lost whole —
//! database, WAL links and AWS — with a control plane in every region. It kills the
//! primary, so the world is rebuilt afresh afterwards (`world.sh down --purge`, `up`),
//! whatever happened, for the test binaries that run after this one.

#![allow(clippy::unwrap_used)]

use cutover_rehearsal::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn us_east_1_lost_whole_fails_over_once_from_the_survivors_within_30_s_of_the_kill() {
    let world = World::load().unwrap();
    let out = cutover_rehearsal::region_loss::run(&world, &mut |l| println!("{l}")).await;
    let rebuilt = world.rebuild();
    assert!(
        rebuilt.is_ok(),
        "the world was rebuilt after the drill: {rebuilt:?}"
    );
    let out = out.unwrap();
    let mut shown = out.clone();
    shown["lost_seqs"] = serde_json::Value::Null;
    println!("{}", serde_json::to_string_pretty(&shown).unwrap());
    // Exactly one promotion among twenty invocations in two regions.
    assert_eq!(out["invocations"], 20, "{shown}");
    assert_eq!(out["promotions"], 1, "{shown}");
    assert_ne!(out["to"], "us-east-1", "{shown}");
    assert!(out["to"].is_string(), "{shown}");
    // Detection included, from the kill.
    let rto = out["rto_from_kill_ms"].as_i64().unwrap();
    assert!(rto < 30_000, "RTO {rto} ms from the kill: {shown}");
    // The grace period was honoured: nothing moved before 20 s (a restart that long stays home).
    let decided = out["timeline"][5]["ms"].as_i64().unwrap();
    assert!(
        decided >= 20_000,
        "decided {decided} ms after the kill: {shown}"
    );
    // One writer at a time, and the loss counted against what was predicted before the kill.
    assert_eq!(
        out["acknowledged_by_another_writer_after_kill"], 0,
        "{shown}"
    );
    let lost = out["lost"].as_u64().unwrap();
    let predicted = out["predicted_lost_writes"].as_u64().unwrap();
    // The prediction counts the writes acknowledged within the last lag sample before
    // the links were cut; the writer commits every ~5 ms, the sample is exact to a few ms.
    assert!(
        lost.abs_diff(predicted) <= 2,
        "lost {lost}, predicted {predicted}: {shown}"
    );
    // Both surviving regions' SSM copies name the new writer.
    let copies = out["ssm_copies"].as_object().unwrap();
    let first = copies.values().next().unwrap();
    assert!(
        copies.values().all(|v| v == first && v.is_string()),
        "{shown}"
    );
    // The lost region, back, heals its own copy from the recorded move.
    assert_eq!(out["returned_region"]["healed"], true, "{shown}");
    assert_eq!(out["ok"], true, "{shown}");
}
