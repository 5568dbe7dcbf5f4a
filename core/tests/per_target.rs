#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! Settings of single targets over the pool's: one pool talking mTLS to two servers whose
//! certificates come from different CAs and name different hosts, a target's own service
//! config and :authority, and per-target settings refused or checked when the pool is made.

mod support;

use std::time::Duration;

use grpcpool_core::{Code, Config, Metadata, Pool, SettingValue};
use grpcpool_testserver::{ServerOptions, ServerTls, TestCa, TestServer, RECEIVED_AUTHORITY_KEY};
use support::{echo, metadata, quick_config};

/// A TLS server with a certificate from `ca` naming only `name`, asking for a client
/// certificate from `ca`.
async fn mtls_server(ca: &TestCa, name: &str) -> TestServer {
    let (cert_pem, key_pem) = ca.server_cert(&[name]).unwrap();
    TestServer::start(ServerOptions {
        tls: Some(ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem: Some(ca.ca_pem()),
        }),
        ..ServerOptions::default()
    })
    .await
    .unwrap()
}

/// Gives `target` its own CA, client certificate and server name.
fn trust_for(config: &mut Config, target: &str, ca: &TestCa, name: &str) {
    let (cert, key) = ca.client_cert("grpcpool-test-client").unwrap();
    config
        .set_for_target(
            target,
            "tls_ca_pem",
            SettingValue::Pem(ca.ca_pem().into_bytes()),
        )
        .unwrap();
    config
        .set_for_target(
            target,
            "tls_client_cert_pem",
            SettingValue::Pem(cert.into_bytes()),
        )
        .unwrap();
    config
        .set_for_target(
            target,
            "tls_client_key_pem",
            SettingValue::Pem(key.into_bytes()),
        )
        .unwrap();
    config
        .set_text_for_target(target, "tls_server_name", name)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pool_speaks_mtls_to_two_servers_with_different_cas_and_names() {
    let (first_ca, second_ca) = (TestCa::new().unwrap(), TestCa::new().unwrap());
    let first = mtls_server(&first_ca, "first.test").await;
    let second = mtls_server(&second_ca, "second.test").await;
    let first_target = format!("https://127.0.0.1:{}", first.port());
    let second_target = format!("https://127.0.0.1:{}", second.port());
    let mut config = quick_config();
    trust_for(&mut config, &first_target, &first_ca, "first.test");
    trust_for(&mut config, &second_target, &second_ca, "second.test");
    let pool = Pool::new(config.clone()).unwrap();
    for target in [&first_target, &second_target] {
        let response = echo(
            &pool,
            target,
            b"hi",
            Metadata::new(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(response.code, Code::Ok, "{target}: {}", response.message);
    }
    assert_eq!((first.calls_handled(), second.calls_handled()), (1, 1));

    // Swapped, each target trusts the other's CA: both handshakes fail.
    let mut swapped = quick_config();
    trust_for(&mut swapped, &first_target, &second_ca, "second.test");
    trust_for(&mut swapped, &second_target, &first_ca, "first.test");
    let swapped = Pool::new(swapped).unwrap();
    for target in [&first_target, &second_target] {
        let response = echo(
            &swapped,
            target,
            b"hi",
            Metadata::new(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(response.code, Code::Unavailable, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_has_its_own_service_config_limits_and_authority() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let own = server.target();
    // The same server under a second name: the pool's settings apply there.
    let shared = format!("http://localhost:{}", server.port());
    let mut config = quick_config();
    config
        .set_text_for_target(
            &own,
            "service_config",
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3,
                "initialBackoff": "0.01s", "maxBackoff": "0.01s", "backoffMultiplier": 1,
                "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
        )
        .unwrap();
    config
        .set_text_for_target(&own, "max_send_message_size", "8")
        .unwrap();
    config
        .set_text_for_target(&own, "authority", "virtual.test:443")
        .unwrap();
    let pool = Pool::new(config).unwrap();
    let failing = metadata(&[("x-status-code", "14"), ("x-fail-attempts", "1")]);
    let retried = echo(
        &pool,
        &own,
        b"1234",
        failing.clone(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        retried.code,
        Code::Ok,
        "the target's retry policy: {}",
        retried.message
    );
    let authority = retried
        .headers
        .get(RECEIVED_AUTHORITY_KEY)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    assert_eq!(authority.as_deref(), Some("virtual.test:443"));
    let elsewhere = echo(&pool, &shared, b"1234", failing, Duration::from_secs(5)).await;
    assert_eq!(
        elsewhere.code,
        Code::Unavailable,
        "no retry policy for the pool"
    );
    // 9 bytes: over the target's own limit of 8, not over the pool's.
    let options = grpcpool_core::CallOptions::with_timeout(Duration::from_secs(5));
    let call = pool
        .prepare(
            grpcpool_testserver::UNARY_PATH,
            b"123456789".to_vec(),
            options,
        )
        .unwrap();
    assert!(matches!(
        pool.unary_prepared(&own, call),
        Err(grpcpool_core::Error::MessageTooLarge { limit: 8, .. })
    ));
    assert_eq!(pool.stats().target(&own).unwrap().retries, 1);
}

#[test]
fn per_target_settings_are_checked() {
    let mut config = Config::default();
    let refused = config.set_text_for_target("http://a:1", "worker_threads", "2");
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("cannot be set per target"));
    assert!(config
        .set_text_for_target("http://a:1", "keepalive_time", "soon")
        .is_err());
    config
        .set_text_for_target("http://a:1", "max_connections_per_target", "0")
        .unwrap();
    let Err(error) = Pool::new(config) else {
        panic!("a target with no connections allowed was accepted");
    };
    let error = error.to_string();
    assert!(
        error.contains("target http://a:1: max_connections_per_target"),
        "{error}"
    );
    let mut config = Config::default();
    config
        .set_text_for_target("http://a:1", "authority", "bad authority")
        .unwrap();
    assert!(Pool::new(config).is_err());
}
