//! Two regions move the writer at the same moment (`cutover_rehearsal::region_loss::race`):
//! the state table's replication is held back, so each region's lease is granted in its
//! own replica and both holders run. The promotion lock the postgres-streaming driver
//! takes on the members, in region order, is what makes one promotion. Each round
//! promotes a standby for real, so the world is rebuilt afresh after each.

#![allow(clippy::unwrap_used)]

use cutover_rehearsal::world::World;

async fn round(world: &World, targets: [&'static str; 2]) -> serde_json::Value {
    let out = cutover_rehearsal::region_loss::race(world, targets, &mut |l| println!("{l}")).await;
    let rebuilt = world.rebuild();
    assert!(
        rebuilt.is_ok(),
        "the world was rebuilt after the round: {rebuilt:?}"
    );
    let out = out.unwrap();
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    // Both holders ran under a lease of their own region.
    for side in out["sides"].as_array().unwrap() {
        assert_ne!(side["action"], "busy", "{out}");
    }
    assert_eq!(out["promotions"], 1, "{out}");
    assert_eq!(out["writers"].as_array().unwrap().len(), 1, "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_regions_switching_over_at_once_promote_one_member() {
    let world = World::load().unwrap();
    // The same target: the second holder finds it promoted under the lock.
    let same = round(&world, ["eu-west-1", "eu-west-1"]).await;
    let sides = same["sides"].as_array().unwrap();
    assert!(
        sides.iter().any(|s| s["found_promoted"] == true),
        "one side found eu-west-1 promoted: {same}"
    );
    assert_eq!(same["writers"], serde_json::json!(["eu-west-1"]), "{same}");
    // Different targets: the second holder finds another member writing and stops.
    let different = round(&world, ["eu-west-1", "ap-southeast-1"]).await;
    let sides = different["sides"].as_array().unwrap();
    assert!(
        sides.iter().any(|s| s["summary"]
            .as_str()
            .is_some_and(|t| t.contains("already writes"))),
        "one side refused to make a second writer: {different}"
    );
}
