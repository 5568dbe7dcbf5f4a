//! The standard health service (`grpc.health.v1.Health`, `Watch`), on a server started with
//! [`ServerOptions::health`](crate::ServerOptions::health): every service is SERVING until a
//! test says otherwise with [`TestServer::set_serving`](crate::TestServer::set_serving). A
//! server without it answers the health methods UNIMPLEMENTED, as a server with no health
//! service does.

use std::collections::HashMap;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use prost::Message as _;
use tokio::sync::watch;
use tonic::server::ServerStreamingService;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// Path of the health service's `Watch` method.
pub const HEALTH_WATCH_PATH: &str = "/grpc.health.v1.Health/Watch";

type Answers = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send + 'static>>;

/// The serving status of each service a test changed; any other is SERVING.
#[derive(Debug)]
pub(crate) struct HealthStates {
    statuses: watch::Sender<HashMap<String, bool>>,
}

impl HealthStates {
    pub(crate) fn new() -> HealthStates {
        HealthStates {
            statuses: watch::channel(HashMap::new()).0,
        }
    }

    /// Sets `service` SERVING or NOT_SERVING; every watch of it hears at once.
    pub(crate) fn set(&self, service: &str, serving: bool) {
        self.statuses.send_modify(|statuses| {
            statuses.insert(service.to_owned(), serving);
        });
    }
}

/// `Watch`: the service's status now, then again at every change, until the client ends it.
#[derive(Debug, Clone)]
pub(crate) struct HealthWatch(pub(crate) std::sync::Arc<HealthStates>);

impl ServerStreamingService<Bytes> for HealthWatch {
    type Response = Bytes;
    type ResponseStream = Answers;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Response<Answers>, Status>> + Send>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = self.0.statuses.subscribe();
        Box::pin(async move {
            let service = HealthCheckRequest::decode(request.into_inner())
                .map_err(|error| Status::invalid_argument(error.to_string()))?
                .service;
            // The status now, then again at each change; `last` is what was sent last (none
            // before the first answer).
            let answers = futures_util::stream::unfold(
                (receiver, None),
                move |(mut receiver, last): (_, Option<bool>)| {
                    let service = service.clone();
                    async move {
                        loop {
                            if last.is_some() && receiver.changed().await.is_err() {
                                return None;
                            }
                            let serving = receiver
                                .borrow_and_update()
                                .get(&service)
                                .copied()
                                .unwrap_or(true);
                            if last == Some(serving) {
                                continue;
                            }
                            let status = if serving {
                                ServingStatus::Serving
                            } else {
                                ServingStatus::NotServing
                            };
                            let answer = HealthCheckResponse {
                                status: status as i32,
                            }
                            .encode_to_vec();
                            return Some((Ok(Bytes::from(answer)), (receiver, Some(serving))));
                        }
                    }
                },
            );
            Ok(Response::new(Box::pin(answers) as Answers))
        })
    }
}
