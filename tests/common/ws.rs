//! WebSocket clients of a gateway: connect with a token, echo, wait for
//! the close frame.

use super::*;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WS_WITHIN: Duration = Duration::from_secs(5);

/// Opens a WebSocket to `path` through the gateway with `token` as bearer.
pub async fn ws_connect(gw: &Gateway, path: &str, token: &str) -> Ws {
    let mut req = format!("ws://{}{}", gw.proxy, path)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// Sends `text` and expects it back from the echoing upstream.
pub async fn echo_round_trip(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
    let got = tokio::time::timeout(WS_WITHIN, ws.next())
        .await
        .expect("echo")
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::Text(text.into()));
}

/// Reads until the server closes; answers the close frame, if one came.
pub async fn until_closed(ws: &mut Ws) -> Option<(CloseCode, String)> {
    let deadline = Instant::now() + WS_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (f.code, f.reason.to_string()));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}
