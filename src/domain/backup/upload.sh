# The backup task's second container (AWS CLI), after the archive container succeeded:
# uploads the archive as the new version of the user's backup object, with the manifest
# digest and the cause as metadata. Environment: USER_ID, BACKUP_BUCKET, BACKUP_CAUSE;
# SCRATCH (/scratch) only changes in tests. Credentials: the task role's.
set -eu
case "${USER_ID:-}" in ''|*[!A-Za-z0-9]*) echo "refusing unsafe USER_ID '${USER_ID:-}'"; exit 2;; esac
case "${BACKUP_CAUSE:-}" in ''|*[!a-z-]*) echo "refusing BACKUP_CAUSE '${BACKUP_CAUSE:-}'"; exit 2;; esac
OUT="${SCRATCH:-/scratch}"
if [ -e "$OUT/skip" ]; then echo "nothing to upload: the tree is unchanged"; exit 0; fi
M=$(cat "$OUT/manifest.sha256")
aws s3 cp "$OUT/world.tar.gz" "s3://$BACKUP_BUCKET/$USER_ID/world.tar.gz" --only-show-errors \
  --content-type application/gzip --metadata "manifest=$M,cause=$BACKUP_CAUSE"
echo "uploaded s3://$BACKUP_BUCKET/$USER_ID/world.tar.gz ($(wc -c < "$OUT/world.tar.gz") bytes)"
