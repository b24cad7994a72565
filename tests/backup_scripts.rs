//! The backup and restore scripts themselves, for real: the very texts the tasks run
//! (`foundry_lambda::domain::backup`), run with `sh` against a temporary directory and the
//! tests' moto S3 through the AWS CLI of the test venv (`.venv/bin/aws`).

mod moto_env;

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use foundry_lambda::domain::backup::{self, ARCHIVE_SCRIPT, FETCH_SCRIPT, RESTORE_SCRIPT, UPLOAD_SCRIPT};
use foundry_lambda::managers::s3::{SdkS3, S3};
use moto_env::{local_aws, repo_root, sdk_config, unique_user_id};

/// A scratch area of one test: an EFS root and a task's scratch volume.
struct Area {
    base: PathBuf,
}

impl Area {
    fn new(name: &str) -> Area {
        let base = repo_root()
            .join("target/backup-scripts")
            .join(format!("{name}-{}", unique_user_id()));
        std::fs::create_dir_all(base.join("efs/foundry-instances")).unwrap();
        std::fs::create_dir_all(base.join("scratch")).unwrap();
        Area { base }
    }
    fn efs(&self) -> PathBuf {
        self.base.join("efs")
    }
    fn scratch(&self) -> PathBuf {
        self.base.join("scratch")
    }
    fn user_dir(&self, user: &str) -> PathBuf {
        self.efs().join("foundry-instances").join(user)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Runs `script` with `sh -c`, in a clean environment: the venv's AWS CLI on the PATH,
/// pointed at moto with test keys. → (exit code, stdout + stderr).
fn run(script: &str, area: &Area, env: &[(&str, &str)]) -> (i32, String) {
    let aws = local_aws();
    let venv_bin = repo_root().join(".venv/bin");
    assert!(
        venv_bin.join("aws").exists(),
        "the AWS CLI is missing from .venv: run `make venv`"
    );
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", venv_bin.display());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &area.base)
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("EFS_ROOT", area.efs())
        .env("SCRATCH", area.scratch());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("sh runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn s3() -> aws_sdk_s3::Client {
    let sdk = sdk_config().await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build())
}

/// A versioned bucket, as the template makes the backup bucket.
async fn backup_bucket(s3: &aws_sdk_s3::Client) -> String {
    let bucket = format!("foundry-backups-test-{}", unique_user_id());
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    bucket
}

/// The versions of the user's backup object, newest first: (version id, size).
async fn versions(s3: &aws_sdk_s3::Client, bucket: &str, user: &str) -> Vec<(String, i64)> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(backup::object_key(user))
        .send()
        .await
        .expect("list versions");
    let mut v: Vec<_> = out
        .versions()
        .iter()
        .map(|v| {
            (
                v.last_modified().map(|t| t.as_nanos()).unwrap_or_default(),
                v.version_id().unwrap_or_default().to_string(),
                v.size().unwrap_or_default(),
            )
        })
        .collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.0));
    v.into_iter().map(|(_, id, size)| (id, size)).collect()
}

/// The manifest metadata of the latest backup, as the function reads it before a launch.
async fn latest_manifest(s3: &aws_sdk_s3::Client, bucket: &str, user: &str) -> String {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(backup::object_key(user))
        .send()
        .await
        .expect("head");
    head.metadata()
        .and_then(|m| m.get(backup::MANIFEST_METADATA))
        .cloned()
        .expect("manifest metadata")
}

const LARGE: usize = 24 * 1024 * 1024 + 12_345;

/// A world directory with everything a tar round trip can get wrong.
fn make_tree(dir: &Path) {
    let f = |rel: &str, bytes: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    std::fs::create_dir_all(dir).unwrap();
    f("Config/options.json", br#"{"port":30000}"#);
    f("Data/worlds/w1/world.json", b"{\"title\":\"W1\"}");
    f("Data/worlds/w1/data/actors/000005.ldb", &[0u8, 1, 2, 255, 0, 10, 13]);
    f("Data/worlds/w1/data/actors/CURRENT", b"MANIFEST-000004\n");
    // Odd names: spaces, Unicode, a newline, shell metacharacters, a leading dash, a long name.
    f("Data/assets/space name.txt", b"spaces");
    f("Data/assets/ünïcødé ✓.json", "ünïcødé".as_bytes());
    f("Data/assets/new\nline", b"newline");
    f("Data/assets/quote'\"$(x)`;&|.md", b"meta");
    f("Data/assets/-leading-dash", b"dash");
    f("Data/assets/*glob?[x]", b"glob");
    f(&format!("Data/assets/{}", "n".repeat(200)), b"long");
    f("Data/.hidden", b"hidden");
    // A large file (multipart upload), not compressible.
    let mut large = Vec::with_capacity(LARGE);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while large.len() < LARGE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        large.extend_from_slice(&x.to_le_bytes());
    }
    large.truncate(LARGE);
    f("Data/assets/map.webp", &large);
    f("Data/assets/empty-file", b"");
    // Empty directories, at depth and at the top.
    std::fs::create_dir_all(dir.join("Data/modules/empty/deeper")).unwrap();
    std::fs::create_dir_all(dir.join("Logs")).unwrap();
    // Symlinks: relative, absolute, dangling, to a directory.
    symlink("worlds/w1", dir.join("Data/current-world")).unwrap();
    symlink("../Config/options.json", dir.join("Data/options-link")).unwrap();
    symlink("/nonexistent/target", dir.join("Data/dangling")).unwrap();
    // Modes.
    std::fs::set_permissions(dir.join("Config/options.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        dir.join("Data/assets/-leading-dash"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("Logs"), std::fs::Permissions::from_mode(0o750)).unwrap();
}

/// Every entry under `dir`: type, mode, owner, and for files their bytes and modification
/// time, for symlinks their target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let common = format!("mode={:o} owner={}:{}", md.mode() & 0o7777, md.uid(), md.gid());
            let desc = if md.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(root, &p, out);
                format!("dir {common}")
            } else {
                let bytes = std::fs::read(&p).unwrap();
                format!(
                    "file {common} mtime={} len={} bytes={:?}",
                    md.mtime(),
                    bytes.len(),
                    // The content itself, compared in full: a digest of every byte.
                    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b))
                        .wrapping_mul(0x0000_0100_0000_01b3))
                )
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    let md = std::fs::metadata(dir).unwrap();
    out.insert(PathBuf::from("."), format!("dir mode={:o}", md.mode() & 0o7777));
    walk(dir, dir, &mut out);
    out
}

/// Asserts that two trees are the same, byte for byte (and compares the large file in full).
fn assert_same_tree(a: &Path, b: &Path) {
    let (sa, sb) = (snapshot(a), snapshot(b));
    let only_a: Vec<_> = sa.keys().filter(|k| !sb.contains_key(*k)).collect();
    let only_b: Vec<_> = sb.keys().filter(|k| !sa.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "missing: {only_a:?}; extra: {only_b:?}"
    );
    for (k, v) in &sa {
        assert_eq!(Some(v), sb.get(k), "entry {k:?} differs");
    }
    for (k, v) in &sa {
        if v.starts_with("file") {
            assert!(
                std::fs::read(a.join(k)).unwrap() == std::fs::read(b.join(k)).unwrap(),
                "{k:?}"
            );
        }
    }
}

fn backup_run(area: &Area, user: &str, bucket: &str, previous: &str) -> String {
    let (code, out) = run(
        ARCHIVE_SCRIPT,
        area,
        &[("USER_ID", user), ("PREVIOUS_MANIFEST", previous)],
    );
    assert_eq!(code, 0, "archive failed: {out}");
    let (code, out2) = run(
        UPLOAD_SCRIPT,
        area,
        &[
            ("USER_ID", user),
            ("BACKUP_BUCKET", bucket),
            ("BACKUP_CAUSE", "run-end"),
        ],
    );
    assert_eq!(code, 0, "upload failed: {out2}");
    format!("{out}{out2}")
}

fn restore_run(area: &Area, user: &str, bucket: &str, version: &str) -> String {
    let (code, out) = run(
        FETCH_SCRIPT,
        area,
        &[
            ("USER_ID", user),
            ("BACKUP_BUCKET", bucket),
            ("BACKUP_VERSION", version),
        ],
    );
    assert_eq!(code, 0, "fetch failed: {out}");
    let (code, out2) = run(RESTORE_SCRIPT, area, &[("USER_ID", user)]);
    assert_eq!(code, 0, "restore failed: {out2}");
    format!("{out}{out2}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_the_tree_byte_for_byte() {
    let s3 = s3().await;
    let bucket = backup_bucket(&s3).await;
    let user = unique_user_id();
    let src = Area::new("src");
    make_tree(&src.user_dir(&user));

    let out = backup_run(&src, &user, &bucket, "");
    assert!(out.contains("archived") && out.contains("uploaded"), "{out}");
    let v = versions(&s3, &bucket, &user).await;
    assert_eq!(v.len(), 1, "one backup");
    assert!(
        v[0].1 > (LARGE / 2) as i64,
        "the archive holds the large file: {} bytes",
        v[0].1
    );
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(backup::object_key(&user))
        .send()
        .await
        .unwrap();
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get(backup::CAUSE_METADATA).map(String::as_str), Some("run-end"));
    assert!(backup::valid_manifest(&latest_manifest(&s3, &bucket, &user).await));

    // Restore into another EFS over an existing directory with other content.
    let dst = Area::new("dst");
    std::fs::create_dir_all(dst.user_dir(&user).join("Data/worlds/stale")).unwrap();
    std::fs::write(dst.user_dir(&user).join("Data/worlds/stale/x"), b"stale").unwrap();
    let out = restore_run(&dst, &user, &bucket, &v[0].0);
    assert!(out.contains("restored"), "{out}");
    assert_same_tree(&src.user_dir(&user), &dst.user_dir(&user));
    let leftovers: Vec<_> = std::fs::read_dir(dst.efs().join("foundry-instances"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        [std::ffi::OsString::from(&user)],
        "no marker, no .new, no .old"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_tree_is_not_archived_again_and_a_changed_one_is() {
    let s3 = s3().await;
    let bucket = backup_bucket(&s3).await;
    let user = unique_user_id();
    let area = Area::new("skip");
    let dir = area.user_dir(&user);
    make_tree(&dir);
    backup_run(&area, &user, &bucket, "");
    let first = latest_manifest(&s3, &bucket, &user).await;

    // Unchanged: skipped, no new version.
    let out = backup_run(&area, &user, &bucket, &first);
    assert!(out.contains("unchanged") && out.contains("nothing to upload"), "{out}");
    assert_eq!(
        versions(&s3, &bucket, &user).await.len(),
        1,
        "an unchanged tree is skipped"
    );

    // A change that keeps the size and puts the modification time back (as a module update
    // from an archive can): still a change.
    let db = dir.join("Data/worlds/w1/data/actors/000005.ldb");
    let mtime = std::fs::metadata(&db).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&db, [9u8, 9, 9, 9, 9, 9, 9]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&db)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 7);
    let out = backup_run(&area, &user, &bucket, &first);
    assert!(
        out.contains("archived") && out.contains("uploaded"),
        "a changed tree is archived: {out}"
    );
    let v = versions(&s3, &bucket, &user).await;
    assert_eq!(v.len(), 2, "a new version");
    // The function's S3 adapter reads the same versions and metadata over the wire.
    let sdk = SdkS3::new(&sdk_config().await);
    let listed = sdk.list_versions(&bucket, &backup::object_key(&user)).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|l| (l.version_id.clone(), l.size))
            .collect::<Vec<_>>(),
        v,
        "newest first"
    );
    assert!(listed[0].is_latest && !listed[1].is_latest);
    let head = sdk
        .head_object(&bucket, &backup::object_key(&user), None)
        .await
        .unwrap()
        .unwrap();
    let old = sdk
        .head_object(&bucket, &backup::object_key(&user), Some(&v[1].0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.metadata.get("manifest"), Some(&first));
    assert_eq!(head.metadata.get("cause").map(String::as_str), Some("run-end"));
    assert!(head.last_modified > 0);
    assert!(sdk
        .head_object(&bucket, "nobody/world.tar.gz", None)
        .await
        .unwrap()
        .is_none());
    let second = latest_manifest(&s3, &bucket, &user).await;
    assert_ne!(second, first);

    // A new empty directory is a change too.
    std::fs::create_dir_all(dir.join("Data/modules/empty/deeper/new")).unwrap();
    let out = backup_run(&area, &user, &bucket, &second);
    assert!(out.contains("uploaded"), "{out}");
    assert_eq!(versions(&s3, &bucket, &user).await.len(), 3);

    // The older version still restores the content it held.
    let dst = Area::new("skip-dst");
    restore_run(&dst, &user, &bucket, &v[0].0);
    assert_eq!(
        std::fs::read(dst.user_dir(&user).join("Data/worlds/w1/data/actors/000005.ldb")).unwrap(),
        [9u8; 7]
    );
    assert!(!dst.user_dir(&user).join("Data/modules/empty/deeper/new").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_done_restore_is_detected_and_the_next_one_finishes_it() {
    let s3 = s3().await;
    let bucket = backup_bucket(&s3).await;
    let user = unique_user_id();
    let area = Area::new("resume");
    make_tree(&area.user_dir(&user));
    backup_run(&area, &user, &bucket, "");
    let version = versions(&s3, &bucket, &user).await[0].0.clone();
    let before = snapshot(&area.user_dir(&user));

    // A restore that died between its two renames: the marker, a half-extracted new tree,
    // the old tree moved aside, and no directory.
    let root = area.efs().join("foundry-instances");
    std::fs::write(root.join(format!(".restore-{user}")), b"").unwrap();
    std::fs::create_dir_all(root.join(format!(".restore-{user}.new/Data"))).unwrap();
    std::fs::rename(area.user_dir(&user), root.join(format!(".restore-{user}.old"))).unwrap();

    // The backup refuses to archive it.
    let (code, out) = run(ARCHIVE_SCRIPT, &area, &[("USER_ID", &user), ("PREVIOUS_MANIFEST", "")]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("unfinished"), "{out}");

    // The next restore finishes the job.
    restore_run(&area, &user, &bucket, &version);
    assert_eq!(snapshot(&area.user_dir(&user)), before, "the whole tree is back");
    assert!(!root.join(format!(".restore-{user}")).exists());
    assert!(!root.join(format!(".restore-{user}.old")).exists());
    assert!(!root.join(format!(".restore-{user}.new")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scripts_refuse_an_unsafe_user_id() {
    let area = Area::new("unsafe");
    let (code, out) = run(backup::WAIT_SCRIPT, &area, &[("AFTER_TASKS", ""), ("CLUSTER", "c")]);
    assert_eq!(code, 0, "nothing to wait for: {out}");
    let (code, out) = run(
        backup::WAIT_SCRIPT,
        &area,
        &[("AFTER_TASKS", "arn;rm -rf /"), ("CLUSTER", "c")],
    );
    assert_eq!(code, 2, "{out}");
    for script in [ARCHIVE_SCRIPT, UPLOAD_SCRIPT, FETCH_SCRIPT, RESTORE_SCRIPT] {
        for bad in ["", "../x", "a b", "*"] {
            let (code, out) = run(
                script,
                &area,
                &[
                    ("USER_ID", bad),
                    ("BACKUP_BUCKET", "b"),
                    ("BACKUP_CAUSE", "run-end"),
                    ("BACKUP_VERSION", "v"),
                ],
            );
            assert_eq!(code, 2, "{bad:?}: {out}");
        }
    }
}
