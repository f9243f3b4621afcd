//! OrderService end to end: gRPC client → verifier → PostgreSQL, plus health, reflection,
//! metrics and drain.

mod common;

use iap_proto::v1 as pb;
use iap_proto::v1::order_service_client::OrderServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

use common::{APP, http_get, start};

fn create(user: &str, product: &str, key: &str) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        app_id: APP.into(),
        user_id: user.into(),
        product_id: product.into(),
        platform: pb::Platform::Google.into(),
        quantity: 2,
        expected_price: Some(pb::Money {
            currency_code: "USD".into(),
            amount_micros: 1_990_000,
        }),
        idempotency_key: key.into(),
        metadata: [("server".to_owned(), "eu-1".to_owned())].into(),
    }
}

#[tokio::test]
async fn create_then_get_order_round_trips_through_postgres() {
    let verifier = start().await;
    let mut client = OrderServiceClient::new(verifier.channel.clone());

    let created = client
        .create_order(create("player-1", "gems_100", "k-1"))
        .await
        .unwrap()
        .into_inner();
    let order = created.order.unwrap();
    assert_eq!(order.state(), pb::OrderState::Created);
    assert_eq!(order.quantity, 2);
    assert_eq!(order.product_kind(), pb::ProductKind::Consumable);
    assert_eq!(
        order.metadata.get("server").map(String::as_str),
        Some("eu-1")
    );
    let binding = created.binding.unwrap();
    assert_eq!(binding.apple_app_account_token, order.order_id);
    assert_eq!(binding.huawei_developer_payload, order.order_id);
    assert_eq!(binding.google_obfuscated_account_id.len(), 64);

    let fetched = client
        .get_order(pb::GetOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.order.unwrap(), order);

    // A retried CreateOrder with the same idempotency key returns the same order.
    let again = client
        .create_order(create("player-1", "gems_100", "k-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.order.unwrap().order_id, order.order_id);

    verifier.shutdown.trigger();
    verifier.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn bad_requests_get_machine_readable_reasons() {
    let verifier = start().await;
    let mut client = OrderServiceClient::new(verifier.channel.clone());

    let mut no_user = create("", "gems_100", "");
    no_user.user_id.clear();
    let status = client.create_order(no_user).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        status.get_details_bad_request().unwrap().field_violations[0].field,
        "user_id"
    );

    let mut no_platform = create("p", "gems_100", "");
    no_platform.platform = 0;
    assert_eq!(
        client.create_order(no_platform).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let mut too_many = create("p", "gems_100", "");
    too_many.quantity = 11;
    let status = client.create_order(too_many).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("quantity"),
        "{}",
        status.message()
    );

    let status = client
        .create_order(create("p", "sword", ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "UNKNOWN_PRODUCT"
    );

    let mut other_app = create("p", "gems_100", "");
    other_app.app_id = "com.unknown".into();
    let status = client.create_order(other_app).await.unwrap_err();
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "UNKNOWN_APP"
    );

    // The app allows three unpaid orders per user.
    for _ in 0..3 {
        client
            .create_order(create("hoarder", "gems_100", ""))
            .await
            .unwrap();
    }
    let status = client
        .create_order(create("hoarder", "gems_100", ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "ORDER_LIMIT_EXCEEDED"
    );

    let status = client
        .get_order(pb::GetOrderRequest {
            order_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let missing = uuid::Uuid::now_v7().to_string();
    let status = client
        .get_order(pb::GetOrderRequest { order_id: missing })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "ORDER_NOT_FOUND"
    );
}

#[tokio::test]
async fn health_reflection_and_metrics_are_served() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let verifier = start().await;
    let mut health = HealthClient::new(verifier.channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    let status = health
        .check(check("iap.v1.OrderService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);

    let mut reflection = ServerReflectionClient::new(verifier.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "iap.v1.OrderService"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
    // Operators use grpcurl with no proto files: AdminService must be listed and healthy.
    assert!(
        names.iter().any(|n| n == "iap.v1.AdminService"),
        "{names:?}"
    );
    let status = health
        .check(check("iap.v1.AdminService"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);

    let mut client = OrderServiceClient::new(verifier.channel.clone());
    client
        .create_order(create("m", "gems_100", ""))
        .await
        .unwrap();
    let (code, body) = http_get(verifier.metrics, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("iap_grpc_requests_total"), "{body}");
    assert!(body.contains("iap_orders_created_total"), "{body}");
    assert_eq!(http_get(verifier.http, "/readyz").await.0, 200);
    // The HTTP port faces the stores (the internet): it does not show the counters.
    let (code, body) = http_get(verifier.http, "/metrics").await;
    assert_eq!(code, 404, "{body}");
    assert!(!body.contains("iap_"), "{body}");

    // Draining: health turns NOT_SERVING and both servers return.
    verifier.shutdown.trigger();
    verifier.task.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(verifier.grpc).await.is_err());
}
