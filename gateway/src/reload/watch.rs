//! The watch: the config file and the protos it names, read every
//! `reload.watch_interval` and reloaded when their bytes changed.
//!
//! Bytes, not mtimes: an editor's same-second rewrite and Kubernetes'
//! ConfigMap symlink swap both keep or confuse mtimes. The files are small
//! (a config, a few hundred `.proto` files at most), and the read is
//! bounded: past [`MAX_FILES`] files or [`MAX_BYTES`] bytes under the
//! protos, the rest is not looked at (a change there needs `SIGHUP` or
//! `POST /admin/reload`).

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Reloader, Trigger};
use crate::config::LoadedConfig;

/// Files read under the protos' sources and includes, at most.
pub const MAX_FILES: usize = 10_000;
/// Bytes read under them, at most.
pub const MAX_BYTES: u64 = 256 << 20;

/// How long the watch waits when it is off, before looking at the (maybe
/// reloaded) setting again.
const OFF: Duration = Duration::from_secs(2);

/// A digest of a config version's sources.
pub type Fingerprint = [u8; 32];

/// The digest of `text` (the config file's) and of every file under the
/// protos `loaded` names, in path order.
pub fn fingerprint(loaded: &LoadedConfig, text: &[u8]) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update((text.len() as u64).to_le_bytes());
    hasher.update(text);
    let protos = &loaded.config.protos;
    let mut files = Vec::new();
    for root in protos.sources.iter().chain(&protos.includes) {
        collect(&loaded.source.resolve(root), &mut files);
    }
    files.sort();
    files.dedup();
    let mut left = MAX_BYTES;
    let mut buf = Vec::new();
    for file in files.iter().take(MAX_FILES) {
        hasher.update(file.as_os_str().as_encoded_bytes());
        buf.clear();
        let read = std::fs::File::open(file).and_then(|f| f.take(left).read_to_end(&mut buf));
        match read {
            Ok(n) => {
                hasher.update((n as u64).to_le_bytes());
                hasher.update(&buf);
                left -= n as u64;
            }
            Err(_) => hasher.update(b"unreadable"),
        }
    }
    hasher.finalize().into()
}

/// The fingerprint of the config file as it is on disk now, with the
/// protos `loaded` (the running version) names; `None` when the file
/// cannot be read.
pub fn on_disk(path: &Path, loaded: &LoadedConfig) -> Option<Fingerprint> {
    let text = std::fs::read(path).ok()?;
    Some(fingerprint(loaded, &text))
}

/// Files under `path` (itself when it is a file), depth first; stops
/// collecting past [`MAX_FILES`].
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if out.len() >= MAX_FILES {
        return;
    }
    match std::fs::read_dir(path) {
        Ok(entries) => {
            let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            entries.sort();
            for entry in entries {
                collect(&entry, out);
            }
        }
        Err(_) if path.is_file() => out.push(path.to_path_buf()),
        Err(_) => {}
    }
}

/// Looks at the files every `reload.watch_interval` of the running config
/// until `stop`, reloading when they changed since the last reload.
pub async fn watch(reloader: Arc<Reloader>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let interval = reloader
            .gateway
            .runtime()
            .loaded
            .config
            .reload
            .watch_interval
            .0;
        let wait = if interval.is_zero() { OFF } else { interval };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => return,
        }
        if interval.is_zero() {
            continue;
        }
        let runtime = reloader.gateway.runtime();
        let path = reloader.path.clone();
        let now = tokio::task::spawn_blocking(move || on_disk(&path, &runtime.loaded)).await;
        let Ok(Some(now)) = now else {
            continue; // unreadable (being replaced?): looked at again next time
        };
        if reloader.seen() != Some(now) {
            tracing::info!(file = %reloader.path.display(), "config files changed: reloading");
            let _ = reloader.reload(Trigger::Watch).await;
        }
    }
}
