#!/usr/bin/env python3
"""IAM coverage check: holds the roles of template.yaml against every AWS request the function
made in the moto-backed tests.

The tests record each request (the SDK interceptor, src/managers/instrument.rs, with
FOUNDRY_AWS_REQUEST_LOG set): service, operation, URI and the fields that name a resource. This
script

1. maps each operation to the IAM action(s) AWS authorizes it with, from policy-sentry's copy of
   the Service Authorization Reference (an action whose name is the operation's, or the one
   action whose API link names the operation), plus the few cases that reference documents
   separately (OPERATION_ACTIONS below, each with its source) and the actions a parameter
   adds (tags on create, iam:PassRole for a task definition's roles, a transaction's items);
2. builds the resource ARN each action is authorized on, and checks that it has the shape
   policy-sentry gives for that action;
3. resolves the template's role statements (!Sub, !Ref, !If, !Join, ...) with the values of
   the test deployment (the env file of the tests' local AWS);
4. evaluates them as IAM does for Allow statements: action and resource patterns, and the
   conditions (String*/Arn* operators, ...IfExists, ForAllValues:) on the request's context
   keys;
5. fails on a request that no statement allows (naming it), and on a granted action or
   resource pattern that no request used, unless UNUSED_GRANTS gives the reason.

It does the same for the tasks the function starts: the task execution role (the secrets and
log groups each registered task definition names) and the task role (EFS IAM authorization),
and for the world backup and restore tasks the backup task role (the calls their scripts make
with it, BACKUP_TASK_CALLS below).

The template is resolved with Backups=on, so that the backup grants are held against the
requests too: its backup bucket and backup task role are the names tests/backups_moto.rs
stands in for them (BACKUP_BUCKET, BACKUP_TASK_ROLE below).

Usage: iam_check.py --requests target/iam/requests.jsonl --env target/local-aws/test-env-5067
         [--template template.yaml] [--without ACTION]   (drop ACTION from the role first)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

from policy_sentry.querying.actions import get_action_data, get_actions_for_service  # noqa: E402

ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
PARTITION = "aws"

# The template's BackupBucket (vtt-world-backups-<account>-<region>) and BackupTaskRole, as
# tests/backups_moto.rs makes and names them.
BACKUP_BUCKET = f"vtt-world-backups-{ACCOUNT}-{REGION}"
BACKUP_TASK_ROLE = f"arn:{PARTITION}:iam::{ACCOUNT}:role/foundry-world-backup-task"

# What the scripts of the backup and restore tasks (src/domain/backup/*.sh) do with the backup
# task role, per task family: (action, resource with {bucket}, {cluster}; the script's call).
BACKUP_TASK_CALLS = {
    "foundry-world-backup": [
        ("ecs:DescribeTasks", "arn:aws:ecs:us-east-1:123456789012:task/{cluster}/0123456789abcdef",
         "wait.sh: aws ecs wait tasks-stopped"),
        ("s3:PutObject", "arn:aws:s3:::{bucket}/123456789012345678/world.tar.gz", "upload.sh: aws s3 cp"),
    ],
    "foundry-world-restore": [
        ("s3:GetObjectVersion", "arn:aws:s3:::{bucket}/123456789012345678/world.tar.gz",
         "fetch.sh: aws s3api get-object --version-id"),
    ],
}

# The SDK's service names (Metadata::service) → IAM service prefixes.
PREFIX = {
    "DynamoDB": "dynamodb",
    "ECS": "ecs",
    "EFS": "elasticfilesystem",
    "S3": "s3",
    "IAM": "iam",
    "Route 53": "route53",
    "Elastic Load Balancing v2": "elasticloadbalancing",
    "Secrets Manager": "secretsmanager",
    "CloudWatch Logs": "logs",
}

# An object action → its form for a request that names a versionId.
VERSION_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
}

# Operations whose action is neither named like them nor the single action whose API link names
# them in the Service Authorization Reference.
OPERATION_ACTIONS = {
    # S3 API reference, HeadBucket: "you must have permissions to perform the s3:ListBucket action"
    ("s3", "HeadBucket"): ["s3:ListBucket"],
    # S3 API reference, HeadObject: "you must have the s3:GetObject permission" (a request
    # for a versionId is authorized as s3:GetObjectVersion; the function asks for the latest).
    ("s3", "HeadObject"): ["s3:GetObject"],
    # S3 API reference, DeleteObjects: the request is authorized as s3:DeleteObject per key
    # (s3:DeleteObjectVersion for a key with a VersionId); handled per key in s3_requests().
    ("s3", "DeleteObjects"): [],
    # DynamoDB developer guide, "Using IAM with DynamoDB transactions": TransactWriteItems is
    # authorized per item (PutItem, UpdateItem, DeleteItem, ConditionCheckItem); per item below.
    ("dynamodb", "TransactWriteItems"): [],
}

# Operations the tests make through an adapter that no action calls: (the adapter's method, why).
# The check verifies the first part: no code under src/ outside the adapter and the fakes calls it.
TEST_ONLY: dict[tuple[str, str], tuple[str, str, str]] = {}


def check_test_only() -> None:
    src = cfn.ROOT / "src"
    for (service, op), (method, adapter, _why) in TEST_ONLY.items():
        for path in src.rglob("*.rs"):
            rel = path.relative_to(cfn.ROOT).as_posix()
            if rel == adapter or rel.startswith("src/testing/"):
                continue
            if f".{method}(" in path.read_text():
                raise SystemExit(f"iam_check: {rel} calls .{method}(, so {service} {op} is no longer "
                                 "test-only: remove it from TEST_ONLY and grant it")


# Granted but never requested by the code in the tests, each with the reason it stays:
# (role, statement Sid, "action" or "resource", glob of the action or resource pattern, reason).
UNUSED_GRANTS = [
    ("ExecutionRole", "AsyncFailureQueue", "action", "sqs:SendMessage",
     "Lambda itself sends a failed asynchronous invocation to the on-failure queue with the "
     "function's role; the code never calls SQS"),
    ("ExecutionRole", "AsyncFailureQueue", "resource", "*", "(the same)"),
    ("ExecutionRole", "OwnLogs", "action", "logs:*",
     "the Lambda service writes the function's own log stream with its role; the code only prints"),
    ("ExecutionRole", "OwnLogs", "resource", "*", "(the same)"),
    ("ExecutionRole", "UserBuckets", "action", "s3:ListBucket",
     "HeadBucket, only when CreateBucket answers BucketAlreadyExists (S3 in us-east-1 may, for one's "
     "own bucket); moto answers BucketAlreadyOwnedByYou, so no test reaches it"),
    ("BackupTaskRole", "WriteBackups", "action", "s3:AbortMultipartUpload",
     "the AWS CLI aborts a multipart upload of a large archive when a part fails; no test fails one"),
    ("*", "*", "resource", "*:*",
     "the \":*\" form of a log-group ARN, which CloudWatch Logs reports; IAM's log-group resource "
     "has no suffix, so requests match the plain form"),
]

# Tests that call an adapter with names no action ever uses (to count a failed call): requests
# naming these are not the function's. The check verifies that src/domain/names.rs uses none.
FIXTURE_NAMES = {
    "telemetry-": "tests/aws_telemetry.rs names its buckets, users and secrets telemetry-<n>",
    "missing-": "tests/aws_health.rs probes a table and a cluster named missing-<id> for their not-found codes",
    "fs-00000000": "tests/aws_health.rs probes a file system fs-00000000<id> for its not-found code",
    "Z0MISSING": "tests/aws_health.rs probes a hosted zone Z0MISSING… for its not-found code",
    "foundry-backups-test-": "tests/backup_scripts.rs stands in for the deployment's backup bucket with foundry-backups-test-<n> (the template grants the real one only with Backups=on)",
    "discord-bot-token-": "tests/notifications_moto.rs stands in for the deployment's bot-token secret with discord-bot-token-<n> (the template grants the real one, DiscordTokenSecret, only with Notifications=on)",
}


# A task definition's awslogs group that only a test fixture uses: tests/aws_compute_storage.rs
# registers one of the original's shape (its aws-config-creator sidecar logs to /ecs/<family>).
# The check verifies that src/domain/taskdef.rs never builds it (no legacy_log_group there).
FIXTURE_TASK_LOG_GROUP = re.compile(r"^/ecs/")


def check_fixture_names() -> None:
    names_rs = (cfn.ROOT / "src/domain/names.rs").read_text()
    for prefix in FIXTURE_NAMES:
        if f'"{prefix}' in names_rs:
            raise SystemExit(f"iam_check: src/domain/names.rs uses {prefix!r}: drop it from FIXTURE_NAMES")
    if "legacy_log_group" in (cfn.ROOT / "src/domain/taskdef.rs").read_text():
        raise SystemExit("iam_check: src/domain/taskdef.rs uses the legacy log group: "
                         "drop FIXTURE_TASK_LOG_GROUP and grant it to the task execution role")


def is_fixture(rec: dict) -> bool:
    text = rec["uri"] + json.dumps(rec.get("fields", []))
    return any(re.search(r"[/\"=]" + re.escape(p), text) for p in FIXTURE_NAMES)


def reason_for(unused: tuple) -> str | None:
    role, sid, kind, what = unused
    for r, s, k, glob, why in UNUSED_GRANTS:
        if fnmatch.fnmatchcase(role, r) and fnmatch.fnmatchcase(sid, s) and k == kind \
                and fnmatch.fnmatchcase(what, glob):
            return why
    return None

# The ARN pattern (policy-sentry's resource_arn_format) of each resource type an action is
# authorized on, as a regular expression.
_ARN_VAR = re.compile(r"\$\{[^}]+\}")


def arn_format_regex(fmt: str) -> re.Pattern:
    parts = _ARN_VAR.split(fmt)
    return re.compile("^" + ".+".join(re.escape(p) for p in parts) + "$")


_ACTIONS_CACHE: dict[str, list[dict]] = {}


def action_rows(action: str) -> list[dict]:
    if action not in _ACTIONS_CACHE:
        svc, name = action.split(":")
        _ACTIONS_CACHE[action] = get_action_data(svc, name).get(svc, [])
    return _ACTIONS_CACHE[action]


_OP_CACHE: dict[str, dict[str, list[str]]] = {}


def operation_actions(prefix: str, operation: str) -> list[str]:
    """The IAM actions of `operation`, from the Service Authorization Reference."""
    if (prefix, operation) in OPERATION_ACTIONS:
        return OPERATION_ACTIONS[(prefix, operation)]
    if prefix not in _OP_CACHE:
        names: dict[str, list[str]] = defaultdict(list)
        linked: dict[str, set[str]] = defaultdict(set)
        for action in get_actions_for_service(prefix):
            names[action.split(":")[1].lower()].append(action)
            for row in action_rows(action):
                m = re.search(r"API_([A-Za-z0-9]+)\.html", row.get("api_documentation_link") or "")
                if m:
                    linked[m.group(1)].add(row["action"])
        _OP_CACHE[prefix] = {"names": names, "linked": {k: sorted(v) for k, v in linked.items()}}
    db = _OP_CACHE[prefix]
    if operation.lower() in db["names"]:
        return db["names"][operation.lower()][:1]
    linked = db["linked"].get(operation, [])
    if len(linked) == 1:
        return linked
    raise SystemExit(f"iam_check: no single IAM action for {prefix} {operation} (linked: {linked}); "
                     "add it to OPERATION_ACTIONS with its source")


def check_arn_shape(action: str, arn: str) -> None:
    """Fails when `arn` is not a resource type policy-sentry lists for `action`."""
    formats = [r.get("resource_arn_format", "*") for r in action_rows(action)]
    if arn == "*":
        if "*" not in formats:
            raise SystemExit(f"iam_check: {action} needs a resource ({formats}), the request gave none")
        return
    if not any(f != "*" and arn_format_regex(f).match(arn) for f in formats):
        raise SystemExit(f"iam_check: {arn} is not a resource of {action} ({formats})")


# --------------------------------------------------------------------------------------------
# Requests

@dataclass
class Auth:
    """One authorization AWS makes for a request: an action on a resource, with context keys."""
    action: str
    resource: str
    context: dict[str, list[str]] = field(default_factory=dict)
    request: str = ""  # what the report names

    def key(self) -> tuple:
        return (self.action, self.resource, json.dumps(self.context, sort_keys=True))


def arn(service: str, rest: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{rest}"


def fields_of(rec: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for path, value in rec.get("fields", []):
        out[re.sub(r"\.\d+", "", path)].append(value if isinstance(value, str) else json.dumps(value))
    return out


def tags_of(rec: dict, key: str = "Tags", source: str = "fields") -> dict[str, str]:
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    for path, value in rec.get(source, []):
        parts = path.split(".")
        if key not in parts:
            continue
        i = parts.index(key)
        rest = parts[i + 1:]
        if len(rest) == 2 and rest[0].isdigit():
            tags[rest[0]][rest[1].lower()] = value
        elif len(rest) == 1 and not rest[0].isdigit():  # a map of tags
            tags[rest[0]] = {"key": rest[0], "value": value}
    return {t.get("key"): t.get("value", "") for t in tags.values() if "key" in t}


class Requests:
    """Turns records into authorizations, keeping what later requests need (tags by id)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.access_point_tags: dict[str, dict[str, str]] = {}
        self.user_paths: dict[str, str] = {}
        self.task_definitions: list[dict] = []
        self.run_families: set[str] = set()

    def cluster_arn(self, cluster: str | None) -> str:
        cluster = cluster or "default"
        return cluster if cluster.startswith("arn:") else arn("ecs", f"cluster/{cluster}")

    def auths(self, rec: dict) -> list[Auth]:
        prefix = PREFIX[rec["service"]]
        op = rec["operation"]
        f = fields_of(rec)
        name = f"{rec['service']} {op}"
        out = getattr(self, f"_{prefix}")(rec, op, f)
        for a in out:
            a.request = name + " " + a.request if a.request else name
        return out

    # --- DynamoDB
    def _dynamodb(self, rec, op, f):
        if op == "TransactWriteItems":
            out = []
            for path, table in rec["fields"]:
                m = re.match(r"TransactItems\.\d+\.(\w+)\.TableName$", path)
                if m:
                    action = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                              "ConditionCheck": "ConditionCheckItem"}[m.group(1)]
                    out.append(Auth(f"dynamodb:{action}", arn("dynamodb", f"table/{table}"),
                                    request=f"(item {m.group(1)} on {table})"))
            return out
        table = f["TableName"][0]
        resource = f"table/{table}" + (f"/index/{f['IndexName'][0]}" if f.get("IndexName") else "")
        return [Auth(a, arn("dynamodb", resource), request=f"on {resource}")
                for a in operation_actions("dynamodb", op)]

    # --- ECS
    def _ecs(self, rec, op, f):
        (action,) = operation_actions("ecs", op)
        cluster = self.cluster_arn((f.get("cluster") or [None])[0])
        if op == "RegisterTaskDefinition":
            family = f["family"][0]
            td = arn("ecs", f"task-definition/{family}:*")
            out = [Auth(action, "*", request=f"family {family}")]
            for role in f.get("taskRoleArn", []) + f.get("executionRoleArn", []):
                out.append(Auth("iam:PassRole", role, {"iam:PassedToService": ["ecs-tasks.amazonaws.com"]},
                                request=f"family {family} passes {role}"))
            if tags_of(rec, "tags"):
                out.append(Auth("ecs:TagResource", td, {"ecs:CreateAction": ["RegisterTaskDefinition"]},
                                request=f"family {family} with tags"))
            self.task_definitions.append(rec)
            return out
        if op == "RunTask":
            td = f["taskDefinition"][0]
            td_arn = td if td.startswith("arn:") else arn("ecs", f"task-definition/{td}")
            if ":" not in td_arn.split("/")[-1]:
                td_arn += ":1"  # the family's latest revision
            self.run_families.add(td_arn.split("/")[-1].split(":")[0])
            return [Auth(action, td_arn, {"ecs:cluster": [cluster]}, request=f"of {td} in {cluster}")]
        if op in ("StopTask", "DescribeTasks"):
            tasks = f.get("tasks", []) + f.get("task", [])
            out = []
            for t in tasks:
                t_arn = t if t.startswith("arn:") else arn("ecs", f"task/{cluster.split('/')[-1]}/{t}")
                out.append(Auth(action, t_arn, {"ecs:cluster": [cluster]}, request=f"task {t_arn}"))
            return out
        if op == "DescribeClusters":
            return [Auth(action, self.cluster_arn(c), request=f"cluster {c}") for c in f.get("clusters", [])] or [
                Auth(action, self.cluster_arn(None), request="the default cluster")]
        if op == "ListTasks":
            return [Auth(action, "*", {"ecs:cluster": [cluster]},
                         request=f"in {cluster} startedBy={(f.get('startedBy') or ['-'])[0]}")]
        if op == "DescribeTaskDefinition":
            # A definition registered before the recording began: its answer says what ECS
            # will do with the task's roles.
            described = [[p[len("taskDefinition."):], v] for p, v in rec.get("response", [])
                         if p.startswith("taskDefinition.")]
            if any(p == "family" for p, _ in described):
                self.task_definitions.append({"fields": described})
            out = [Auth(action, "*", request=f"{f['taskDefinition'][0]}")]
            if "TAGS" in f.get("include", []):
                # docs/deployment.md: ECS documents no separate permission for include=TAGS.
                out[0].request += " include=TAGS"
            return out
        return [Auth(action, "*", request=" ".join(v[0] for v in f.values() if v))]

    # --- EFS
    def learn_access_points(self, rec: dict) -> None:
        """Tags of the access points an EFS answer describes (DescribeAccessPoints)."""
        aps: dict[str, dict] = defaultdict(dict)
        for path, value in rec.get("response", []):
            m = re.match(r"AccessPoints\.(\d+)\.(AccessPointId|Tags\.(\d+)\.(Key|Value))$", path)
            if m:
                aps[m.group(1)][m.group(2)] = value
        for ap in aps.values():
            if "AccessPointId" in ap:
                tags = {}
                for k, v in ap.items():
                    if k.endswith(".Key"):
                        tags[v] = ap.get(k[:-4] + ".Value", "")
                self.access_point_tags[ap["AccessPointId"]] = tags

    def _elasticfilesystem(self, rec, op, f):
        (action,) = operation_actions("elasticfilesystem", op)
        if op == "CreateAccessPoint":
            fs = f["FileSystemId"][0]
            tags = tags_of(rec)
            out = [Auth(action, arn("elasticfilesystem", f"file-system/{fs}"), request=f"on {fs}")]
            resp = dict((re.sub(r"\.\d+", "", p), v) for p, v in rec.get("response", []))
            ap = resp.get("AccessPointId", "fsap-unknown")
            self.access_point_tags[ap] = tags
            if tags:
                out.append(Auth("elasticfilesystem:TagResource", arn("elasticfilesystem", f"access-point/{ap}"),
                                {"elasticfilesystem:CreateAction": ["CreateAccessPoint"]},
                                request=f"{ap} with tags"))
            return out
        uri = urlparse(rec["uri"])
        q = parse_qs(uri.query)
        ap = (q.get("AccessPointId") or [None])[0]
        if op == "DeleteAccessPoint":
            ap = unquote(uri.path.rstrip("/").split("/")[-1])
        self.learn_access_points(rec)
        if ap:
            known = ap in self.access_point_tags
            ctx = {f"aws:ResourceTag/{k}": [v] for k, v in self.access_point_tags.get(ap, {}).items()}
            note = "" if known else " (not known to exist: no tags)"
            if op == "DeleteAccessPoint":
                self.access_point_tags.pop(ap, None)  # gone, and its tags with it
            return [Auth(action, arn("elasticfilesystem", f"access-point/{ap}"), ctx, request=ap + note)]
        fs = q["FileSystemId"][0]
        return [Auth(action, arn("elasticfilesystem", f"file-system/{fs}"), request=f"on {fs}")]

    # --- S3 (path-style: /bucket[/key])
    def _s3(self, rec, op, f):
        uri = urlparse(rec["uri"])
        parts = uri.path.lstrip("/").split("/", 1)
        bucket = parts[0]
        if not bucket:  # ListBuckets names no bucket (and takes no resource-level permission)
            return [Auth(a, "*", request="every bucket") for a in operation_actions("s3", op)]
        b_arn = f"arn:{PARTITION}:s3:::{bucket}"
        if op == "DeleteObjects":
            out = []
            keys = [v for p, v in rec["fields"] if p == "Key"]
            versions = [v for p, v in rec["fields"] if p == "VersionId"]
            for k in keys:
                out.append(Auth("s3:DeleteObject", f"{b_arn}/{k}", request=f"{bucket}/{k}"))
            if versions:
                out += [Auth("s3:DeleteObjectVersion", f"{b_arn}/{k}", request=f"{bucket}/{k} (versions)")
                        for k in keys]
            return out
        if len(parts) > 1 and parts[1]:
            actions = operation_actions("s3", op)
            if "versionId" in parse_qs(uri.query):
                # S3 API reference: a request for one version is authorized as the action's
                # Version form (HeadObject as s3:GetObjectVersion, PutObjectTagging as
                # s3:PutObjectVersionTagging).
                actions = [VERSION_ACTIONS.get(a, a) for a in actions]
            return [Auth(a, f"{b_arn}/{unquote(parts[1])}", request=f"{bucket}/{parts[1]}")
                    for a in actions]
        return [Auth(a, b_arn, request=bucket) for a in operation_actions("s3", op)]

    # --- IAM (query protocol)
    def _iam(self, rec, op, f):
        (action,) = operation_actions("iam", op)
        if op == "ListUsers":  # names no user (and takes no resource-level permission)
            return [Auth(action, "*", request=f"path {(f.get('PathPrefix') or ['/'])[0]}")]
        user = f["UserName"][0]
        if op == "CreateUser":
            self.user_paths[user] = (f.get("Path") or ["/"])[0]
        # A user no recorded CreateUser made (a destroy of a create that died first) is taken
        # to be under the path the function creates its users with.
        paths = set(self.user_paths.values())
        path = self.user_paths.get(user, paths.pop() if len(paths) == 1 else "/")
        u_arn = f"arn:{PARTITION}:iam::{ACCOUNT}:user{path}{user}"
        out = [Auth(action, u_arn, request=f"{path}{user}")]
        if op == "CreateUser" and any(k.startswith("Tags.member") for k in f):
            out.append(Auth("iam:TagUser", u_arn, request=f"{path}{user} with tags"))
        return out

    # --- Route 53
    def _route53(self, rec, op, f):
        (action,) = operation_actions("route53", op)
        zone = urlparse(rec["uri"]).path.split("/hostedzone/")[1].split("/")[0]
        resource = f"arn:{PARTITION}:route53:::hostedzone/{zone}"
        if op == "ChangeResourceRecordSets":
            names = [n.lower().rstrip(".") for n in f.get("Name", [])]
            ctx = {
                "route53:ChangeResourceRecordSetsRecordTypes": f.get("Type", []),
                "route53:ChangeResourceRecordSetsNormalizedRecordNames": names,
                "route53:ChangeResourceRecordSetsActions": f.get("Action", []),
            }
            return [Auth(action, resource, ctx, request=f"{','.join(f.get('Action', []))} {','.join(names)}")]
        return [Auth(action, resource, request=zone)]

    # --- ELBv2 (query protocol)
    def _elasticloadbalancing(self, rec, op, f):
        (action,) = operation_actions("elasticloadbalancing", op)
        if op == "CreateTargetGroup":
            name = f["Name"][0]
            tg = arn("elasticloadbalancing", f"targetgroup/{name}/0123456789abcdef")
            out = [Auth(action, tg, request=name)]
            if any(k.startswith("Tags.member") for k in f):
                out.append(Auth("elasticloadbalancing:AddTags", tg, {"elasticloadbalancing:CreateAction": [op]},
                                request=f"{name} with tags"))
            return out
        if op == "CreateRule":
            listener = f["ListenerArn"][0]
            out = [Auth(action, listener, request=listener)]
            if any(k.startswith("Tags.member") for k in f):
                rule = listener.replace(":listener/", ":listener-rule/") + "/0123456789abcdef"
                out.append(Auth("elasticloadbalancing:AddTags", rule, {"elasticloadbalancing:CreateAction": [op]},
                                request="new rule with tags"))
            return out
        for key in ("TargetGroupArn", "RuleArn"):
            if key in f:
                return [Auth(action, f[key][0], request=f[key][0])]
        return [Auth(action, "*", request="")]

    # --- Secrets Manager
    def _secretsmanager(self, rec, op, f):
        (action,) = operation_actions("secretsmanager", op)
        named = f.get("SecretId") or f.get("Name")
        if not named:  # ListSecrets names no secret (and takes no resource-level permission)
            return [Auth(action, "*", request="")]
        name = named[0]
        s_arn = name if name.startswith("arn:") else arn("secretsmanager", f"secret:{name}-AbCdEf")
        out = [Auth(action, s_arn, request=name)]
        if op == "CreateSecret" and tags_of(rec):
            out.append(Auth("secretsmanager:TagResource", s_arn, request=f"{name} with tags"))
        return out

    # --- CloudWatch Logs
    def _logs(self, rec, op, f):
        (action,) = operation_actions("logs", op)
        if op == "DescribeLogGroups":
            prefix = (f.get("logGroupNamePrefix") or [""])[0]
            # DescribeLogGroups takes no resource-level permission.
            return [Auth(action, "*", request=f"prefix {prefix}")]
        group = f["logGroupName"][0]
        g_arn = arn("logs", f"log-group:{group}")
        out = [Auth(action, g_arn, request=group)]
        if op == "CreateLogGroup" and tags_of(rec, "tags"):
            # CloudWatch Logs API reference, CreateLogGroup: tagging at creation needs
            # logs:TagResource (TagLogGroup is the deprecated operation's action).
            out.append(Auth("logs:TagResource", g_arn, request=f"{group} with tags"))
        return out

    # --- What a registered task definition makes ECS do with its roles
    def task_auths(self) -> tuple[list[Auth], list[Auth], list[Auth]]:
        """(execution-role, task-role, backup-task-role authorizations) of every registered
        task definition: the secrets its containers read, the log groups awslogs writes (and
        creates), EFS IAM authorization; the backup and restore scripts' calls."""
        execution, task, backup_task = [], [], []
        for rec in self.task_definitions:
            f = fields_of(rec)
            family = f["family"][0]
            if f.get("taskRoleArn", [None])[0] == BACKUP_TASK_ROLE:
                for action, resource, why in BACKUP_TASK_CALLS.get(family, []):
                    res = resource.format(bucket=BACKUP_BUCKET, cluster=self.env["CLUSTER_NAME"])
                    backup_task.append(Auth(action, res, request=f"task {family}: {why}"))
            for value_from in f.get("containerDefinitions.secrets.valueFrom", []):
                # arn:aws:secretsmanager:region:account:secret:name-AbCdEf[:json-key:stage:version]
                secret = ":".join(value_from.split(":")[:7])
                execution.append(Auth("secretsmanager:GetSecretValue", secret,
                                      request=f"task {family}: secret {value_from.split(':')[7:8]}"))
            groups = f.get("containerDefinitions.logConfiguration.options.awslogs-group", [])
            creates = f.get("containerDefinitions.logConfiguration.options.awslogs-create-group", [])
            for i, group in enumerate(groups):
                if FIXTURE_TASK_LOG_GROUP.match(group):
                    continue
                g_arn = arn("logs", f"log-group:{group}")
                if i < len(creates) and creates[i] == "true":
                    execution.append(Auth("logs:CreateLogGroup", g_arn, request=f"task {family}: awslogs creates {group}"))
                stream = f"{g_arn}:log-stream:*"
                execution.append(Auth("logs:CreateLogStream", stream, request=f"task {family}: awslogs {group}"))
                execution.append(Auth("logs:PutLogEvents", stream, request=f"task {family}: awslogs {group}"))
            fs_ids = f.get("volumes.efsVolumeConfiguration.fileSystemId", [])
            iam = f.get("volumes.efsVolumeConfiguration.authorizationConfig.iam", [])
            for i, fs in enumerate(fs_ids):
                if i < len(iam) and iam[i] == "ENABLED":
                    task.append(Auth("elasticfilesystem:ClientMount", arn("elasticfilesystem", f"file-system/{fs}"),
                                     request=f"task {family}: EFS IAM authorization"))
                    task.append(Auth("elasticfilesystem:ClientWrite", arn("elasticfilesystem", f"file-system/{fs}"),
                                     request=f"task {family}: EFS IAM authorization"))
        return execution, task, backup_task


# --------------------------------------------------------------------------------------------
# Policy evaluation (Allow statements; the roles have no Deny)

def _glob(pattern: str, value: str, case: bool = True) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"
    return re.match(regex, value, 0 if case else re.IGNORECASE) is not None


def _as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def _op_match(op: str, want: str, have: str) -> bool:
    if op in ("StringEquals", "ArnEquals", "StringEqualsIgnoreCase"):
        return want == have if op != "StringEqualsIgnoreCase" else want.lower() == have.lower()
    if op in ("StringLike", "ArnLike"):
        return _glob(want, have)
    if op == "Bool":
        return want.lower() == have.lower()
    raise SystemExit(f"iam_check: condition operator {op} is not evaluated; add it")


def conditions_hold(cond: dict, ctx: dict[str, list[str]]) -> bool:
    for full_op, keys in cond.items():
        qualifier, _, op = full_op.rpartition(":")
        if_exists = op.endswith("IfExists")
        op = op.removesuffix("IfExists")
        for key, wants in keys.items():
            wants = [str(w) for w in _as_list(wants)]
            have = ctx.get(key)
            if not have:
                if qualifier == "ForAllValues" or if_exists:
                    continue
                return False
            if qualifier == "ForAllValues":
                ok = all(any(_op_match(op, w, h) for w in wants) for h in have)
            elif qualifier == "ForAnyValue":
                ok = any(any(_op_match(op, w, h) for w in wants) for h in have)
            else:
                ok = any(_op_match(op, w, have[0]) for w in wants)
            if not ok:
                return False
    return True


@dataclass
class Statement:
    role: str
    sid: str
    actions: list[str]
    resources: list[str]
    condition: dict

    def allows(self, a: Auth) -> str | None:
        """The resource pattern that allows `a`, or None."""
        if not any(_glob(p, a.action, case=False) for p in self.actions):
            return None
        for r in self.resources:
            if _glob(r, a.resource) and conditions_hold(self.condition, a.context):
                return r
        return None


def role_statements(resolver: cfn.Resolver, template: dict, logical: str) -> list[Statement]:
    res = template["Resources"][logical]
    out = []
    for policy in res["Properties"].get("Policies", []):
        doc = resolver.resolve(policy["PolicyDocument"])
        for i, st in enumerate(doc["Statement"]):
            if st["Effect"] != "Allow":
                raise SystemExit(f"iam_check: {logical} has a Deny statement; the check evaluates Allow only")
            out.append(Statement(logical, st.get("Sid", f"#{i}"), _as_list(st["Action"]),
                                 _as_list(st["Resource"]), st.get("Condition", {})))
    return out


def evaluate(title: str, statements: list[Statement], auths: list[Auth]) -> tuple[list[str], dict]:
    """Denied requests (messages) and the use of each (statement, action, resource pattern)."""
    denied, used = [], defaultdict(int)
    seen = set()
    for a in auths:
        if a.key() in seen:
            continue
        seen.add(a.key())
        hit = False
        for st in statements:
            pattern = st.allows(a)
            if pattern is not None:
                hit = True
                for p in st.actions:
                    if _glob(p, a.action, case=False):
                        used[(st.sid, p)] += 1
                used[(st.sid, "resource", pattern)] += 1
        if not hit:
            ctx = f" with {a.context}" if a.context else ""
            denied.append(f"{title}: DENIED {a.action} on {a.resource}{ctx} (request: {a.request})")
    return denied, used


def unused_grants(statements: list[Statement], used: dict) -> tuple[list[str], list[str]]:
    """(unused grants without a reason, unused grants with their reason)."""
    bad, explained = [], []
    for st in statements:
        items = [("action", p) for p in st.actions if (st.sid, p) not in used]
        items += [("resource", r) for r in st.resources if (st.sid, "resource", r) not in used]
        for kind, what in items:
            why = reason_for((st.role, st.sid, kind, what))
            line = f"{st.role}/{st.sid}: {kind} {what} was never used"
            if why is None:
                bad.append(line)
            else:
                explained.append(f"{line}: {why}")
    return bad, explained


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", required=True, type=Path)
    ap.add_argument("--env", required=True, type=Path)
    ap.add_argument("--template", default=cfn.TEMPLATE, type=Path)
    ap.add_argument("--without", action="append", default=[], help="remove this action from every statement first")
    args = ap.parse_args()

    env = dict(line.split("=", 1) for line in args.env.read_text().splitlines() if "=" in line)
    endpoint = urlparse(env["AWS_ENDPOINT_URL"]).netloc
    template = cfn.load(args.template)
    params = {
        "ClusterName": env["CLUSTER_NAME"], "FileSystemId": env["FILE_SYSTEM_ID"], "VpcId": env["VPC_ID"],
        "PrivateSubnetIds": env["PRIVATE_SUBNET_IDS"], "TaskSecurityGroupId": env["TASK_SECURITY_GROUP_ID"],
        "TaskRoleArn": env["TASK_ROLE_ARN"], "ExecutionRoleArn": env["EXECUTION_ROLE_ARN"],
        "LoadBalancerArn": env["LOAD_BALANCER_ARN"], "AlbHttpsListenerArn": env["ALB_HTTPS_LISTENER_ARN"],
        "AlbDnsName": env["ALB_DNS_NAME"], "AlbZoneId": env["ALB_ZONE_ID"],
        "Route53HostedZoneId": env["ROUTE53_HOSTED_ZONE_ID"], "DomainName": env["DOMAIN_NAME"],
        "InstanceTableName": env["INSTANCE_TABLE_NAME"], "LicensePoolTableName": env["LICENSE_POOL_TABLE_NAME"],
        "ScheduledSessionsTableName": env["SCHEDULED_SESSIONS_TABLE_NAME"],
        "LicenseReservationsTableName": env["LICENSE_RESERVATIONS_TABLE_NAME"],
        "UsageTableName": env["USAGE_TABLE_NAME"],
        "NotificationTableName": env["NOTIFICATION_TABLE_NAME"],
        "Backups": "on",
    }
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": PARTITION,
              "AWS::StackName": "foundry", "AWS::URLSuffix": "amazonaws.com"}
    attrs = {f"{name}.Arn": f"arn:{PARTITION}:stack-resource:::{name}" for name in template["Resources"]}
    attrs.update({"BackupBucket": BACKUP_BUCKET, "BackupBucket.Arn": f"arn:{PARTITION}:s3:::{BACKUP_BUCKET}",
                  "BackupTaskRole.Arn": BACKUP_TASK_ROLE})
    resolver = cfn.Resolver(template, params, pseudo, attrs)

    reqs = Requests(env)
    auths: list[Auth] = []
    check_test_only()
    check_fixture_names()
    records = ops = test_only = fixtures = 0
    op_set = set()
    for line in args.requests.read_text().splitlines():
        rec = json.loads(line)
        if urlparse(rec["uri"]).netloc != endpoint:
            continue  # a unit test's canned connector, not the local AWS
        records += 1
        op_set.add((rec["service"], rec["operation"]))
        if (rec["service"], rec["operation"]) in TEST_ONLY:
            test_only += 1
            continue
        if is_fixture(rec):
            fixtures += 1
            continue
        auths += reqs.auths(rec)
    ops = len(op_set)
    for a in auths:
        if not a.action.startswith("iam:PassRole"):
            check_arn_shape(a.action, a.resource)

    function_role = role_statements(resolver, template, "ExecutionRole")
    for st in function_role:
        st.actions = [a for a in st.actions if a not in args.without]
    denied, used = evaluate("function role", function_role, auths)
    unused, explained = unused_grants(function_role, used)

    # The tasks' roles: the template's task execution role (FoundryTaskExecutionRole, when the
    # stack creates it) and task role (FoundryTaskRole).
    exec_auths, task_auths, backup_task_auths = reqs.task_auths()
    exec_resolver = cfn.Resolver(template, {**params, "ExecutionRoleArn": "", "TaskRoleArn": ""}, pseudo, attrs)
    task_denied, task_unused = [], []
    known = {fields_of(r)["family"][0] for r in reqs.task_definitions}
    for family in sorted(reqs.run_families - known):
        task_denied.append(f"tasks: {family} was run, but its definition was neither registered nor "
                           "described in the recording: its roles are not checked")
    for logical, title, task_list in (("FoundryTaskExecutionRole", "task execution role", exec_auths),
                                      ("FoundryTaskRole", "task role", task_auths),
                                      ("BackupTaskRole", "backup task role", backup_task_auths)):
        if logical not in template["Resources"]:
            task_denied.append(f"{title}: the template has no {logical}")
            continue
        sts = role_statements(exec_resolver, template, logical)
        d, u = evaluate(title, sts, task_list)
        task_denied += d
        bad, why = unused_grants(sts, u)
        task_unused += bad
        explained += why

    distinct = len({a.key() for a in auths})
    print(f"iam_check: {records} requests of {ops} operations from the tests -> {distinct} distinct "
          f"authorizations ({len(auths)} in all) against {len(function_role)} statements of the function's role")
    for (service, op), (_m, _a, why) in TEST_ONLY.items():
        print(f"iam_check: not held against the role ({test_only} requests): {service} {op}: {why}")
    families = sorted({re.sub(r"\d{6,}", "<userId>", fields_of(r)["family"][0]) for r in reqs.task_definitions})
    ran = sorted({re.sub(r"\d{6,}", "<userId>", f) for f in reqs.run_families})
    print(f"iam_check: task definition families run: {', '.join(ran)}")
    print(f"iam_check: task definition families registered or described: {', '.join(families)}")
    print(f"iam_check: tasks: {len({a.key() for a in exec_auths})} execution-role and "
          f"{len({a.key() for a in task_auths})} task-role and {len({a.key() for a in backup_task_auths})} "
          f"backup-task-role authorizations from "
          f"{len(reqs.task_definitions)} registered or described task definitions")
    print(f"iam_check: not held against the role ({fixtures} requests): names of test fixtures: "
          + "; ".join(FIXTURE_NAMES.values()))
    for line in explained:
        print(f"iam_check: unused, with a reason: {line}")
    problems = denied + task_denied + unused + task_unused
    for p in problems:
        print(f"iam_check: {p}")
    if problems:
        print(f"iam_check: FAILED ({len(denied) + len(task_denied)} denied, {len(unused) + len(task_unused)} unused grants)")
        return 1
    print("iam_check: every request is allowed; every grant is used or has its reason above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
