//! The limits of the HTTP edge, over real TCP against the real binary: a client that sends its
//! headers slowly (or never finishes them) is disconnected, a request that takes too long is
//! answered `503 timeout` (while `?wait=true` keeps its own bound), connections beyond the cap
//! wait until one closes, an oversized request head is refused, JSON bodies nested deeper
//! than 64 levels are a clear `400`, and what axum's extractors reject is a JSON error too. (A handler panic answered as a JSON 500 is covered by the
//! unit tests of crane-server's `limits`: no production route can panic on purpose.)

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::support::{DEADLINE, Server, assert_error, error_of};

/// How long the server may take to cut off a client the tests set a 500 ms bound for.
const CUT_OFF: Duration = Duration::from_secs(10);

async fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect to crane")
}

/// One HTTP/1.1 response read from `stream` (head and a `Content-Length` body), leaving the
/// connection open.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

async fn read_response(stream: &mut TcpStream) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut response = RawResponse {
        status,
        head,
        body: buf[head_end..].to_vec(),
    };
    let length: usize = response
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while response.body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        response.body.extend_from_slice(&chunk[..n]);
    }
    Ok(response)
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn assert_healthy(server: &Server) {
    let (status, _, body) = server.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_disconnected() {
    let server = Server::start_with_env(&[], &[("CRANE_HEADER_READ_TIMEOUT_MS", "500")]).await;

    // A request head that is never finished.
    let mut stalled = connect(&server).await;
    stalled
        .write_all(b"GET /health HTTP/1.1\r\nHost: crane\r\n")
        .await
        .unwrap();
    let sent = timeout(CUT_OFF, read_until_closed(&mut stalled))
        .await
        .expect("the server never closed a connection whose headers stalled");
    assert!(
        !String::from_utf8_lossy(&sent).starts_with("HTTP/1.1 200"),
        "an unfinished request was answered"
    );

    // A slowloris: one byte every 100 ms keeps the connection busy but never ends the head;
    // the bound is on the whole head, so the trickle does not extend it.
    let (mut reader, mut writer) = connect(&server).await.into_split();
    writer
        .write_all(b"GET /health HTTP/1.1\r\nHost: crane\r\nX-Slow: ")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if writer.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    let closed = timeout(CUT_OFF, async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    trickle.abort();
    assert!(
        closed.is_ok(),
        "a client trickling its headers was still connected after {:?}",
        started.elapsed()
    );

    // A client that sends its request promptly is served, on a fresh and on a reused
    // connection.
    let mut prompt = connect(&server).await;
    for _ in 0..2 {
        prompt
            .write_all(b"GET /health HTTP/1.1\r\nHost: crane\r\n\r\n")
            .await
            .unwrap();
        let response = timeout(DEADLINE, read_response(&mut prompt))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, 200, "{}", response.head);
    }
    assert_healthy(&server).await;
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_answered_503_timeout() {
    let server =
        Server::start_with_env(&["--debug-tools"], &[("CRANE_REQUEST_TIMEOUT_MS", "500")]).await;

    // The body never arrives in full: the handler waits for it until the request timeout.
    let mut slow = connect(&server).await;
    slow.write_all(
        b"POST /runs HTTP/1.1\r\nHost: crane\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"prompt\": \"add a todo",
    )
    .await
    .unwrap();
    let response = timeout(CUT_OFF, read_response(&mut slow))
        .await
        .expect("no answer to a request whose body never finished")
        .expect("the server closed the connection without an answer");
    assert_error(
        StatusCode::from_u16(response.status).unwrap(),
        &response.json(),
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "500 ms",
    );
    assert!(
        response.header("x-trace-id").is_some_and(|v| v.len() == 32),
        "a timeout answer carries X-Trace-ID: {}",
        response.head
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{}",
        response.head
    );

    // ?wait=true waits for the run beyond the request timeout (its own bound is the wait
    // timeout).
    let (status, _, run) = server
        .post_json(
            "/runs?wait=true",
            &json!({"prompt": "slow", "steps": [{"tool": "debug_sleep", "input": {"ms": 1500}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_healthy(&server).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = Server::start_with_env(&[], &[("CRANE_MAX_CONNECTIONS", "2")]).await;
    let request = b"GET /health HTTP/1.1\r\nHost: crane\r\n\r\n";

    // Two keep-alive connections take both places.
    let mut first = connect(&server).await;
    let mut second = connect(&server).await;
    for conn in [&mut first, &mut second] {
        conn.write_all(request).await.unwrap();
        let response = timeout(DEADLINE, read_response(conn))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, 200, "{}", response.head);
    }

    // A third connects (the kernel queues it) but is not served while both are open.
    let mut third = connect(&server).await;
    third.write_all(request).await.unwrap();
    let mut probe = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(500), third.peek(&mut probe))
            .await
            .is_err(),
        "a connection beyond the cap of 2 was served while two were open"
    );

    // Closing one lets the waiting connection in.
    drop(first);
    let response = timeout(DEADLINE, read_response(&mut third))
        .await
        .expect("the waiting connection was not served after a place freed up")
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(
        server.logs().contains("connection limit reached"),
        "reaching the cap is logged:\n{}",
        server.logs()
    );
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let server = Server::start(&[]).await;

    // 8 KiB of headers is fine (the default limit is 16 KiB).
    let (status, _, body) = server
        .send(
            server
                .client
                .get(server.url("/health"))
                .header("x-padding", "a".repeat(8 * 1024)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // One 64 KiB header, and 64 KiB spread over many headers.
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: crane\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let many = format!(
        "GET /health HTTP/1.1\r\nHost: crane\r\n{}\r\n",
        (0..64)
            .map(|i| format!("X-Padding-{i}: {}\r\n", "a".repeat(1024)))
            .collect::<String>()
    );
    for head in [big, many] {
        let mut conn = connect(&server).await;
        // The server may close before it has read everything: a failed write is fine.
        let _ = conn.write_all(head.as_bytes()).await;
        let answer = timeout(DEADLINE, read_until_closed(&mut conn))
            .await
            .expect("the server kept a connection with an oversized head open");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "a 64 KiB request head was answered: {}",
            answer.lines().next().unwrap_or_default()
        );
    }
    assert_healthy(&server).await;
}

/// `{"prompt": ..., "metadata": [[...]]}` nested `depth` levels in all (the outer object is 1).
fn nested_body(depth: usize) -> String {
    let inner = depth - 1;
    format!(
        "{{\"prompt\": \"add a todo to buy milk\", \"metadata\": {}{}}}",
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[tokio::test]
async fn json_bodies_nested_deeper_than_64_levels_are_a_clear_400() {
    let server = Server::start(&[]).await;
    let post = |path: &str, body: String| {
        server.send(
            server
                .client
                .post(server.url(path))
                .header("content-type", "application/json")
                .body(body),
        )
    };

    let (status, _, run) = post("/runs", nested_body(64)).await;
    assert_eq!(status, StatusCode::CREATED, "64 levels are accepted: {run}");

    for depth in [65, 100, 10_000] {
        let (status, _, body) = post("/runs", nested_body(depth)).await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "nested deeper than 64",
        );
        assert_eq!(body["error"]["details"]["max_depth"], 64, "{body}");
    }
    // Every JSON body goes through the same check.
    let deep = format!(
        "{{\"variant\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (status, _, body) = server
        .send(
            server
                .client
                .put(server.url("/aliases/production"))
                .header("content-type", "application/json")
                .body(deep),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "nested deeper than 64",
    );
    assert_healthy(&server).await;
}

#[tokio::test]
async fn requests_the_extractors_reject_get_the_json_error_body() {
    let server = Server::start(&[]).await;
    let run = server
        .create_run(&json!({"prompt": "add a todo to buy milk"}), false)
        .await;
    let run_id = run["run_id"].as_str().unwrap();
    let body = json!({"prompt": "add a todo to buy milk"});
    let requests = [
        // Path parameters that are not UTF-8.
        server.client.get(server.url("/runs/%FF")),
        server.client.get(server.url("/prompts/%FF/1")),
        server.client.get(server.url("/aliases/%C0/history")),
        // Query strings that do not deserialize.
        server
            .client
            .post(server.url("/runs?wait=true&wait=false"))
            .json(&body),
        server
            .client
            .post(server.url("/runs?timeout_ms=soon"))
            .json(&body),
        server
            .client
            .post(server.url(&format!("/runs/{run_id}/retry?timeout_ms=-1"))),
    ];
    for request in requests {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url());
        let response = server.client.execute(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        assert_eq!(error_of(&body)["code"], "invalid_request", "{what}: {body}");
    }
}
