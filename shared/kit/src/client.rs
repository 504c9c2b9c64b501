//! What every custos gRPC client adds to its calls: the W3C trace context of the current
//! span and, when it has one, a bearer token.

use tonic::{Request, Status, metadata::MetadataValue, service::Interceptor};

use crate::propagation::TraceInterceptor;

#[derive(Debug, Clone, Default)]
pub struct ClientInterceptor {
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl ClientInterceptor {
    /// Calls without a token (anonymous reporting, health).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Calls with `Authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Result<Self, String> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token contains characters not allowed in a header".to_owned())?;
        Ok(Self {
            authorization: Some(value),
        })
    }
}

impl Interceptor for ClientInterceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let mut request = TraceInterceptor.call(request)?;
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}
