//! The auth matrix: no token, expired, wrong issuer, wrong audience, bad signature,
//! wrong role, right role.

use custos_kit::auth::{Role, TokenMinter};
use custos_proto::intake::v1::{self as pb, intake_service_client::IntakeServiceClient};
use custos_testing::{Backend, on_both_backends};
use tonic::Code;

use crate::common::*;

fn claims(overrides: serde_json::Value) -> serde_json::Value {
    let now = jsonwebtoken_now();
    let mut base = serde_json::json!({
        "sub": "desk", "iss": "custos", "aud": "custos", "exp": now + 600, "roles": ["helpdesk"],
    });
    for (k, v) in overrides.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn jsonwebtoken_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn the_auth_matrix(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let list = |token: Option<String>| {
        let channel = match &token {
            Some(t) => custos_testing::with_token(intake.addr(), t),
            None => custos_testing::anonymous(intake.addr()),
        };
        async move {
            IntakeServiceClient::new(channel)
                .list_overdue_provider_reports(pb::ListOverdueProviderReportsRequest::default())
                .await
        }
    };
    let minter = custos_testing::minter();
    let foreign = TokenMinter::from_config(&custos_kit::config::AuthConfig {
        hs256_secret: Some("another-secret-0123456789abcdef0123".into()),
        ..custos_testing::auth_config()
    })
    .unwrap();
    let cases = [
        ("no token", None, Code::Unauthenticated),
        (
            "garbage",
            Some("not.a.jwt".to_owned()),
            Code::Unauthenticated,
        ),
        (
            "expired",
            Some(minter.mint_claims(claims(
                serde_json::json!({"exp": jsonwebtoken_now() - 3600}),
            ))),
            Code::Unauthenticated,
        ),
        (
            "wrong issuer",
            Some(minter.mint_claims(claims(serde_json::json!({"iss": "evil"})))),
            Code::Unauthenticated,
        ),
        (
            "wrong audience",
            Some(minter.mint_claims(claims(serde_json::json!({"aud": "other-app"})))),
            Code::Unauthenticated,
        ),
        (
            "bad signature",
            Some(foreign.mint_claims(claims(serde_json::json!({})))),
            Code::Unauthenticated,
        ),
        (
            "no subject",
            Some(minter.mint_claims(claims(serde_json::json!({"sub": ""})))),
            Code::Unauthenticated,
        ),
        (
            "wrong role",
            Some(custos_testing::token("bob", &[Role::Reporter])),
            Code::PermissionDenied,
        ),
        (
            "no roles",
            Some(minter.mint_claims(claims(serde_json::json!({"roles": []})))),
            Code::PermissionDenied,
        ),
        (
            "right role",
            Some(custos_testing::token("desk", &[Role::Helpdesk])),
            Code::Ok,
        ),
    ];
    for (case, token, expected) in cases {
        let code = match list(token).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        assert_eq!(code, expected, "{case}");
    }
}

async fn health_and_reflection_need_no_token(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(custos_testing::channel(intake.addr()));
    let response = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "custos.intake.v1.IntakeService".into(),
        })
        .await;
    assert!(response.is_ok(), "{response:?}");
    // Reflection lists the services without a token (what grpcurl relies on).
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(custos_testing::channel(intake.addr()))
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("a list of services")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"custos.intake.v1.IntakeService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"custos.common.v1.EventFeedService".to_owned()),
        "{names:?}"
    );
    // The feed needs a service token.
    let mut feed = custos_proto::common::v1::event_feed_service_client::EventFeedServiceClient::new(
        custos_testing::authed(intake.addr(), "someone", &[Role::Reporter]),
    );
    let err = feed
        .subscribe(custos_proto::common::v1::SubscribeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

on_both_backends!(the_auth_matrix, health_and_reflection_need_no_token);
