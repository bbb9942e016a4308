//! A raw HTTP/1.1 Server-Sent Events client for the tests: a request
//! written by hand on a TCP socket, the chunked response decoded by hand,
//! and the event stream parsed as the HTML standard's EventSource does
//! (`event:`, `id:`, `data:`, comments, `retry:`, blocks ended by a blank
//! line; an `id:` without data still sets the last event id). Nothing of
//! the gateway's own code is used, so the wire format is what is tested.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One dispatched event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `event:`.
    pub event: String,
    /// `id:` of this block, if it had one.
    pub id: Option<u64>,
    /// `data:`, parsed as JSON.
    pub data: Value,
}

/// An open event stream.
pub struct SseClient {
    socket: TcpStream,
    /// Received bytes not yet decoded from the chunked encoding.
    raw: Vec<u8>,
    /// Decoded body bytes not yet parsed into blocks.
    text: String,
    /// The response's headers, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The last event id the stream set (as EventSource keeps it).
    pub last_id: Option<u64>,
    /// `retry:` values seen.
    pub retry: Option<u64>,
    /// Comments seen (without the leading colon and space).
    pub comments: Vec<String>,
    /// The body ended (the zero-size chunk, or EOF).
    pub ended: bool,
}

/// Opens `GET {path_and_query}` on `addr` with `headers`; the status and
/// JSON body when it is not a 200.
pub async fn connect(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<SseClient, (u16, Value)> {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            break end;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .expect("a response head in time")
            .expect("read");
        assert!(n > 0, "connection closed before a response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let rest = raw[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut client = SseClient {
        socket,
        raw: rest,
        text: String::new(),
        headers,
        last_id: None,
        retry: None,
        comments: Vec::new(),
        ended: false,
    };
    if status != 200 {
        // Refusals have a small body with a content-length.
        let length: usize = client
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        while client.raw.len() < length {
            let mut buf = [0u8; 4096];
            let n = client.socket.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            client.raw.extend_from_slice(&buf[..n]);
        }
        let body = serde_json::from_slice(&client.raw[..length.min(client.raw.len())])
            .unwrap_or(Value::Null);
        return Err((status, body));
    }
    // The first chunks may have come with the head.
    client.dechunk();
    Ok(client)
}

impl SseClient {
    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next dispatched event within `limit`; `None` when the stream
    /// ends first or nothing comes.
    pub async fn next_within(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(event) = self.parse_block() {
                match event {
                    Some(event) => return Some(event),
                    None => continue,
                }
            }
            if self.ended {
                return None;
            }
            let mut buf = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.socket.read(&mut buf)).await;
            match read {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => self.ended = true,
                Ok(Ok(n)) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    self.dechunk();
                }
            }
        }
    }

    /// The next event, which must come within five seconds.
    pub async fn next(&mut self) -> SseEvent {
        self.next_within(Duration::from_secs(5))
            .await
            .expect("an event within 5 s")
    }

    /// The next event of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> SseEvent {
        loop {
            let event = self.next().await;
            if event.event == kind {
                return event;
            }
        }
    }

    /// Reads until the stream ends (within `limit`); the events on the way.
    pub async fn until_end(&mut self, limit: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut events = Vec::new();
        while !self.ended {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "the stream did not end within {limit:?}");
            if let Some(event) = self.next_within(left).await {
                events.push(event);
            }
        }
        while let Some(parsed) = self.parse_block() {
            events.extend(parsed);
        }
        events
    }

    /// Moves complete chunks from `raw` into `text`.
    fn dechunk(&mut self) {
        loop {
            let Some(line_end) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("a chunk size");
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.text
                .push_str(std::str::from_utf8(&self.raw[start..start + size]).expect("UTF-8"));
            self.raw.drain(..start + size + 2);
        }
    }

    /// Parses one block from `text`: `Some(Some(event))` for a dispatched
    /// event, `Some(None)` for a block that dispatches nothing (a comment,
    /// `retry:`, a block without data), `None` when no complete block is buffered.
    fn parse_block(&mut self) -> Option<Option<SseEvent>> {
        let end = self.text.find("\n\n")?;
        let block: String = self.text[..end].to_string();
        self.text.drain(..end + 2);
        let (mut event, mut id, mut data) = (None, None, None::<String>);
        for line in block.split('\n') {
            if let Some(comment) = line.strip_prefix(':') {
                self.comments.push(comment.trim().to_string());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = Some(value.to_string()),
                "id" => id = Some(value.parse::<u64>().expect("numeric ids")),
                "data" => {
                    let data = data.get_or_insert_with(String::new);
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                "retry" => self.retry = value.parse().ok(),
                other => panic!("unexpected field {other:?} in {block:?}"),
            }
        }
        if id.is_some() {
            self.last_id = id;
        }
        let Some(data) = data else {
            return Some(None);
        };
        Some(Some(SseEvent {
            event: event.unwrap_or_else(|| "message".into()),
            id,
            data: serde_json::from_str(&data).expect("JSON data"),
        }))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
