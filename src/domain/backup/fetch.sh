# The restore task's first container (AWS CLI): downloads one version of the user's backup.
# Environment: USER_ID, BACKUP_BUCKET, BACKUP_VERSION; SCRATCH (/scratch) only changes in tests.
set -eu
case "${USER_ID:-}" in ''|*[!A-Za-z0-9]*) echo "refusing unsafe USER_ID '${USER_ID:-}'"; exit 2;; esac
[ -n "${BACKUP_VERSION:-}" ] || { echo "BACKUP_VERSION is required"; exit 2; }
OUT="${SCRATCH:-/scratch}"
rm -f "$OUT/world.tar.gz"
aws s3api get-object --bucket "$BACKUP_BUCKET" --key "$USER_ID/world.tar.gz" \
  --version-id "$BACKUP_VERSION" "$OUT/world.tar.gz.part" > /dev/null
mv "$OUT/world.tar.gz.part" "$OUT/world.tar.gz"
echo "fetched version $BACKUP_VERSION ($(wc -c < "$OUT/world.tar.gz") bytes)"
