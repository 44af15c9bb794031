//! cutover-core's PostgreSQL connections against the world's real servers, over TLS.

#![allow(clippy::unwrap_used)]

use cutover_core::config::SslMode;
use cutover_core::db::{self, DbAccess, Tls};
use cutover_core::ErrorKind;
use cutover_rehearsal::world::{Node, World};

async fn access(world: &World) -> (DbAccess, aws_sdk_ssm::Client) {
    let settings = world.core_settings().unwrap();
    let aws = world.aws().await.unwrap();
    let ssm = aws.ssm();
    (
        DbAccess::load(&settings.db, &ssm, "lag-probe")
            .await
            .unwrap(),
        ssm,
    )
}

#[tokio::test]
async fn connects_with_verify_full_and_credentials_from_ssm() {
    let world = World::load().expect("the local world is up");
    let (access, ssm) = access(&world).await;
    assert_eq!(access.tls.mode(), SslMode::VerifyFull);
    let writer = access.writer_endpoint(&ssm).await.unwrap();
    let client = access
        .connect(&access.target("us-east-1", writer))
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the session is encrypted");
    assert!(row.get::<_, String>(1).starts_with("TLSv1."));

    for region in ["eu-west-1", "ap-southeast-1"] {
        let reader = access.reader_endpoint(&ssm, region).await.unwrap();
        let client = access
            .connect(&access.target(region, reader))
            .await
            .unwrap();
        let in_recovery: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(in_recovery, "{region} is a standby");
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let world = World::load().expect("the local world is up");
    let other = std::fs::read(world.get("CUTOVER_TLS_OTHER_CA").unwrap()).unwrap();
    let tls = Tls::from_pem(&other, SslMode::VerifyFull).unwrap();
    let target = world.admin_target(Node::UsEast1).unwrap();
    let err = db::connect(
        &target,
        &world.admin_password().unwrap(),
        &tls,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert_eq!(
        err.kind(),
        ErrorKind::Fatal,
        "TLS failures are not retried: {text}"
    );
    assert!(!text.contains(world.admin_password().unwrap().expose()));
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_under_verify_full() {
    let world = World::load().expect("the local world is up");
    let mut target = world.admin_target(Node::UsEast1).unwrap();
    // Same server, reached under a name its certificate does not carry.
    target.endpoint.host = "db.wrong-name.example".into();
    target.hostaddr = Some("127.0.0.1".parse().unwrap());
    let password = world.admin_password().unwrap();
    let tls = world.tls(SslMode::VerifyFull).unwrap();
    let err = db::connect(&target, &password, &tls, std::time::Duration::from_secs(5))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("NotValidForName") || text.to_lowercase().contains("name"),
        "{text}"
    );

    // verify-ca accepts the same server: the chain is right, only the name differs.
    let tls = world.tls(SslMode::VerifyCa).unwrap();
    let client = db::connect(&target, &password, &tls, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn wrong_password_is_not_retried_and_not_echoed() {
    let world = World::load().expect("the local world is up");
    let target = world.admin_target(Node::UsEast1).unwrap();
    let tls = world.tls(SslMode::VerifyFull).unwrap();
    let wrong = db::Password::new("definitely-wrong-password");
    let err = db::connect(&target, &wrong, &tls, std::time::Duration::from_secs(5))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{text}");
    assert!(!text.contains("definitely-wrong-password"));
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error() {
    let world = World::load().expect("the local world is up");
    let mut target = world.admin_target(Node::UsEast1).unwrap();
    target.endpoint.port = 1; // nothing listens there
    let tls = world.tls(SslMode::VerifyFull).unwrap();
    let err = db::connect(
        &target,
        &world.admin_password().unwrap(),
        &tls,
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Retryable, "{err}");
}
