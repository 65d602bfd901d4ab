//! The admin token kept in the state directory: generated at the first start when none is
//! configured, so a fresh install never takes device actions without one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the generated token lives.
pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("admin-token")
}

/// Reads the stored token (`None` when there is none).
pub(crate) fn read(state_dir: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path(state_dir)) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The stored token, generated (128 random bits, hex; file mode 0600) when there is none.
/// `true` when it was generated now.
pub(crate) fn read_or_create(state_dir: &Path) -> std::io::Result<(String, bool)> {
    if let Some(t) = read(state_dir)? {
        return Ok((t, false));
    }
    std::fs::create_dir_all(state_dir)?;
    let token = hex::encode(rand::random::<[u8; 16]>());
    let tmp = state_dir.join(".admin-token.tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(state_dir))?;
    if let Ok(d) = std::fs::File::open(state_dir) {
        let _ = d.sync_all();
    }
    Ok((token, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_private_and_kept() {
        let t = tempfile::tempdir().unwrap();
        let (a, new) = read_or_create(t.path()).unwrap();
        assert!(new);
        assert_eq!(a.len(), 32);
        let (b, new) = read_or_create(t.path()).unwrap();
        assert!(!new);
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(t.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
