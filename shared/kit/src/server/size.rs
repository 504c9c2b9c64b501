//! The request message size limit, enforced on the gRPC frames as they arrive so that an
//! oversized message is refused with RESOURCE_EXHAUSTED (what gRPC specifies for it)
//! before it is buffered; tonic's own check would answer OUT_OF_RANGE.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};

#[derive(Debug, Clone, Copy)]
pub struct MessageSizeLayer {
    max: usize,
    domain: &'static str,
}

impl MessageSizeLayer {
    pub fn new(max: usize, domain: &'static str) -> Self {
        Self { max, domain }
    }
}

impl<S> tower::Layer<S> for MessageSizeLayer {
    type Service = MessageSize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageSize {
            inner,
            layer: *self,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MessageSize<S> {
    inner: S,
    layer: MessageSizeLayer,
}

impl<S, B> tower::Service<http::Request<B>> for MessageSize<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let body = tonic::body::Body::new(Limited {
            inner: body,
            max: self.layer.max,
            domain: self.layer.domain,
            header: Vec::with_capacity(5),
            remaining: 0,
        });
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

pin_project_lite::pin_project! {
    /// A request body that fails as soon as a gRPC frame header announces a message
    /// larger than `max`.
    struct Limited<B> {
        #[pin]
        inner: B,
        max: usize,
        domain: &'static str,
        // The frame header read so far (flag and four length bytes).
        header: Vec<u8>,
        // Bytes of the current message still to come.
        remaining: usize,
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = match ready!(this.inner.poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let mut data = data.clone();
            while data.has_remaining() {
                if *this.remaining > 0 {
                    let skip = (*this.remaining).min(data.remaining());
                    data.advance(skip);
                    *this.remaining -= skip;
                    continue;
                }
                this.header.push(data.get_u8());
                if this.header.len() == 5 {
                    let len = u32::from_be_bytes(
                        this.header[1..5].try_into().expect("four length bytes"),
                    ) as usize;
                    this.header.clear();
                    if len > *this.max {
                        let status = crate::error::status(
                            tonic::Code::ResourceExhausted,
                            format!(
                                "the request message is {len} bytes, more than this \
                                 service's limit of {} (server.max_message_bytes)",
                                this.max
                            ),
                            "MESSAGE_TOO_LARGE",
                            this.domain,
                        );
                        return Poll::Ready(Some(Err(Box::new(status))));
                    }
                    *this.remaining = len;
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
