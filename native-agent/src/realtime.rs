//! A device's connection to its account's hub (`GET /realtime`): typed frames in and out.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use udc_hub::{ClientFrame, HubFrame};

use crate::client::{ApiError, Error, Result};

/// What arrives on the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Frame(HubFrame),
    /// The hub sent something this agent cannot read (a newer hub, say).
    Unreadable(String),
    /// The socket closed, with the hub's code (4001: access revoked, do not reconnect).
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// `http(s)://host/...` → `ws(s)://host/realtime?...`
pub fn realtime_url(base_url: &str, resume_after: Option<u64>) -> String {
    let ws = if let Some(rest) = base_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", base_url.trim_start_matches("http://"))
    };
    let mut url = format!("{}/realtime", ws.trim_end_matches('/'));
    if let Some(after) = resume_after {
        url.push_str(&format!("?resume_after={after}"));
    }
    url
}

impl Socket {
    /// Opens the socket with a device-bound access token. A refusal before the upgrade comes back
    /// as the server's API error.
    pub async fn connect(
        base_url: &str,
        access_token: &str,
        resume_after: Option<u64>,
    ) -> Result<Socket> {
        let mut req = realtime_url(base_url, resume_after)
            .into_client_request()
            .map_err(|e| Error::Local(e.to_string()))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {access_token}"))
            .map_err(|e| Error::Local(e.to_string()))?;
        req.headers_mut().insert("authorization", bearer);
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Socket { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body: serde_json::Value = resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or_default();
                Err(Error::Api(ApiError::from_answer(
                    resp.status().as_u16(),
                    &body,
                    "refused",
                )))
            }
            Err(e) => Err(Error::Transport(e.to_string())),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        let text = serde_json::to_string(frame).map_err(|e| Error::Local(e.to_string()))?;
        self.send_text(text).await
    }

    /// Sends any text, well-formed or not (the tests send garbage on purpose).
    pub async fn send_text(&mut self, text: String) -> Result<()> {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| Error::Transport(e.to_string()))
    }

    /// The next frame, or how the socket closed.
    pub async fn next(&mut self) -> Incoming {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return match serde_json::from_str(text.as_str()) {
                        Ok(frame) => Incoming::Frame(frame),
                        Err(_) => Incoming::Unreadable(text.to_string()),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Incoming::Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Incoming::Closed {
                        code: None,
                        reason: e.to_string(),
                    }
                }
                None => {
                    return Incoming::Closed {
                        code: None,
                        reason: "connection ended".into(),
                    }
                }
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
