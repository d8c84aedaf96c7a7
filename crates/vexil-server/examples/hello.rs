//! The baseline of `bench/sdk-load.sh`: the smallest axum server, on the same axum, hyper and
//! tokio versions as Vexil, answering `GET /` with a short text. Vexil's SDK endpoints are
//! measured against it in the same run.
//!
//! Usage: `cargo run --release -p vexil-server --example hello -- [ADDR]` (default
//! `127.0.0.1:0`); prints `listening on http://ADDR`.

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    axum::serve(listener, app).await
}
