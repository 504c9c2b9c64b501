//! The server's limit on how long a call may run (`server.request_timeout_secs`), except
//! on the paths a service declares long-running (client-streaming uploads of any size):
//! those end only when the client's own `grpc-timeout`, which tonic enforces on every
//! call, says so. A call past the limit ends with DEADLINE_EXCEEDED.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    limit: Duration,
    exempt: Arc<[&'static str]>,
    domain: &'static str,
}

impl DeadlineLayer {
    pub fn new(limit: Duration, exempt: &[&'static str], domain: &'static str) -> Self {
        Self {
            limit,
            exempt: exempt.into(),
            domain,
        }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Deadline<S>
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
        let exempt = self.layer.exempt.contains(&request.uri().path());
        let future = self.inner.call(request);
        if exempt {
            return Box::pin(future);
        }
        let limit = self.layer.limit;
        let domain = self.layer.domain;
        Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(response) => response,
                Err(_) => {
                    let status = crate::error::status(
                        tonic::Code::DeadlineExceeded,
                        format!(
                            "the call ran longer than the server allows ({} s, server.request_timeout_secs)",
                            limit.as_secs()
                        ),
                        "DEADLINE_EXCEEDED",
                        domain,
                    );
                    Ok(status.into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, ServiceExt};

    use super::*;

    type Reply =
        Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

    /// A handler that answers after `delay`.
    fn slow(
        delay: Duration,
    ) -> impl tower::Service<
        http::Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = Infallible,
        Future = Reply,
    > + Clone {
        tower::service_fn(move |_req: http::Request<()>| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(http::Response::new(tonic::body::Body::empty()))
            }) as Reply
        })
    }

    fn grpc_status(r: &http::Response<tonic::body::Body>) -> Option<String> {
        r.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn calls_past_the_limit_end_but_long_running_ones_do_not() {
        let layer = DeadlineLayer::new(Duration::from_secs(30), &["/pkg.S/Upload"], "test.custos");
        let call = |path: &str| http::Request::builder().uri(path).body(()).unwrap();

        let over = layer
            .layer(slow(Duration::from_secs(31)))
            .oneshot(call("/pkg.S/Get"))
            .await
            .unwrap();
        assert_eq!(
            grpc_status(&over).as_deref(),
            Some("4"),
            "DEADLINE_EXCEEDED"
        );

        let within = layer
            .layer(slow(Duration::from_secs(29)))
            .oneshot(call("/pkg.S/Get"))
            .await
            .unwrap();
        assert_eq!(grpc_status(&within), None);

        let upload = layer
            .layer(slow(Duration::from_secs(3_600)))
            .oneshot(call("/pkg.S/Upload"))
            .await
            .unwrap();
        assert_eq!(grpc_status(&upload), None, "a long-running call is not cut");
    }
}
