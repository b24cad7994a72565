# The restore task's second container (alpine), after the fetch container succeeded:
# replaces the user's directory with the archive's tree. Environment: USER_ID; EFS_ROOT
# (/efs) and SCRATCH (/scratch) only change in tests.
#
# While it works, the marker $ROOT/.restore-<user> exists: a restore that dies halfway
# leaves it, so a half-restored directory is detectable (the backup refuses to archive it)
# and the next run of this script starts over and finishes the job. The new tree is built
# next to the directory and swapped in by two renames.
set -eu
case "${USER_ID:-}" in ''|*[!A-Za-z0-9]*) echo "refusing unsafe USER_ID '${USER_ID:-}'"; exit 2;; esac
ROOT="${EFS_ROOT:-/efs}/foundry-instances"
D="$ROOT/$USER_ID"
OUT="${SCRATCH:-/scratch}"
MARK="$ROOT/.restore-$USER_ID"
NEW="$ROOT/.restore-$USER_ID.new"
OLD="$ROOT/.restore-$USER_ID.old"
[ -s "$OUT/world.tar.gz" ] || { echo "no archive to restore"; exit 4; }
: > "$MARK"
rm -rf "$NEW"
mkdir -p "$NEW"
tar -C "$NEW" -xzpf "$OUT/world.tar.gz"
if [ -e "$D" ]; then rm -rf "$OLD"; mv "$D" "$OLD"; fi
mv "$NEW" "$D"
rm -rf "$OLD"
rm -f "$MARK"
echo "restored $D"
