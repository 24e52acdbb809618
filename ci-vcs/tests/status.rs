//! The status reporters' conformance suite (`ci_vcs::conformance`), one test per behaviour,
//! against a real HTTP server on 127.0.0.1.

use ci_vcs::conformance;

#[tokio::test]
async fn github_status_request_shape() {
    conformance::github_status_request_shape().await;
}

#[tokio::test]
async fn gitlab_and_gitea_shapes() {
    conformance::gitlab_and_gitea_shapes().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    conformance::server_errors_are_retried_with_backoff().await;
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    conformance::client_errors_are_not_retried().await;
}

#[tokio::test]
async fn persistent_failures_and_refused_connections_give_up() {
    conformance::persistent_failures_and_refused_connections_give_up().await;
}
