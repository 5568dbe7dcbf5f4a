#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic on a broken premise.
//! The xDS bootstrap from the environment (gRPC A27): the file `GRPC_XDS_BOOTSTRAP` names,
//! else the JSON in `GRPC_XDS_BOOTSTRAP_CONFIG`; neither, and an `xds:///` target is a
//! configuration error. A test binary of its own, since it changes the process's environment.

#[path = "support/control_plane.rs"]
mod control_plane;
mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use control_plane::{cluster, endpoint, route, snapshot, ControlPlane};
use grpcpool_core::{Code, Metadata, Pool};
use grpcpool_testserver::{ServerOptions, TestServer};
use serde_json::json;
use support::{echo, quick_config};

const TARGET: &str = "xds:///svc";

async fn calls(pool: &Arc<Pool>, count: usize) -> Vec<Code> {
    let mut codes = Vec::new();
    for _ in 0..count {
        codes.push(
            echo(pool, TARGET, b"x", Metadata::new(), Duration::from_secs(5))
                .await
                .code,
        );
    }
    codes
}

fn all_ok(codes: &[Code]) {
    assert!(codes.iter().all(|code| *code == Code::Ok), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_comes_from_grpc_xds_bootstrap_then_grpc_xds_bootstrap_config() {
    let one = TestServer::start(ServerOptions {
        ip: Some(Ipv4Addr::new(127, 0, 0, 1)),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let mut plane = ControlPlane::start();
    plane.set(&snapshot(
        "1",
        json!([route("", &[("backends", 1)])]),
        json!([cluster(
            "backends",
            vec![endpoint(one.local_addr().unwrap(), 1)]
        )]),
    ));
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xds-bootstrap-{}.json", plane.port()));
    std::fs::write(&file, plane.bootstrap()).unwrap();
    // Alone in this test binary: no other thread reads the environment meanwhile.
    std::env::remove_var("GRPC_XDS_BOOTSTRAP_CONFIG");
    std::env::set_var("GRPC_XDS_BOOTSTRAP", &file);
    let pool = Arc::new(Pool::new(quick_config()).unwrap());
    all_ok(&calls(&pool, 10).await);
    assert_eq!(one.calls_handled(), 10);
    std::env::remove_var("GRPC_XDS_BOOTSTRAP");

    // The JSON itself in GRPC_XDS_BOOTSTRAP_CONFIG.
    std::env::set_var("GRPC_XDS_BOOTSTRAP_CONFIG", plane.bootstrap());
    let pool = Arc::new(Pool::new(quick_config()).unwrap());
    all_ok(&calls(&pool, 10).await);
    assert_eq!(one.calls_handled(), 20);
    std::env::remove_var("GRPC_XDS_BOOTSTRAP_CONFIG");

    // Without any bootstrap an xds:/// target is a configuration error.
    let pool = Arc::new(Pool::new(quick_config()).unwrap());
    let error = pool
        .unary(
            TARGET,
            grpcpool_testserver::UNARY_PATH,
            b"x".to_vec(),
            grpcpool_core::CallOptions::with_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("GRPC_XDS_BOOTSTRAP"), "{error}");
}
