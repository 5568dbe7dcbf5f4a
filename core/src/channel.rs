//! The layer under tonic's `Grpc` client: requests go straight onto one h2 connection.
//!
//! tonic's own `Channel` adds a buffer task per connection; owning the connection, the pool can
//! skip it (see DESIGN.md). This service fills in scheme and authority, opens the stream, sends
//! the request body under HTTP/2 flow control and hands back the response body.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use tokio::runtime::Handle;

use crate::body::{CancelSignal, RequestPump, ResponseBody};
use crate::Code;

/// Sends gRPC requests on one HTTP/2 connection.
#[derive(Clone)]
pub(crate) struct H2Channel {
    pub(crate) send: h2::client::SendRequest<Bytes>,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// Where a request body still being sent when the response arrives keeps going.
    pub(crate) runtime: Handle,
}

/// Why a stream failed before a response began: the deciding fact for transparent retry.
#[derive(Debug, Clone)]
pub(crate) struct StreamError {
    /// True when the server never processed the request: the connection refused the stream,
    /// or it was above a GOAWAY's last stream id. Such a call may be retried elsewhere.
    pub(crate) unprocessed: bool,
    /// True when the request never left the client (the stream could not even be opened).
    pub(crate) never_sent: bool,
    /// True when the connection itself is going away (GOAWAY seen or closed).
    pub(crate) connection_lost: bool,
    /// True when the peer's GOAWAY said ENHANCE_YOUR_CALM (`too_many_pings`).
    pub(crate) calm_down: bool,
    pub(crate) code: Code,
    pub(crate) message: String,
}

impl StreamError {
    pub(crate) fn from_h2(error: &h2::Error, before_send: bool) -> StreamError {
        let remote_go_away = error.is_go_away() && error.is_remote();
        let refused = error.reason() == Some(h2::Reason::REFUSED_STREAM);
        let code = if error.is_io() || error.is_go_away() || before_send {
            Code::Unavailable
        } else {
            error.reason().map(Code::from).unwrap_or(Code::Unavailable)
        };
        StreamError {
            unprocessed: before_send || refused || remote_go_away,
            never_sent: before_send,
            connection_lost: before_send || error.is_io() || error.is_go_away(),
            calm_down: remote_go_away && error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM),
            code,
            message: error.to_string(),
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// No `source`: tonic would otherwise translate the inner h2 error itself and drop this one.
impl std::error::Error for StreamError {}

impl tower_service::Service<Request<tonic::body::Body>> for H2Channel {
    type Response = Response<ResponseBody>;
    type Error = StreamError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.send
            .poll_ready(cx)
            .map_err(|error| StreamError::from_h2(&error, true))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> ResponseFuture {
        let (mut parts, body) = request.into_parts();
        let cancel = parts.extensions.remove::<CancelSignal>();
        let mut uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone());
        if let Some(path) = parts.uri.path_and_query() {
            uri = uri.path_and_query(path.clone());
        }
        match uri.build() {
            Ok(uri) => parts.uri = uri,
            Err(error) => {
                return ResponseFuture::failed(StreamError {
                    unprocessed: false,
                    never_sent: false,
                    connection_lost: false,
                    calm_down: false,
                    code: Code::Internal,
                    message: format!("building the request URI: {error}"),
                })
            }
        }
        match self
            .send
            .send_request(Request::from_parts(parts, ()), false)
        {
            Ok((response, stream)) => ResponseFuture {
                state: State::Sending {
                    response,
                    pump: Some(RequestPump::new(body, stream, cancel.clone())),
                    cancel,
                    runtime: self.runtime.clone(),
                },
            },
            Err(error) => ResponseFuture::failed(StreamError::from_h2(&error, true)),
        }
    }
}

/// Resolves to the response head once the server answers, sending the request body meanwhile.
pub(crate) struct ResponseFuture {
    state: State,
}

enum State {
    Sending {
        response: h2::client::ResponseFuture,
        pump: Option<RequestPump>,
        /// The caller's cancel, watched while the head is awaited: once the request is all
        /// sent the pump is gone, and only dropping h2's response future (this future's end)
        /// lets h2 reset the stream.
        cancel: Option<CancelSignal>,
        runtime: Handle,
    },
    Failed(Option<StreamError>),
}

impl ResponseFuture {
    fn failed(error: StreamError) -> ResponseFuture {
        ResponseFuture {
            state: State::Failed(Some(error)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, StreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Failed(error) => Poll::Ready(Err(error.take().unwrap_or_else(|| StreamError {
                unprocessed: false,
                never_sent: false,
                connection_lost: false,
                calm_down: false,
                code: Code::Internal,
                message: "response polled after completion".to_owned(),
            }))),
            State::Sending {
                response,
                pump,
                cancel,
                runtime,
            } => {
                if let Some(sending) = pump {
                    if let Poll::Ready(result) = sending.poll(cx) {
                        if let Err(error) = result {
                            tracing::debug!(%error, "request body not fully sent");
                        }
                        *pump = None;
                    }
                }
                if cancel
                    .as_ref()
                    .is_some_and(|cancel| cancel.poll_cancelled(cx))
                {
                    // Ending here drops h2's response future, and with the pump gone no
                    // handle to the stream is left: h2 resets it (CANCEL), so the server
                    // hears of a cancel that came after the caller half-closed.
                    *pump = None;
                    return Poll::Ready(Err(StreamError {
                        unprocessed: false,
                        never_sent: false,
                        connection_lost: false,
                        calm_down: false,
                        code: Code::Cancelled,
                        message: "cancelled by the caller".to_owned(),
                    }));
                }
                let head = ready!(Pin::new(response).poll(cx))
                    .map_err(|error| StreamError::from_h2(&error, false))?;
                if let Some(mut unfinished) = pump.take() {
                    // The server answered before the whole request went out (a streaming
                    // request, or an early status): keep sending in the background.
                    runtime.spawn(std::future::poll_fn(move |cx| {
                        unfinished.poll(cx).map(|result| {
                            if let Err(error) = result {
                                tracing::debug!(%error, "request body not fully sent");
                            }
                        })
                    }));
                }
                let mut head = head;
                // A trailers-only answer carries its status in these headers.
                crate::status_headers::sanitize(head.headers_mut());
                Poll::Ready(Ok(head.map(ResponseBody::new)))
            }
        }
    }
}
