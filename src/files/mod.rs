//! What routers download, below HTTP routing: image md5s (`checksum`), the day-0 config a
//! router gets and its rendering (`day0`), the zero-copy download path (`sendfile`) and the
//! table of downloads in flight (`transfers`), and [`confined`], the rule that a download
//! never leaves its folder. The routes themselves are in `crate::http`.

pub mod checksum;
pub(crate) mod day0;
pub(crate) mod sendfile;
pub(crate) mod transfers;

/// Whether `rel` (already percent-decoded, relative) names something inside `dir` once
/// symlinks are resolved: a link in `images/` to `/etc/shadow` or `../appliance.toml` is
/// refused, a link to another file inside the folder is fine. A name that does not exist is
/// "inside" (the file route answers 404 for it).
pub(crate) fn confined(dir: &std::path::Path, rel: &str) -> bool {
    let Ok(root) = std::fs::canonicalize(dir) else {
        return true;
    };
    match std::fs::canonicalize(dir.join(rel.trim_start_matches('/'))) {
        Ok(real) => real.starts_with(&root),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn symlinks_out_of_the_folder_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("images");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.bin"), b"a").unwrap();
        std::fs::write(t.path().join("secret.toml"), b"token").unwrap();
        std::os::unix::fs::symlink("../secret.toml", dir.join("out.bin")).unwrap();
        std::os::unix::fs::symlink("a.bin", dir.join("in.bin")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("abs.bin")).unwrap();
        assert!(super::confined(&dir, "a.bin"));
        assert!(super::confined(&dir, "in.bin"));
        assert!(super::confined(&dir, "missing.bin"));
        assert!(!super::confined(&dir, "out.bin"));
        assert!(!super::confined(&dir, "abs.bin"));
    }
}
