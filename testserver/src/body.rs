//! A response body adapter that adds entries to the trailers frame (and can cut its messages
//! short, for tests of a client's framing checks).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// Extra trailers a handler wants sent after an OK response, carried from the
/// handler to [`WithTrailers`] as an extension of the response. An entry replaces the
/// server's own of that name (`grpc-message`, say).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtraTrailers(pub(crate) HeaderMap);

/// Bytes to cut from the end of every data frame of an OK response (a unary response has one
/// frame: its message), carried like [`ExtraTrailers`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Truncate(pub(crate) usize);

/// Wraps tonic's response body and merges extra entries into its trailers
/// frame (tonic itself puts a response's metadata in the headers only).
#[derive(Debug)]
pub(crate) struct WithTrailers {
    inner: tonic::body::Body,
    extra: Option<HeaderMap>,
    truncate: usize,
}

impl WithTrailers {
    /// Wraps `inner`, adding `extra` to the trailers frame it ends with, if any.
    pub(crate) fn new(inner: tonic::body::Body, extra: Option<HeaderMap>) -> Self {
        Self {
            inner,
            extra,
            truncate: 0,
        }
    }

    /// Cuts `bytes` from the end of every data frame.
    pub(crate) fn truncating(mut self, bytes: usize) -> Self {
        self.truncate = bytes;
        self
    }
}

impl Body for WithTrailers {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    if let Some(extra) = this.extra.take() {
                        trailers.extend(extra);
                    }
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Err(frame) => match frame.into_data() {
                    Ok(mut data) if this.truncate > 0 => {
                        data.truncate(data.len().saturating_sub(this.truncate));
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                    Err(frame) => Poll::Ready(Some(Ok(frame))),
                },
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
