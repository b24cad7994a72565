//! World backups: the scripts the backup and restore tasks run, and the names they use.
//!
//! A user's backups are the versions of one object, `<userId>/world.tar.gz`, in the
//! deployment's backup bucket (versioned): a gzipped tar of the user's directory on EFS.
//! Each version carries the manifest digest of the tree it holds and what caused it as
//! metadata (`manifest`, `cause`). The bucket's lifecycle rules keep the latest version and
//! expire older ones (see template.yaml), so retention needs no sweep.
//!
//! Each task has two containers that share a task-local scratch volume: one from the AWS
//! CLI image (the S3 side) and one from alpine (tar, find, stat, sha256sum: the file side),
//! because no small, pinned, official image carries both. The backup runs [`WAIT_SCRIPT`],
//! [`ARCHIVE_SCRIPT`] then [`UPLOAD_SCRIPT`]; a restore [`FETCH_SCRIPT`] then [`RESTORE_SCRIPT`]. The tests run
//! these very texts with `sh` against a temporary directory and moto's S3.

/// The first step of a backup: waits until the ended run's tasks have stopped.
pub const WAIT_SCRIPT: &str = include_str!("backup/wait.sh");
/// The file side of a backup: the manifest, the skip when unchanged, the archive.
pub const ARCHIVE_SCRIPT: &str = include_str!("backup/archive.sh");
/// The S3 side of a backup: uploads the archive as a new version, unless it was skipped.
pub const UPLOAD_SCRIPT: &str = include_str!("backup/upload.sh");
/// The S3 side of a restore: downloads the chosen version.
pub const FETCH_SCRIPT: &str = include_str!("backup/fetch.sh");
/// The file side of a restore: replaces the directory, behind a marker file.
pub const RESTORE_SCRIPT: &str = include_str!("backup/restore.sh");

/// The key of `user_id`'s backup object; each backup is one of its versions.
pub fn object_key(user_id: &str) -> String {
    format!("{user_id}/{OBJECT_NAME}")
}

/// The name of the backup object under the user's prefix.
pub const OBJECT_NAME: &str = "world.tar.gz";

/// The object metadata key of the manifest digest (`x-amz-meta-manifest`).
pub const MANIFEST_METADATA: &str = "manifest";
/// The object metadata key of the cause (`x-amz-meta-cause`).
pub const CAUSE_METADATA: &str = "cause";

/// What caused a backup (the object's `cause` metadata; lower case and `-` only, which
/// the upload script checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The end of a run (stop, auto-shutdown, admin, a session's end, a task found dead).
    RunEnd,
    /// Before `restore-backup` replaces the directory.
    PreRestore,
    /// Before `update-version` changes the Foundry version the worlds next run with.
    PreUpdate,
    /// Before `destroy` erases the directory: the final backup.
    PreDestroy,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::RunEnd => "run-end",
            Cause::PreRestore => "pre-restore",
            Cause::PreUpdate => "pre-update",
            Cause::PreDestroy => "pre-destroy",
        }
    }
}

/// A manifest digest as the archive script writes it: 64 lower-case hex digits. Anything
/// else read back from S3 is not passed on (the script then archives, which is always safe).
pub fn valid_manifest(m: &str) -> bool {
    m.len() == 64 && m.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_under_the_users_prefix() {
        assert_eq!(object_key("123"), "123/world.tar.gz");
    }

    #[test]
    fn only_a_digest_is_a_manifest() {
        assert!(valid_manifest(&"a1".repeat(32)));
        assert!(!valid_manifest(&"A1".repeat(32)));
        assert!(!valid_manifest("abc"));
        assert!(!valid_manifest(&format!("{};rm -rf /", "a".repeat(56))));
    }

    #[test]
    fn every_script_refuses_an_unsafe_user_id_first() {
        for s in [WAIT_SCRIPT, ARCHIVE_SCRIPT, UPLOAD_SCRIPT, FETCH_SCRIPT, RESTORE_SCRIPT] {
            assert!(s.contains("set -eu"));
        }
        for s in [ARCHIVE_SCRIPT, UPLOAD_SCRIPT, FETCH_SCRIPT, RESTORE_SCRIPT] {
            assert!(s.contains(r#"*[!A-Za-z0-9]*) echo "refusing unsafe USER_ID"#));
        }
    }
}
