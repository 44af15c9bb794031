//! cutover-core's state store and lease against DynamoDB in moto.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cutover_core::state::{keys, Key, Leases, StateStore};
use cutover_core::{Error, ErrorKind};
use cutover_rehearsal::world::World;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Deployment {
    step: u32,
    blue: u8,
    green: u8,
    status: String,
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn store() -> StateStore {
    let world = World::load().expect("the local world is up");
    let settings = world
        .core_settings()
        .expect("world.env has valid core settings");
    let aws = world.aws().await.expect("moto endpoint");
    StateStore::new(aws.dynamodb(), settings.state_table)
}

#[tokio::test]
async fn create_then_update_at_the_read_version() {
    let store = store().await;
    let key = keys::deployment_current(&unique("svc"));
    let v1 = Deployment {
        step: 0,
        blue: 100,
        green: 0,
        status: "idle".into(),
    };
    assert_eq!(store.create(&key, &v1).await.unwrap(), 1);
    let read = store.get::<Deployment>(&key).await.unwrap().unwrap();
    assert_eq!(read.value, v1);
    assert_eq!(read.version, 1);
    let v2 = Deployment {
        step: 1,
        blue: 90,
        green: 10,
        ..v1
    };
    assert_eq!(store.update(&key, &v2, read.version).await.unwrap(), 2);
    assert_eq!(
        store.get::<Deployment>(&key).await.unwrap().unwrap().value,
        v2
    );
}

#[tokio::test]
async fn stale_version_write_is_a_conflict_and_changes_nothing() {
    let store = store().await;
    let key = keys::deployment_current(&unique("svc"));
    let first = Deployment {
        step: 0,
        blue: 100,
        green: 0,
        status: "idle".into(),
    };
    store.create(&key, &first).await.unwrap();
    let winner = Deployment {
        step: 1,
        blue: 90,
        green: 10,
        status: "shifting".into(),
    };
    store.update(&key, &winner, 1).await.unwrap();

    // A second writer that also read version 1 must lose, clearly.
    let loser = Deployment {
        step: 1,
        blue: 50,
        green: 50,
        status: "shifting".into(),
    };
    let err = store.update(&key, &loser, 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("expected version 1") && text.contains("version 2"),
        "{text}"
    );
    let now = store.get::<Deployment>(&key).await.unwrap().unwrap();
    assert_eq!(now.value, winner);
    assert_eq!(now.version, 2);

    // Creating what already exists is a conflict too.
    let err = store.create(&key, &first).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn concurrent_creates_have_exactly_one_winner() {
    let store = store().await;
    let key = keys::deployment_current(&unique("svc"));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let value = Deployment {
                    step: i,
                    blue: 100,
                    green: 0,
                    status: format!("writer-{i}"),
                };
                store.create(&key, &value).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn history_appends_never_overwrite_and_query_in_order() {
    let store = store().await;
    let service = unique("svc");
    for ts in [
        "2026-11-24T10:00:02Z",
        "2026-11-24T10:00:01Z",
        "2026-11-24T10:00:03Z",
    ] {
        let event = Deployment {
            step: 1,
            blue: 90,
            green: 10,
            status: ts.into(),
        };
        store
            .append(
                &keys::deployment_event(&service, ts),
                &event,
                Some(Duration::from_secs(86400)),
            )
            .await
            .unwrap();
    }
    let dup = Deployment {
        step: 9,
        blue: 0,
        green: 100,
        status: "dup".into(),
    };
    let err = store
        .append(
            &keys::deployment_event(&service, "2026-11-24T10:00:01Z"),
            &dup,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let events = store
        .query_prefix::<Deployment>(&format!("DEPLOYMENT#{service}"), "EVENT#")
        .await
        .unwrap();
    let order: Vec<_> = events.iter().map(|(_, v)| v.value.status.clone()).collect();
    assert_eq!(
        order,
        [
            "2026-11-24T10:00:01Z",
            "2026-11-24T10:00:02Z",
            "2026-11-24T10:00:03Z"
        ]
    );
}

fn lease_key() -> Key {
    Key::new(unique("LEASETEST"), "LEASE")
}

#[tokio::test]
async fn many_racing_tasks_get_exactly_one_lease_holder() {
    let leases = Leases::new(store().await, lease_key());
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let leases = leases.clone();
            tokio::spawn(async move {
                leases
                    .acquire(&format!("holder-{i}"), Duration::from_secs(30))
                    .await
            })
        })
        .collect();
    let mut holders = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(lease) => holders.push(lease),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Fenced, "{e}"),
        }
    }
    assert_eq!(holders.len(), 1, "exactly one holder");
    assert_eq!(holders[0].epoch, 1);
    let stored = leases.current().await.unwrap().unwrap();
    assert_eq!(stored.holder, holders[0].holder);
}

#[tokio::test]
async fn a_live_lease_refuses_others_and_returns_to_its_holder() {
    let leases = Leases::new(store().await, lease_key());
    let a = leases.acquire("a", Duration::from_secs(30)).await.unwrap();
    let err = leases
        .acquire("b", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced);
    assert!(err.to_string().contains("held by a"), "{err}");
    let again = leases.acquire("a", Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.epoch, a.epoch, "the same holder keeps its epoch");
}

#[tokio::test]
async fn expired_lease_is_taken_over_with_a_higher_epoch() {
    let leases = Leases::new(store().await, lease_key());
    let first = leases
        .acquire("dies-mid-way", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(first.epoch, 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let second = leases
        .acquire("successor", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(second.epoch, 2);
    // The old holder can neither renew nor release any more.
    let err = leases
        .renew(&first, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced);
    assert!(err.to_string().contains("epoch 2"), "{err}");
    assert_eq!(
        leases.release(&first).await.unwrap_err().kind(),
        ErrorKind::Fenced
    );
}

#[tokio::test]
async fn renew_extends_and_release_frees_with_epoch_kept() {
    let leases = Leases::new(store().await, lease_key());
    let lease = leases
        .acquire("a", Duration::from_millis(500))
        .await
        .unwrap();
    let renewed = leases.renew(&lease, Duration::from_secs(30)).await.unwrap();
    assert!(renewed.expires_at_ms > lease.expires_at_ms);
    leases.release(&renewed).await.unwrap();
    let next = leases.acquire("b", Duration::from_secs(30)).await.unwrap();
    assert_eq!(next.epoch, 2, "every new holder gets a higher epoch");
}

#[tokio::test]
async fn stale_holders_fenced_write_is_rejected() {
    let store = store().await;
    let leases = Leases::new(store.clone(), lease_key());
    let target = Key::new(unique("FENCED"), "STATE");

    let old = leases
        .acquire("old", Duration::from_millis(300))
        .await
        .unwrap();
    let v1 = Deployment {
        step: 1,
        blue: 100,
        green: 0,
        status: "by-old".into(),
    };
    assert_eq!(store.put_fenced(&old, &target, &v1, None).await.unwrap(), 1);

    tokio::time::sleep(Duration::from_millis(450)).await;
    let new = leases
        .acquire("new", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(new.epoch > old.epoch);
    let v2 = Deployment {
        step: 2,
        blue: 0,
        green: 100,
        status: "by-new".into(),
    };
    assert_eq!(
        store.put_fenced(&new, &target, &v2, Some(1)).await.unwrap(),
        2
    );

    // The stalled holder wakes up and tries to write what it had planned.
    let stale = Deployment {
        step: 2,
        blue: 100,
        green: 0,
        status: "by-old-again".into(),
    };
    let err = store
        .put_fenced(&old, &target, &stale, Some(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(err.to_string().contains("stale"), "{err}");
    let stored = store.get::<Deployment>(&target).await.unwrap().unwrap();
    assert_eq!(stored.value, v2);
    assert_eq!(stored.epoch, Some(new.epoch));

    // The live holder with a stale version gets a conflict, not a fence.
    let err = store
        .put_fenced(&new, &target, &v2, Some(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}

/// What a global table does to a record two regions write at the same epoch
/// (each region's replica granted its own lease): the other region's write is
/// replicated in with its own version. The holder's final write must go over
/// it — a version condition alone would fail the holder after its promotion —
/// while a record of a newer epoch still wins.
#[tokio::test]
async fn a_same_epoch_record_replicated_in_is_written_over_and_a_newer_epoch_is_not() {
    let world = World::load().unwrap();
    let settings = world.core_settings().unwrap();
    let dynamodb = world.aws().await.unwrap().dynamodb();
    let store = StateStore::new(dynamodb.clone(), settings.state_table.clone());
    let leases = Leases::new(store.clone(), lease_key());
    let target = Key::new(unique("REPLICATED"), "STATE");
    let lease = leases
        .acquire("winner", Duration::from_secs(30))
        .await
        .unwrap();
    let first = Deployment {
        step: 1,
        blue: 100,
        green: 0,
        status: "started".into(),
    };
    assert_eq!(
        store
            .put_fenced(&lease, &target, &first, None)
            .await
            .unwrap(),
        1
    );
    let replicate_in = |version: u64, epoch: u64, status: &str| {
        let n = |v: u64| aws_sdk_dynamodb::types::AttributeValue::N(v.to_string());
        let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_string());
        dynamodb
            .put_item()
            .table_name(&settings.state_table)
            .item("pk", s(&target.pk))
            .item("sk", s(&target.sk))
            .item("step", n(1))
            .item("blue", n(100))
            .item("green", n(0))
            .item("status", s(status))
            .item("version", n(version))
            .item("epoch", n(epoch))
            .send()
    };
    replicate_in(1, lease.epoch, "the other region's, same epoch")
        .await
        .unwrap();
    replicate_in(2, lease.epoch, "the other region's, same epoch")
        .await
        .unwrap();
    let done = Deployment {
        step: 2,
        blue: 0,
        green: 100,
        status: "completed".into(),
    };
    let by_version = store.put_fenced(&lease, &target, &done, Some(1)).await;
    assert_eq!(
        by_version.unwrap_err().kind(),
        ErrorKind::Conflict,
        "a version condition alone refuses it"
    );
    assert_eq!(
        store
            .put_fenced_over(&lease, &target, &done, Some(1))
            .await
            .unwrap(),
        3
    );
    let stored = store.get::<Deployment>(&target).await.unwrap().unwrap();
    assert_eq!(
        (stored.value, stored.epoch),
        (done.clone(), Some(lease.epoch))
    );

    replicate_in(7, lease.epoch + 1, "a newer holder's")
        .await
        .unwrap();
    let err = store
        .put_fenced_over(&lease, &target, &done, Some(3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let stored = store.get::<Deployment>(&target).await.unwrap().unwrap();
    assert_eq!(stored.value.status, "a newer holder's");
    assert_eq!(stored.version, 7);
}
