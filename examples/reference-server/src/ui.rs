//! The web UI: one page and its script and styles, embedded in the binary (no CDN; works
//! offline). It reads the same JSON API and live-log stream as any client.

use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// `/`, `/runs/{id}` (the same page; the script routes) and the assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/runs/{id}", get(|| async { Html(INDEX) }))
        .route(
            "/assets/app.js",
            get(|| async {
                ([("content-type", "text/javascript; charset=utf-8")], SCRIPT).into_response()
            }),
        )
        .route(
            "/assets/app.css",
            get(|| async {
                ([("content-type", "text/css; charset=utf-8")], STYLE).into_response()
            }),
        )
}
