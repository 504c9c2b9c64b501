//! Load shedding: past `server.max_concurrent_requests` calls in flight, a new call is
//! refused at once with RESOURCE_EXHAUSTED (and a RetryInfo) instead of queueing. Health
//! checks are never shed: under load every replica would report itself unready at once
//! and the load balancer would be left with none.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct InFlightLimitLayer {
    permits: Arc<Semaphore>,
    domain: &'static str,
}

impl InFlightLimitLayer {
    pub fn new(max: usize, domain: &'static str) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            domain,
        }
    }
}

impl<S> tower::Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    layer: InFlightLimitLayer,
}

impl<S, B, RB> tower::Service<http::Request<B>> for InFlightLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path().starts_with("/grpc.health.v1.Health/") {
            return Box::pin(self.inner.call(request));
        }
        let Ok(permit) = self.layer.permits.clone().try_acquire_owned() else {
            let status = crate::error::status(
                tonic::Code::ResourceExhausted,
                "the service is at its limit of calls in flight \
                 (server.max_concurrent_requests); retry with backoff",
                "OVERLOADED",
                self.layer.domain,
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            drop(permit);
            response
        })
    }
}
