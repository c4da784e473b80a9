//! SIGTERM drains: the process stops accepting, lets in-flight requests
//! finish, and exits 0.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    // An upstream that accepts and never answers: the request is in flight
    // until the route's 800 ms deadline.
    let silent_addr = common::silent_upstream();
    let dir = std::env::temp_dir().join(format!("sy-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "listeners: [{{address: \"127.0.0.1:0\"}}]\nadmin: {{enabled: false}}\nprotos: {{sources: [\"{}\"]}}\nupstreams:\n  s: {{endpoints: [\"http://{silent_addr}\"]}}\nroutes:\n  - {{service: demo.inventory.v1.InventoryService, upstream: s, timeout: 800ms}}\n",
            common::repo_root().join("proto").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--log", "info", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_listen_address(child.stdout.take().unwrap(), child.stderr.take().unwrap());

    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /v1/inventory/A-1 HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let sent_term = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let mut reply = String::new();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = conn.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 504"),
        "the in-flight request got its answer: {reply:?}"
    );

    let exit = child.wait().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(sent_term.elapsed() < Duration::from_secs(10));
    // New connections are refused once it has gone.
    assert!(TcpStream::connect(&addr).is_err());
}

/// Reads the log until the "listening" line and returns its address.
fn wait_for_listen_address(
    stdout: impl Read + Send + 'static,
    stderr: impl Read + Send + 'static,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains("listening") && line.contains("address=") {
                    let addr = line
                        .rsplit("address=")
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
    }
    rx.recv_timeout(Duration::from_secs(20))
        .expect("gateway started")
}
