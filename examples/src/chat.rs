//! The chat application of the product page, with a real JSON parser: every
//! message it sends is valid JSON, whatever people type. The `chat` example
//! of every adapter and the parity tests run this same code.
//!
//! - on connect: the page's welcome message, and the user is "Anonymous";
//! - `{"type":"join","username":NAME}` → everyone gets `{"type":"join","user":NAME}`;
//! - any other message → everyone gets `{"type":"message","user":NAME,"text":TEXT}`,
//!   TEXT being the message's `text` field when it is a JSON object with one,
//!   else the message as received;
//! - on close → everyone else gets `{"type":"leave","user":NAME}`.
//!
//! ```
//! let ws = crest_examples::chat::chat_server();
//! assert_eq!(ws.connection_count(), 0);
//! assert!(crest_examples::chat::PAGE.contains("new WebSocket('ws://localhost:8000/ws')"));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crest_driver::{ConnId, DeflateConfig, Settings, WebSocketServer};
use serde_json::Value;

/// The page's welcome message, sent to every client on connect.
pub const WELCOME: &str = r#"{"type":"welcome","message":"Connected!"}"#;

/// The chat page served at `/`: the product page's client-side JavaScript
/// plus a minimal UI. It connects to `ws://localhost:8000/ws`.
pub const PAGE: &str = include_str!("chat.html");

/// Longest user name kept, in characters.
const MAX_NAME: usize = 64;

/// A `WebSocketServer` running the chat; route it at `/ws`. JSON values are
/// written by serde_json (`Value`'s `Display` escapes strings), so the output
/// is always valid JSON, with the keys in the page's order.
///
/// Browsers offer permessage-deflate on every connection; it is accepted
/// without server context takeover, so that each broadcast is compressed once
/// and the same frame goes to every client.
pub fn chat_server() -> WebSocketServer {
    let deflate = DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() };
    let ws = WebSocketServer::with_settings(Settings::default().deflate(deflate));
    let users: Arc<Mutex<HashMap<ConnId, String>>> = Arc::default();

    let names = users.clone();
    ws.on_connect(move |conn| {
        println!("Client connected: {}", conn.id());
        names.lock().unwrap_or_else(PoisonError::into_inner).insert(conn.id(), "Anonymous".into());
        let _ = conn.send(WELCOME);
    });

    let (names, all) = (users.clone(), ws.clone());
    ws.on_message(move |conn, message| {
        println!("Received: {message}");
        let parsed: Option<Value> = serde_json::from_str(&message).ok();
        let object = parsed.as_ref().and_then(Value::as_object);
        if object.and_then(|o| o.get("type")).and_then(Value::as_str) == Some("join") {
            let name = object
                .and_then(|o| o.get("username"))
                .and_then(Value::as_str)
                .map(|n| n.trim().chars().take(MAX_NAME).collect::<String>())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "Anonymous".into());
            names.lock().unwrap_or_else(PoisonError::into_inner).insert(conn.id(), name.clone());
            all.broadcast(format!(r#"{{"type":"join","user":{}}}"#, Value::from(name)));
        } else {
            let user = names.lock().unwrap_or_else(PoisonError::into_inner).get(&conn.id()).cloned();
            let text = match object.and_then(|o| o.get("text")) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => message.to_string(),
            };
            let user = Value::from(user.unwrap_or_default());
            all.broadcast(format!(r#"{{"type":"message","user":{user},"text":{}}}"#, Value::from(text)));
        }
    });

    let (names, all) = (users, ws.clone());
    ws.on_close(move |conn, code, reason| {
        println!("Client disconnected: {} ({code} {reason})", conn.id());
        if let Some(user) = names.lock().unwrap_or_else(PoisonError::into_inner).remove(&conn.id()) {
            all.broadcast(format!(r#"{{"type":"leave","user":{}}}"#, Value::from(user)));
        }
    });
    ws
}
