# The backup task's first container (alpine): the archive of one user's directory.
# Environment: USER_ID, PREVIOUS_MANIFEST (the manifest digest of the user's latest backup,
# empty when there is none); EFS_ROOT (/efs) and SCRATCH (/scratch) only change in tests.
# Writes to $SCRATCH: manifest.sha256, and world.tar.gz, or skip when the tree is unchanged.
set -eu
case "${USER_ID:-}" in ''|*[!A-Za-z0-9]*) echo "refusing unsafe USER_ID '${USER_ID:-}'"; exit 2;; esac
ROOT="${EFS_ROOT:-/efs}/foundry-instances"
D="$ROOT/$USER_ID"
OUT="${SCRATCH:-/scratch}"
if [ -e "$ROOT/.restore-$USER_ID" ]; then
  echo "a restore of $D is unfinished: not archiving half a world"; exit 3
fi
if [ ! -d "$D" ]; then echo "nothing to back up: $D does not exist"; exit 4; fi
rm -f "$OUT/skip" "$OUT/world.tar.gz" "$OUT/manifest.sha256"
# The manifest: every entry's name, type, size, mode, owner, inode, modification and change
# time, and a link's target, in a fixed order. Any write, rename, chmod or replacement of a
# file changes its change time, even when the size and modification time are put back.
M=$(cd "$D" && find . -print0 | LC_ALL=C sort -z \
  | xargs -0 -r stat -c '%n|%F|%s|%a|%u:%g|%i|%y|%z|%N' -- | sha256sum | cut -c1-64)
printf '%s\n' "$M" > "$OUT/manifest.sha256"
if [ "$M" = "${PREVIOUS_MANIFEST:-}" ]; then
  echo "unchanged since the last backup (manifest $M): not archived again"
  : > "$OUT/skip"
  exit 0
fi
tar -C "$D" -czf "$OUT/world.tar.gz.part" .
mv "$OUT/world.tar.gz.part" "$OUT/world.tar.gz"
echo "archived $D ($(wc -c < "$OUT/world.tar.gz") bytes, manifest $M)"
