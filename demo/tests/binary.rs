//! The `switchyard-demo` binary as the benchmarks use it: a separate process that announces its
//! addresses on stdout and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_demo::pb::users::GetUserRequest;
use switchyard_demo::pb::users::user_service_client::UserServiceClient;

#[tokio::test]
async fn binary_prints_addresses_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-demo"))
        .args(["--users", "127.0.0.1:0", "--orders", "127.0.0.1:0"])
        .args(["--inventory", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let lines: Vec<String> = stdout.lines().take(3).map(Result::unwrap).collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|line| line.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["users", "orders", "inventory"], "{lines:?}");
    let users_addr = lines[0].rsplit(' ').next().unwrap();

    let mut client = UserServiceClient::connect(format!("http://{users_addr}"))
        .await
        .unwrap();
    let ada = client
        .get_user(GetUserRequest {
            id: "1".into(),
            read_mask: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ada.name, "Ada Lovelace");
    drop(client);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 10s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}
