//! Smoke tests of the test server, driven by a plain tonic client.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use grpcpool_testserver::{BytesCodec, ServerOptions, ServerTls, TestCa, TestServer, UNARY_PATH};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::client::Grpc;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};
use tonic::{Code, Request, Status};

/// What a client saw of one call: headers, message, trailers.
#[derive(Debug)]
struct Reply {
    headers: MetadataMap,
    message: Bytes,
    trailers: MetadataMap,
}

async fn connect(target: &str) -> Channel {
    Endpoint::from_shared(target.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Calls `path` with `body`; `metadata` keys ending in `-bin` take raw bytes.
async fn call(
    channel: &Channel,
    path: &str,
    body: &'static [u8],
    metadata: &[(&'static str, &'static [u8])],
) -> Result<Reply, Status> {
    let mut grpc = Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = Request::new(Bytes::from_static(body));
    for &(key, value) in metadata {
        if key.ends_with("-bin") {
            request
                .metadata_mut()
                .append_bin(key, MetadataValue::from_bytes(value));
        } else {
            request
                .metadata_mut()
                .append(key, MetadataValue::try_from(value).unwrap());
        }
    }
    // A server-streaming call is a unary call on the wire, but its response
    // lets headers and trailers be read apart.
    let response = grpc
        .server_streaming(request, path.parse().unwrap(), BytesCodec)
        .await?;
    let (headers, mut streaming, _) = response.into_parts();
    let message = streaming.message().await?.expect("a response message");
    assert!(streaming.message().await?.is_none(), "one message only");
    let trailers = streaming.trailers().await?.expect("trailers");
    Ok(Reply {
        headers,
        message,
        trailers,
    })
}

#[tokio::test]
async fn echo_round_trip_with_headers_and_trailers() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    assert!(server.target().starts_with("http://127.0.0.1:"));
    assert_eq!(server.port(), server.local_addr().unwrap().port());
    let channel = connect(&server.target()).await;

    let reply = call(
        &channel,
        UNARY_PATH,
        b"hello",
        &[("x-echo-a", b"1"), ("x-trailer-b-bin", b"\x00\xffbin")],
    )
    .await
    .unwrap();

    assert_eq!(reply.message, Bytes::from_static(b"hello"));
    assert_eq!(reply.headers.get("x-echo-a").unwrap(), "1");
    assert!(reply.headers.get_bin("x-trailer-b-bin").is_none());
    assert_eq!(
        reply
            .trailers
            .get_bin("x-trailer-b-bin")
            .unwrap()
            .to_bytes()
            .unwrap(),
        Bytes::from_static(b"\x00\xffbin")
    );
    assert!(reply.trailers.get("x-echo-a").is_none());

    let empty = call(&channel, UNARY_PATH, b"", &[]).await.unwrap();
    assert!(empty.message.is_empty());
    assert_eq!(server.calls_handled(), 2);
    assert_eq!(server.connections_accepted(), 1);
    assert_eq!(server.connections_open(), 1);
    assert_eq!(server.calls_per_connection(), vec![2]);
}

#[tokio::test]
async fn status_with_message_and_details() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let channel = connect(&server.target()).await;

    let status = call(
        &channel,
        UNARY_PATH,
        b"ignored",
        &[
            ("x-status-code", b"9"),
            ("x-status-message", "précondition ✓ 100%".as_bytes()),
            ("x-status-details-bin", b"\x01\x02details"),
            ("x-echo-h", b"head"),
            ("x-trailer-t", b"tail"),
        ],
    )
    .await
    .unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "précondition ✓ 100%");
    assert_eq!(status.details(), b"\x01\x02details");
    // Trailers-only: both kinds arrive in the one header block.
    assert_eq!(status.metadata().get("x-echo-h").unwrap(), "head");
    assert_eq!(status.metadata().get("x-trailer-t").unwrap(), "tail");
    assert_eq!(server.calls_handled(), 1);

    let bad = call(&channel, UNARY_PATH, b"", &[("x-status-code", b"99")])
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn unknown_method_is_unimplemented() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let channel = connect(&server.target()).await;

    let status = call(&channel, "/grpcpool.test.Echo/Nope", b"x", &[])
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(server.calls_handled(), 0);
}

#[tokio::test]
async fn sleep_delays_the_answer() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let channel = connect(&server.target()).await;

    let started = std::time::Instant::now();
    call(&channel, UNARY_PATH, b"z", &[("x-sleep-ms", b"200")])
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn max_concurrent_streams_queues_extra_calls() {
    let server = TestServer::start(ServerOptions {
        max_concurrent_streams: Some(1),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let channel = connect(&server.target()).await;
    // Until the server's SETTINGS arrive the client does not know the limit.
    call(&channel, UNARY_PATH, b"warm-up", &[]).await.unwrap();

    let started = std::time::Instant::now();
    let slow = [("x-sleep-ms", b"200" as &'static [u8])];
    let (a, b) = tokio::join!(
        call(&channel, UNARY_PATH, b"a", &slow),
        call(&channel, UNARY_PATH, b"b", &slow)
    );
    a.unwrap();
    b.unwrap();
    // One stream at a time: the second call waited for the first.
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(server.calls_per_connection(), vec![3]);
}

fn tls_server_options(ca: &TestCa, client_ca: bool) -> ServerOptions {
    let (cert_pem, key_pem) = ca.server_cert(&["localhost", "127.0.0.1"]).unwrap();
    ServerOptions {
        tls: Some(ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem: client_ca.then(|| ca.ca_pem()),
        }),
        ..ServerOptions::default()
    }
}

async fn connect_tls(
    target: &str,
    tls: ClientTlsConfig,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(target.to_string())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

#[tokio::test]
async fn tls_with_test_ca_root() {
    let ca = TestCa::new().unwrap();
    let server = TestServer::start(tls_server_options(&ca, false))
        .await
        .unwrap();
    assert!(server.target().starts_with("https://localhost:"));

    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.ca_pem()));
    let channel = connect_tls(&server.target(), tls).await.unwrap();
    let reply = call(&channel, UNARY_PATH, b"secret", &[]).await.unwrap();
    assert_eq!(reply.message, Bytes::from_static(b"secret"));

    // The IP address SAN works too.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.ca_pem()))
        .domain_name("127.0.0.1");
    let target = format!("https://127.0.0.1:{}", server.port());
    let channel = connect_tls(&target, tls).await.unwrap();
    call(&channel, UNARY_PATH, b"ip", &[]).await.unwrap();
}

#[tokio::test]
async fn mutual_tls_requires_a_client_cert() {
    let ca = TestCa::new().unwrap();
    let server = TestServer::start(tls_server_options(&ca, true))
        .await
        .unwrap();
    let (cert, key) = ca.client_cert("grpcpool test client").unwrap();

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.ca_pem()))
        .identity(Identity::from_pem(cert, key));
    let channel = connect_tls(&server.target(), tls).await.unwrap();
    call(&channel, UNARY_PATH, b"mtls", &[]).await.unwrap();

    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.ca_pem()));
    let refused = match connect_tls(&server.target(), tls).await {
        Err(_) => true,
        Ok(channel) => call(&channel, UNARY_PATH, b"anon", &[]).await.is_err(),
    };
    assert!(refused, "a client without a certificate got through");
    assert_eq!(server.calls_handled(), 1);
}

#[tokio::test]
async fn kill_then_restart_on_the_same_port() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let port = server.port();
    let channel = connect(&server.target()).await;
    call(&channel, UNARY_PATH, b"before", &[]).await.unwrap();

    // A call in flight fails at once when the server is killed.
    let slow_channel = channel.clone();
    let in_flight = tokio::spawn(async move {
        call(
            &slow_channel,
            UNARY_PATH,
            b"slow",
            &[("x-sleep-ms", b"5000")],
        )
        .await
    });
    while server.calls_handled() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().await;
    let failed = tokio::time::timeout(Duration::from_secs(2), in_flight)
        .await
        .expect("the in-flight call ended")
        .unwrap();
    assert!(failed.is_err());

    let server = TestServer::start(ServerOptions {
        port,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(server.port(), port);
    let channel = connect(&server.target()).await;
    let reply = call(&channel, UNARY_PATH, b"after", &[]).await.unwrap();
    assert_eq!(reply.message, Bytes::from_static(b"after"));
    assert_eq!(server.connections_accepted(), 1);
}

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish() {
    let server = TestServer::start(ServerOptions::default()).await.unwrap();
    let channel = connect(&server.target()).await;
    let in_flight = tokio::spawn(async move {
        call(&channel, UNARY_PATH, b"drain", &[("x-sleep-ms", b"300")]).await
    });
    while server.calls_handled() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    server.shutdown().await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    let reply = in_flight.await.unwrap().unwrap();
    assert_eq!(reply.message, Bytes::from_static(b"drain"));
}

#[tokio::test]
async fn max_connection_age_recycles_connections() {
    let server = TestServer::start(ServerOptions {
        max_connection_age: Some(Duration::from_millis(200)),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let channel = connect(&server.target()).await;

    for _ in 0..3 {
        call(&channel, UNARY_PATH, b"age", &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
    }

    assert!(
        server.connections_accepted() >= 3,
        "accepted {}",
        server.connections_accepted()
    );
    assert_eq!(server.calls_handled(), 3);
    assert_eq!(server.calls_per_connection().iter().sum::<u64>(), 3);
}

/// Dials one unix socket whatever the URI says.
#[derive(Clone)]
struct UnixConnector(PathBuf);

impl tower_service::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(path).await?)) })
    }
}

#[tokio::test]
async fn unix_socket() {
    let path =
        std::env::temp_dir().join(format!("grpcpool-testserver-{}.sock", std::process::id()));
    let server = TestServer::start(ServerOptions {
        unix_path: Some(path.clone()),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(server.target(), format!("unix:{}", path.display()));
    assert_eq!(server.port(), 0);
    assert!(server.local_addr().is_none());

    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(UnixConnector(path.clone()))
        .await
        .unwrap();
    let reply = call(&channel, UNARY_PATH, b"unix", &[]).await.unwrap();
    assert_eq!(reply.message, Bytes::from_static(b"unix"));
    assert_eq!(server.connections_accepted(), 1);

    server.kill().await;
    assert!(!path.exists());
}
