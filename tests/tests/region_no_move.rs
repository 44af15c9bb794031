//! The drills where nothing may move (`cutover_rehearsal::region_loss::no_move`), on
//! every region's own control plane with the defaults: a 10 s blip of the writer's
//! server, and the writer unreachable from eu-west-1 only for longer than the grace
//! period. Every alarm's invocations refuse; the writer stays us-east-1.

#![allow(clippy::unwrap_used)]

use cutover_rehearsal::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blip_and_a_partial_partition_move_nothing() {
    let world = World::load().unwrap();
    let out = cutover_rehearsal::region_loss::no_move(&world, &mut |l| println!("{l}"))
        .await
        .unwrap();
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    for phase in ["blip", "partial_partition"] {
        assert_eq!(out[phase]["moves"], 0, "{phase}: {out}");
        assert_eq!(out[phase]["errors"], 0, "{phase}: {out}");
        assert_eq!(out[phase]["writer"]["ok"], true, "{phase}: {out}");
        assert!(
            out[phase]["acks_after"].as_u64().unwrap() > 0,
            "{phase}: writes go on: {out}"
        );
    }
    // The blip reached the decision (the late alarm, at least) and was told apart.
    let blip = out["blip"]["examples"].to_string();
    assert!(blip.contains("refused"), "{blip}");
    // The partition was seen where it was, and refused as one.
    assert!(
        out["partial_partition"]["alarms_fired_ms"]["eu-west-1"].is_i64(),
        "eu-west-1's alarm fired: {out}"
    );
    assert_eq!(
        out["eu_west_1_saw_during_the_cut"]["reachable"], false,
        "{out}"
    );
    let refused = out["partial_partition"]["examples"].to_string();
    assert!(refused.contains("partial partition"), "{refused}");
    // The application in ap-southeast-1 kept writing to us-east-1 through the cut.
    assert!(
        out["partial_partition"]["acks_during"].as_u64().unwrap() > 0,
        "{out}"
    );
    assert_eq!(out["ok"], true, "{out}");
}
