//! A response body adapter that adds entries to the trailers frame.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// Extra trailers a handler wants sent after an OK response, carried from the
/// handler to [`WithTrailers`] as an extension of the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtraTrailers(pub(crate) HeaderMap);

/// Wraps tonic's response body and merges extra entries into its trailers
/// frame (tonic itself puts a response's metadata in the headers only).
#[derive(Debug)]
pub(crate) struct WithTrailers {
    inner: tonic::body::Body,
    extra: Option<HeaderMap>,
}

impl WithTrailers {
    /// Wraps `inner`, adding `extra` to the trailers frame it ends with, if any.
    pub(crate) fn new(inner: tonic::body::Body, extra: Option<HeaderMap>) -> Self {
        Self { inner, extra }
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
                Err(frame) => Poll::Ready(Some(Ok(frame))),
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
