//! Browser tests: a script of `tests/browser` (playwright-core driving
//! headless Chromium, see `harness.mjs`) run with Node.js against a page of
//! a test gateway. They fail, never skip, when the browser side is missing:
//! a skipped browser test would silently stop proving anything.
//!
//! Needs Node.js, Chromium (`$SWITCHYARD_CHROMIUM`, else `/usr/bin/chromium`)
//! and the scripts' `node_modules` (`$SWITCHYARD_BROWSER_DIR`, else
//! `gateway/tests/browser`). `scripts/test.sh` installs them; by hand:
//!
//! ```text
//! apt-get install chromium
//! (cd gateway/tests/browser && npm ci)
//! SWITCHYARD_CHROMIUM=/usr/bin/chromium cargo test -p switchyard --test <name>
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

/// Longest a whole browser run may take (the scripts give up at 30 s).
pub const DEADLINE: Duration = Duration::from_secs(45);

fn chromium() -> PathBuf {
    std::env::var_os("SWITCHYARD_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), Into::into)
}

fn scripts() -> PathBuf {
    std::env::var_os("SWITCHYARD_BROWSER_DIR").map_or_else(
        || super::repo_root().join("gateway/tests/browser"),
        Into::into,
    )
}

/// Runs `script` (a file of `tests/browser`) with `args`; its standard
/// output once it exited 0 (panics with both outputs otherwise).
pub async fn run(script: &str, args: &[&str]) -> String {
    let (chromium, dir) = (chromium(), scripts());
    let help = format!(
        "browser tests need Node.js, Chromium and playwright-core.\n\
         Run `scripts/test.sh` (it installs them), or by hand:\n  \
         apt-get install chromium && (cd gateway/tests/browser && npm ci)\n\
         (Chromium tried: {chromium:?}, from $SWITCHYARD_CHROMIUM or else /usr/bin/chromium;\n \
         scripts tried: {dir:?}, from $SWITCHYARD_BROWSER_DIR or else gateway/tests/browser)"
    );
    assert!(chromium.is_file(), "no Chromium at {chromium:?}\n{help}");
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed in {dir:?}\n{help}"
    );
    let script = dir.join(script);
    let started = Instant::now();
    let child = Command::new("node")
        .arg(&script)
        .args(args)
        .env("SWITCHYARD_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {script:?}: {e}\n{help}"));
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser run took longer than {DEADLINE:?}"))
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("browser run: {:?}\n{stdout}", started.elapsed());
    assert!(
        out.status.success(),
        "{script:?} {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}
