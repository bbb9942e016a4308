//! An echo server for the Autobahn testsuite's fuzzing client
//! (`wstest -m fuzzingclient`), built from the gateway's own WebSocket
//! transport: the same upgrade, framing, permessage-deflate and close
//! handling the gateway serves, with a loop that sends each message back
//! instead of the session. `run.sh` drives it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use tourcast::protocol::codec::Encoding;
use tourcast::protocol::frame::Frame;
use tourcast::transport::websocket::upgrade::UpgradeRequest;
use tourcast::transport::websocket::{Compression, Settings};
use tourcast::transport::{Ending, Transport};

#[derive(Parser)]
struct Args {
    /// Where to listen (loopback).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// The largest message echoed (Autobahn's case 9 sends 16 MiB).
    #[arg(long, default_value_t = 64 << 20)]
    max_message_bytes: usize,
    /// permessage-deflate's level (0: off).
    #[arg(long, default_value_t = 6)]
    compression_level: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = Arc::new(Settings {
        max_message_bytes: args.max_message_bytes,
        write_timeout: Duration::from_secs(30),
        compression: (args.compression_level > 0).then_some(Compression {
            min_bytes: 0,
            level: args.compression_level,
        }),
    });
    let app = Router::new().route(
        "/",
        get(move |request: Request| echo(request, Arc::clone(&settings))),
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("echoing on ws://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn echo(mut request: Request, settings: Arc<Settings>) -> Response {
    let upgrade = match UpgradeRequest::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(not) => return (StatusCode::BAD_REQUEST, not.to_string()).into_response(),
    };
    upgrade.accept(None, settings, |mut transport| async move {
        let ending = loop {
            let message = match transport.recv().await {
                Ok(message) => message,
                Err(ending) => break ending,
            };
            let encoding = if message.text {
                Encoding::Json
            } else {
                Encoding::Proto
            };
            let sent = async {
                transport
                    .feed(Frame::verbatim(message.payload, encoding))
                    .await?;
                transport.flush().await
            };
            if let Err(ending) = sent.await {
                break ending;
            }
        };
        if let Ending::Close(reason) = ending {
            transport.close(reason).await;
        }
    })
}
