//! Image checksums: md5 computed at start-up with a progress bar, cached by size + mtime.
//!
//! Owns `<state>/md5-cache.json`, so a restart does not re-read a 700 MB image whose size and
//! modification time are unchanged. The md5 goes into image-install requests as 32 lower-case
//! hex digits (`docs/pnp-protocol.md` §6.5).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::UNIX_EPOCH;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::store::write_atomic;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    size: u64,
    mtime_ns: u128,
    md5: String,
}

/// The cache file's content: file name → entry.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Md5Cache {
    entries: BTreeMap<String, Entry>,
}

fn stamp(path: &Path) -> std::io::Result<(u64, u128)> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok((meta.len(), mtime))
}

/// Lower-case hex md5 of a file, reporting progress (bytes read so far) through `progress`.
pub fn md5_file(path: &Path, mut progress: impl FnMut(u64)) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done);
    }
    Ok(hex::encode(hasher.finalize()))
}

impl Md5Cache {
    /// Loads the cache; a missing or unreadable cache is empty.
    pub(crate) fn load(path: &Path) -> Md5Cache {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Saves the cache atomically.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(path, &json)
    }

    /// The md5 of `dir/name`: from the cache when size and mtime match, else computed (with an
    /// indicatif progress bar on a terminal) and cached. Returns whether it was a cache hit.
    pub(crate) fn md5_of(&mut self, dir: &Path, name: &str) -> std::io::Result<(String, bool)> {
        let path = dir.join(name);
        let (size, mtime_ns) = stamp(&path)?;
        if let Some(e) = self.entries.get(name)
            && e.size == size
            && e.mtime_ns == mtime_ns
        {
            return Ok((e.md5.clone(), true));
        }
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "md5 {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(name.to_string());
        let md5 = md5_file(&path, |n| bar.set_position(n))?;
        bar.finish_and_clear();
        self.entries.insert(
            name.to_string(),
            Entry {
                size,
                mtime_ns,
                md5: md5.clone(),
            },
        );
        Ok((md5, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_caches_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"hello").unwrap();
        let mut cache = Md5Cache::default();
        let (m, hit) = cache.md5_of(dir.path(), "a.bin").unwrap();
        assert_eq!(m, "5d41402abc4b2a76b9719d911017c592");
        assert!(!hit);
        let cache_file = dir.path().join("c.json");
        cache.save(&cache_file).unwrap();
        let mut cache = Md5Cache::load(&cache_file);
        assert!(cache.md5_of(dir.path(), "a.bin").unwrap().1);
        std::fs::write(dir.path().join("a.bin"), b"hello!").unwrap();
        let (m2, hit) = cache.md5_of(dir.path(), "a.bin").unwrap();
        assert!(!hit);
        assert_ne!(m, m2);
        assert!(cache.md5_of(dir.path(), "missing.bin").is_err());
    }
}
