//! Client-side health checking (gRPC A17): on each connection of a target whose service config
//! names `healthCheckConfig.serviceName`, a `grpc.health.v1.Health/Watch` stream for that
//! service. The connection takes calls only while the server says SERVING; NOT_SERVING,
//! UNKNOWN and SERVICE_UNKNOWN stop calls, and so does a watch that failed, until it is
//! opened again after a backoff. A server without the health service (UNIMPLEMENTED) is used
//! as if it said SERVING, with a log line, as gRPC does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use prost::Message as _;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::codec::RawCodec;
use crate::connection::Connection;

const WATCH_PATH: &str = "/grpc.health.v1.Health/Watch";
/// First wait before a failed watch is opened again; doubled up to `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Watches `service`'s health on `connection` until the connection closes; `changed` runs
/// whenever the connection starts or stops taking calls.
pub(crate) async fn watch(connection: Arc<Connection>, service: String, changed: impl Fn()) {
    let request = Bytes::from(
        HealthCheckRequest {
            service: service.clone(),
        }
        .encode_to_vec(),
    );
    let path = PathAndQuery::from_static(WATCH_PATH);
    let mut retry = FIRST_RETRY;
    while !connection.is_closed() {
        let mut grpc = tonic::client::Grpc::new(connection.channel.clone());
        if grpc.ready().await.is_err() {
            // The connection is gone; its driver reports that.
            return;
        }
        let opened = grpc
            .server_streaming(tonic::Request::new(request.clone()), path.clone(), RawCodec)
            .await;
        let mut answers = match opened {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                return unimplemented(&connection, &service, &changed);
            }
            Err(_) => {
                note(&connection, false, &changed);
                retry = wait(retry).await;
                continue;
            }
        };
        loop {
            match answers.message().await {
                Ok(Some(answer)) => {
                    let serving = HealthCheckResponse::decode(answer)
                        .is_ok_and(|answer| answer.status == ServingStatus::Serving as i32);
                    tracing::debug!(address = %connection.address, %service, serving, "health");
                    note(&connection, serving, &changed);
                    retry = FIRST_RETRY;
                }
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    return unimplemented(&connection, &service, &changed);
                }
                // The server ended the watch, or it failed: not serving until it says so.
                Ok(None) | Err(_) => break,
            }
        }
        note(&connection, false, &changed);
        retry = wait(retry).await;
    }
}

fn note(connection: &Connection, serving: bool, changed: &impl Fn()) {
    if connection.set_serving(serving) {
        changed();
    }
}

fn unimplemented(connection: &Connection, service: &str, changed: &impl Fn()) {
    tracing::warn!(
        address = %connection.address,
        %service,
        "the server has no health service (UNIMPLEMENTED); using the connection unchecked"
    );
    note(connection, true, changed);
}

async fn wait(retry: Duration) -> Duration {
    tokio::time::sleep(retry).await;
    (retry * 2).min(MAX_RETRY)
}
