//! Whether a file or folder holding secrets or identity data is its owner's alone: the one
//! check behind every "chmod 600 it" idflow says (each caller says it of its own file).
use std::path::Path;

/// `path`'s permission bits (`0o644`, say) when its group or others have any; `None` when its
/// owner alone has them (or the system has no such bits). An error: `path` cannot be looked at.
pub fn open_to_others(path: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| None)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn any_bit_of_group_or_others_opens_it() {
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("f");
        std::fs::write(&f, "x").expect("write");
        for (mode, open) in [(0o600, None), (0o700, None), (0o640, Some(0o640)), (0o604, Some(0o604)), (0o610, Some(0o610))] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(open_to_others(&f).expect("looked at"), open, "{mode:o}");
        }
        assert!(open_to_others(&t.path().join("none")).is_err());
    }
}
