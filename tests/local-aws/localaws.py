#!/usr/bin/env python3
"""Local AWS for foundry-lambda: a moto server plus the base infrastructure of a deployment.

Subcommands (run with the project venv: `.venv/bin/python tests/local-aws/localaws.py ...`):

  up [--port 5000] [--env-out FILE]    start moto (or reuse the one answering) and provision
  provision [--port 5000] [--env-out FILE]
                                       idempotently create the base infrastructure, write the env
  down [--port 5000]                   stop the moto server that `up` started (pid file)
  ecs-transition --mode manual|time|immediate [--seconds N] [--times N] [--family F] [--unset]
                                       set how ECS tasks progress (moto state manager)
  task-status --task ARN --status S [--exit-code N]
                                       set one task's lastStatus (patched server only)
  invoke-proxy [--listen 9000] [--upstream 9001]
                                       used by `make run`: serves the Invoke API for
                                       foundry-vtt-instance-management in front of cargo lambda watch
  invoke --event FILE [--port 9000]    POST an event to the local Invoke API, print the envelope
  invoke-api-up [--port 9000]          exit 0 if the local Invoke API answers (invokes nothing)
  moto-up [--port 5000]                exit 0 if a moto server answers

Only the standard library is needed, except `provision` (and `up`), which need boto3.
See tests/local-aws/README.md.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import http.client
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / "target" / "local-aws"
DEFAULT_ENV_OUT = STATE_DIR / "env"
DEFAULT_PORT = 5000
LOCK_FILE = STATE_DIR / "lock"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
MOTO_SERVE = Path(__file__).resolve().parent / "moto_serve.py"

REGION = "us-east-1"
PREFIX = "foundry-vtt"
CLUSTER = "foundry-vtt-cluster"
EFS_NAME = "foundry-vtt-efs"
TASK_ROLE = "foundry-vtt-task-role"
EXECUTION_ROLE = "foundry-vtt-execution-role"
ALB_NAME = "foundry-vtt-alb"
DOMAIN = "foundry.test"
CERT_DOMAIN = f"*.{DOMAIN}"
FUNCTION_NAME = "foundry-vtt-instance-management"
INSTANCE_TABLE = "foundry-vtt-instances"
USAGE_TABLE = "foundry-vtt-usage"
SUBNET_AZS = ("us-east-1a", "us-east-1b")  # two AZs, like the deployment's private subnets

# The default progression of ECS tasks set by `provision`.
# Patched server (moto_serve.py): one lifecycle step per second, so RunTask -> RUNNING in ~3 s and
# StopTask -> STOPPED in ~4 s, and RUNNING is held until StopTask.
# Stock moto_server (reused): tasks start RUNNING; hold them there until StopTask.
DEFAULT_TRANSITION_PATCHED = {"progression": "time", "seconds": 1}
DEFAULT_TRANSITION_STOCK = {"progression": "manual", "times": 1000000}


def log(msg: str) -> None:
    print(f"[local-aws] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# HTTP helpers (stdlib only)


def http_json(method: str, url: str, body: dict | None = None, timeout: float = 2.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw.strip() else None)


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def probe(port: int) -> str:
    """'none' (nothing answers), 'patched' (our moto_serve.py), 'moto' (stock moto) or 'other'."""
    base = endpoint(port)
    try:
        status, body = http_json("GET", f"{base}/moto-api/state-manager/get-transition?model_name=ecs::task")
    except urllib.error.HTTPError:
        return "other"
    except (urllib.error.URLError, ConnectionError, OSError, ValueError):
        # ValueError: answered, but not JSON
        try:
            socket_answers = _tcp_answers(port)
        except OSError:
            socket_answers = False
        return "other" if socket_answers else "none"
    if status != 200 or not isinstance(body, dict) or "progression" not in body:
        return "other"
    try:
        status, info = http_json("GET", f"{base}/moto-api/localaws/info")
        if status == 200 and isinstance(info, dict) and info.get("localaws"):
            return "patched"
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return "moto"


def own_patch_digest() -> str:
    """The sha256 of tests/local-aws/moto_serve.py as it is now."""
    return hashlib.sha256(MOTO_SERVE.read_bytes()).hexdigest()


def served_patch_digest(port: int) -> str | None:
    """The sha256 of the moto_serve.py the server on `port` started with (None: unknown)."""
    try:
        status, info = http_json("GET", f"{endpoint(port)}/moto-api/localaws/info")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return info.get("patchDigest") if status == 200 and isinstance(info, dict) else None


def started_by_up(port: int) -> bool:
    """Whether the moto on `port` is one that `up` started (its pid file names a live process)."""
    pf = pid_file(port)
    if not pf.exists():
        return False
    try:
        pid = int(pf.read_text().split()[0])
    except (ValueError, IndexError):
        return False
    return _pid_alive(pid) and _pid_is_ours(pid)


def _tcp_answers(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class FileLock:
    """An exclusive flock, so concurrent `up`s (parallel test processes) run one at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = open(self.path, "w")
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.fd.close()


# --------------------------------------------------------------------------------------------
# up / down


def pid_file(port: int) -> Path:
    """target/local-aws/moto.pid for the default port, moto-<port>.pid for others."""
    return STATE_DIR / ("moto.pid" if port == DEFAULT_PORT else f"moto-{port}.pid")


def log_file(port: int) -> Path:
    return STATE_DIR / ("moto.log" if port == DEFAULT_PORT else f"moto-{port}.log")


def start_moto(port: int) -> int:
    python = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
    if not python.exists():
        sys.exit(f"[local-aws] {python} not found: run `make venv` (or `make test`) first")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    logf = open(log_file(port), "ab")
    proc = subprocess.Popen(
        [str(python), str(MOTO_SERVE), "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        cwd=str(REPO),
        start_new_session=True,  # detached: survives the caller (make, cargo test)
        close_fds=True,
    )
    pid_file(port).write_text(f"{proc.pid}\n{port}\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"[local-aws] moto exited with code {proc.returncode}; see {log_file(port)}")
        if probe(port) == "patched":
            return proc.pid
        time.sleep(0.05)
    proc.terminate()
    sys.exit(f"[local-aws] moto did not answer on 127.0.0.1:{port} within 10 s; see {log_file(port)}")


def cmd_up(args) -> None:
    t0 = time.monotonic()
    with FileLock(LOCK_FILE):
        kind = probe(args.port)
        if kind == "other":
            sys.exit(f"[local-aws] something that is not moto answers on 127.0.0.1:{args.port}")
        if kind == "patched" and served_patch_digest(args.port) != own_patch_digest():
            if started_by_up(args.port):
                log(f"the moto on {endpoint(args.port)} runs an older {MOTO_SERVE.name}: restarting it")
                cmd_down(args)
                kind = probe(args.port)
            else:
                log(f"  (the moto on {endpoint(args.port)} runs another version of {MOTO_SERVE.name}, and `up` did not start it)")
        if kind == "none":
            pid = start_moto(args.port)
            log(f"started moto (pid {pid}) on {endpoint(args.port)} in {time.monotonic() - t0:.2f} s; log {log_file(args.port)}")
            kind = "patched"
            outcome = f"started {pid}"
        else:
            log(f"reusing the moto already answering on {endpoint(args.port)} ({kind})")
            outcome = "reused"
            if kind == "moto":
                log("  (stock moto_server: tasks start RUNNING; no PENDING phase, no set-task-status)")
        t1 = time.monotonic()
        provision(args.port, Path(args.env_out), patched=(kind == "patched"))
        t2 = time.monotonic()
    log(f"up took {t2 - t0:.2f} s (provision {t2 - t1:.2f} s); env file {args.env_out}")
    print(outcome)  # stdout: "started <pid>" or "reused" (used by `make run` and .ci/run)


def cmd_provision(args) -> None:
    t0 = time.monotonic()
    with FileLock(LOCK_FILE):
        kind = probe(args.port)
        if kind not in ("moto", "patched"):
            sys.exit(f"[local-aws] no moto answers on 127.0.0.1:{args.port}; run `up` instead")
        provision(args.port, Path(args.env_out), patched=(kind == "patched"))
    log(f"provision took {time.monotonic() - t0:.2f} s; env file {args.env_out}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _pid_is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "moto_serve.py" in cmdline or "moto_server" in cmdline


def cmd_down(args) -> None:
    pf = pid_file(args.port)
    if not pf.exists():
        log(f"no moto started by `up` on port {args.port} (no {pf}); nothing to stop")
        return
    pid = int(pf.read_text().split()[0])
    if _pid_alive(pid) and _pid_is_ours(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        log(f"stopped moto (pid {pid})")
    else:
        log(f"moto pid {pid} is not running")
    pf.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# provisioning (boto3)


def _clients(port: int):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        sys.exit("[local-aws] boto3 is missing: run with .venv/bin/python (make venv)")
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )
    cfg = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)

    def client(name: str):
        return session.client(name, endpoint_url=endpoint(port), config=cfg)

    return client


def provision(port: int, env_out: Path, patched: bool) -> dict:
    from botocore.exceptions import ClientError

    client = _clients(port)
    ec2, ecs, efs, iam = client("ec2"), client("ecs"), client("efs"), client("iam")
    elbv2, acm, r53, ddb = client("elbv2"), client("acm"), client("route53"), client("dynamodb")

    def err_code(e: ClientError) -> str:
        return e.response.get("Error", {}).get("Code", "")

    # --- network: moto's default VPC, two of its subnets, security groups -------------------
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        sys.exit("[local-aws] moto has no default VPC in us-east-1")
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    by_az = {}
    for s in sorted(subnets, key=lambda s: (s["AvailabilityZone"], s["SubnetId"])):
        if s.get("DefaultForAz"):
            by_az.setdefault(s["AvailabilityZone"], s["SubnetId"])
    subnet_ids = [by_az[az] for az in SUBNET_AZS if az in by_az] or [s["SubnetId"] for s in subnets[:2]]

    def security_group(name: str, description: str) -> tuple[str, bool]:
        found = ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
        )["SecurityGroups"]
        if found:
            return found[0]["GroupId"], False
        gid = ec2.create_security_group(
            GroupName=name,
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": name}]}],
        )["GroupId"]
        return gid, True

    alb_sg, new = security_group(f"{PREFIX}-alb-sg", "Foundry VTT ALB: 80/443 from anywhere")
    if new:
        ec2.authorize_security_group_ingress(
            GroupId=alb_sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
                for p in (80, 443)
            ],
        )
    task_sg, new = security_group(f"{PREFIX}-task-sg", "Foundry VTT tasks: 30000 from the ALB")
    if new:
        ec2.authorize_security_group_ingress(
            GroupId=task_sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 30000, "ToPort": 30000, "UserIdGroupPairs": [{"GroupId": alb_sg}]}
            ],
        )
    efs_sg, new = security_group(f"{PREFIX}-efs-sg", "Foundry VTT EFS: NFS from the VPC")
    if new:
        ec2.authorize_security_group_ingress(
            GroupId=efs_sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "IpRanges": [{"CidrIp": vpcs[0]["CidrBlock"]}]}
            ],
        )

    # --- ECS cluster ------------------------------------------------------------------------
    clusters = ecs.describe_clusters(clusters=[CLUSTER])["clusters"]
    if not any(c["status"] == "ACTIVE" for c in clusters):
        ecs.create_cluster(clusterName=CLUSTER)

    # --- EFS ----------------------------------------------------------------------------------
    fs_id = None
    for fs in efs.describe_file_systems()["FileSystems"]:
        tags = {t["Key"]: t["Value"] for t in fs.get("Tags", [])}
        if tags.get("Name") == EFS_NAME or fs.get("Name") == EFS_NAME:
            fs_id = fs["FileSystemId"]
            break
    if fs_id is None:
        fs_id = efs.create_file_system(
            CreationToken=EFS_NAME,
            PerformanceMode="generalPurpose",
            ThroughputMode="bursting",
            Encrypted=True,
            Tags=[{"Key": "Name", "Value": EFS_NAME}],
        )["FileSystemId"]
    mounted = {m["SubnetId"] for m in efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]}
    for sid in subnet_ids:
        if sid not in mounted:
            efs.create_mount_target(FileSystemId=fs_id, SubnetId=sid, SecurityGroups=[efs_sg])

    # --- IAM roles ------------------------------------------------------------------------------
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )

    def role_arn(name: str) -> str:
        try:
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        except ClientError as e:
            if err_code(e) != "NoSuchEntity":
                raise
        try:
            return iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        except ClientError as e:
            if err_code(e) != "EntityAlreadyExists":
                raise
            return iam.get_role(RoleName=name)["Role"]["Arn"]

    task_role_arn = role_arn(TASK_ROLE)
    execution_role_arn = role_arn(EXECUTION_ROLE)

    # --- ACM certificate, ALB, HTTPS listener -------------------------------------------------
    cert_arn = None
    for c in acm.list_certificates()["CertificateSummaryList"]:
        if c["DomainName"] == CERT_DOMAIN:
            cert_arn = c["CertificateArn"]
            break
    if cert_arn is None:
        cert_arn = acm.request_certificate(
            DomainName=CERT_DOMAIN,
            SubjectAlternativeNames=[CERT_DOMAIN, DOMAIN],
            ValidationMethod="DNS",
            IdempotencyToken="foundryvttcert",
        )["CertificateArn"]

    try:
        lb = elbv2.describe_load_balancers(Names=[ALB_NAME])["LoadBalancers"][0]
    except ClientError as e:
        if err_code(e) != "LoadBalancerNotFound":
            raise
        lb = elbv2.create_load_balancer(
            Name=ALB_NAME,
            Subnets=subnet_ids,
            SecurityGroups=[alb_sg],
            Scheme="internet-facing",
            Type="application",
            IpAddressType="ipv4",
            Tags=[{"Key": "Name", "Value": ALB_NAME}],
        )["LoadBalancers"][0]
    lb_arn = lb["LoadBalancerArn"]

    listener_arn = None
    for lst in elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]:
        if lst["Port"] == 443:
            listener_arn = lst["ListenerArn"]
            break
    if listener_arn is None:
        listener_arn = elbv2.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTPS",
            Port=443,
            SslPolicy="ELBSecurityPolicy-TLS-1-2-2017-01",
            Certificates=[{"CertificateArn": cert_arn}],
            DefaultActions=[
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not Found"},
                }
            ],
        )["Listeners"][0]["ListenerArn"]

    # --- Route 53 hosted zone --------------------------------------------------------------------
    zone_id = None
    for z in r53.list_hosted_zones_by_name(DNSName=DOMAIN)["HostedZones"]:
        if z["Name"].rstrip(".") == DOMAIN:
            zone_id = z["Id"]
            break
    if zone_id is None:
        zone_id = r53.create_hosted_zone(
            Name=DOMAIN,
            CallerReference=f"foundry-vtt-local-{time.time_ns()}",
            HostedZoneConfig={"Comment": "foundry-lambda local", "PrivateZone": False},
        )["HostedZone"]["Id"]
    zone_id = zone_id.split("/")[-1]

    # --- DynamoDB tables -------------------------------------------------------------
    def gsi(name: str, hash_key: str, range_key: str | None = None, projection: str = "ALL") -> dict:
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        return {"IndexName": name, "KeySchema": schema, "Projection": {"ProjectionType": projection}}

    tables = [
        (
            INSTANCE_TABLE,
            "userId",
            {"userId": "S", "taskArn": "S", "sanitizedUsername": "S", "runShard": "N", "runDeadline": "N"},
            [
                gsi("TaskArnIndex", "taskArn"),
                gsi("sanitizedUsername-index", "sanitizedUsername", projection="KEYS_ONLY"),
                gsi("runShard-runDeadline-index", "runShard", "runDeadline"),
            ],
        ),
        (f"{INSTANCE_TABLE}-license-pool", "licenseId", {"licenseId": "S", "ownerId": "S"}, [gsi("ownerId-index", "ownerId")]),
        (
            f"{INSTANCE_TABLE}-scheduled-sessions",
            "sessionId",
            {"sessionId": "S", "userId": "S", "startTime": "N", "licenseId": "S", "status": "S"},
            [
                gsi("userId-index", "userId"),
                gsi("startTime-index", "startTime"),
                gsi("licenseId-startTime-index", "licenseId", "startTime"),
                gsi("status-startTime-index", "status", "startTime"),
            ],
        ),
        (
            f"{INSTANCE_TABLE}-license-reservations",
            "reservationId",
            {"reservationId": "S", "licenseId": "S", "startTime": "N"},
            [gsi("licenseId-startTime-index", "licenseId", "startTime")],
        ),
        (USAGE_TABLE, "usageKey", {"usageKey": "S"}, []),
        (
            f"{INSTANCE_TABLE}-notifications",
            "notificationId",
            {"notificationId": "S", "pendingShard": "N", "nextAttemptAt": "N"},
            [gsi("pendingShard-nextAttemptAt-index", "pendingShard", "nextAttemptAt")],
        ),
    ]
    existing = set()
    for page in ddb.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    for name, pk, attrs, gsis in tables:
        if name in existing:
            # A table made by an older version of this script: add the indexes it lacks.
            have = {
                g["IndexName"]
                for g in ddb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
            }
            for g in gsis:
                if g["IndexName"] in have:
                    continue
                used = {k["AttributeName"] for k in g["KeySchema"]}
                ddb.update_table(
                    TableName=name,
                    AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in attrs.items() if a in used],
                    GlobalSecondaryIndexUpdates=[{"Create": g}],
                )
            continue
        kwargs = dict(
            TableName=name,
            KeySchema=[{"AttributeName": pk, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in attrs.items()],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
        )
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        try:
            ddb.create_table(**kwargs)
        except ClientError as e:
            if err_code(e) != "ResourceInUseException":
                raise
        if name == f"{INSTANCE_TABLE}-notifications":
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
            )
        if name == INSTANCE_TABLE:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )

    # --- ECS task progression ----------------------------------------------------------------
    transition = DEFAULT_TRANSITION_PATCHED if patched else DEFAULT_TRANSITION_STOCK
    set_transition(port, "ecs::task", transition)

    env = {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint(port),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "CLUSTER_NAME": CLUSTER,
        "INSTANCE_TABLE_NAME": INSTANCE_TABLE,
        "LICENSE_POOL_TABLE_NAME": f"{INSTANCE_TABLE}-license-pool",
        "SCHEDULED_SESSIONS_TABLE_NAME": f"{INSTANCE_TABLE}-scheduled-sessions",
        "LICENSE_RESERVATIONS_TABLE_NAME": f"{INSTANCE_TABLE}-license-reservations",
        "USAGE_TABLE_NAME": USAGE_TABLE,
        "NOTIFICATION_TABLE_NAME": f"{INSTANCE_TABLE}-notifications",
        "FILE_SYSTEM_ID": fs_id,
        "VPC_ID": vpc_id,
        "PRIVATE_SUBNET_IDS": ",".join(subnet_ids),
        "TASK_SECURITY_GROUP_ID": task_sg,
        "TASK_ROLE_ARN": task_role_arn,
        "EXECUTION_ROLE_ARN": execution_role_arn,
        "LOAD_BALANCER_ARN": lb_arn,
        "ALB_HTTPS_LISTENER_ARN": listener_arn,
        "ALB_DNS_NAME": lb["DNSName"],
        "ALB_ZONE_ID": lb["CanonicalHostedZoneId"],
        "ROUTE53_HOSTED_ZONE_ID": zone_id,
        "DOMAIN_NAME": DOMAIN,
        "INSTANCE_COST_PER_HOUR": "1.00",
        "KOFI_VERIFICATION_TOKEN": "local-kofi-token",
        "ADMIN_USER_IDS": "000000000000000001",
        "SESSION_LEAD_SECONDS": "300",
        # No Foundry server runs locally (moto's tasks run nothing): auto-shutdown's idle
        # probe asks a local port where nothing listens, rather than looking up
        # <user>.foundry.test, and finds nothing (a failed probe: only deadlines apply).
        "FOUNDRY_STATUS_URL_TEMPLATE": "http://127.0.0.1:1/{sanitizedUsername}/api/status",
    }
    env_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = env_out.with_name(env_out.name + f".tmp{os.getpid()}")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    os.replace(tmp, env_out)  # atomic: readers never see a half-written file
    return env


# --------------------------------------------------------------------------------------------
# ECS progression controls


def set_transition(port: int, model_name: str, transition: dict) -> None:
    status, _ = http_json(
        "POST",
        f"{endpoint(port)}/moto-api/state-manager/set-transition",
        {"model_name": model_name, "transition": transition},
    )
    if status not in (200, 201):
        sys.exit(f"[local-aws] set-transition answered HTTP {status}")


def cmd_ecs_transition(args) -> None:
    model = "ecs::task" + (f"/{args.family}" if args.family else "")
    if args.unset:
        http_json("POST", f"{endpoint(args.port)}/moto-api/state-manager/unset-transition", {"model_name": model})
        log(f"unset the transition of {model}")
        return
    if args.mode == "manual":
        transition = {"progression": "manual", "times": args.times}
    elif args.mode == "time":
        transition = {"progression": "time", "seconds": args.seconds}
    else:
        transition = {"progression": "immediate"}
    set_transition(args.port, model, transition)
    log(f"{model}: {json.dumps(transition)}")


def cmd_task_status(args) -> None:
    body = {"task": args.task, "lastStatus": args.status}
    if args.exit_code is not None:
        body["exitCode"] = args.exit_code
    try:
        _, out = http_json("POST", f"{endpoint(args.port)}/moto-api/localaws/ecs/set-task-status", body)
    except urllib.error.HTTPError as e:
        sys.exit(f"[local-aws] set-task-status: HTTP {e.code} {e.read().decode(errors='replace')}")
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------
# Invoke API front for `make run`
#
# cargo lambda watch (1.9.2) only accepts invocations whose function name is a binary of the
# package (or "_"): /2015-03-31/functions/bootstrap/invocations. The deployed function is named
# foundry-vtt-instance-management, so this proxy serves that name on 127.0.0.1:9000 and forwards
# to cargo lambda watch on 127.0.0.1:9001 with the name rewritten.


def cmd_invoke_proxy(args) -> None:
    upstream_port = args.upstream
    aliases = {f"/functions/{args.function}/": f"/functions/{args.binary}/",
               f"/lambda-url/{args.function}/": f"/lambda-url/{args.binary}/",
               f"/lambda-url/{args.function}": f"/lambda-url/{args.binary}"}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quieter than the default
            if not args.quiet:
                sys.stderr.write("[invoke-proxy] " + (fmt % a) + "\n")

        def _forward(self):
            path = self.path
            for src, dst in aliases.items():
                if src in path:
                    path = path.replace(src, dst, 1)
                    break
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            hop = ("host", "connection", "keep-alive", "expect", "transfer-encoding", "content-length")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=args.timeout)
            try:
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as e:
                msg = json.dumps({"title": "Invoke API not ready", "detail": f"cargo lambda watch on 127.0.0.1:{upstream_port}: {e}"}).encode()
                self.send_response(502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)
                return
            finally:
                conn.close()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _forward

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", args.listen), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"Invoke API for {args.function} on http://127.0.0.1:{args.listen} -> cargo lambda watch :{upstream_port} ({args.binary})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def cmd_invoke_api_up(args) -> None:
    """Exit 0 if an HTTP server answers on the Invoke API port (without invoking anything:
    a GET on the invocations path gets 405 from cargo lambda watch), 1 if nothing listens."""
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=3)
    try:
        conn.request("GET", f"/2015-03-31/functions/{args.function}/invocations")
        status = conn.getresponse().status
    except OSError:
        sys.exit(1)
    finally:
        conn.close()
    log(f"an HTTP server answers on 127.0.0.1:{args.port} (GET invocations -> {status})")


def cmd_moto_up(args) -> None:
    """Exit 0 if a moto server answers on the port, 1 otherwise."""
    sys.exit(0 if probe(args.port) in ("moto", "patched") else 1)


def cmd_invoke(args) -> None:
    data = Path(args.event).read_bytes()
    url = f"http://127.0.0.1:{args.port}/2015-03-31/functions/{args.function}/invocations"
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:
            out = resp.read().decode()
            code = resp.status
    except urllib.error.HTTPError as e:
        out, code = e.read().decode(errors="replace"), e.code
    except urllib.error.URLError as e:
        sys.exit(f"[local-aws] nothing answers on 127.0.0.1:{args.port} ({e.reason}); start it with `make run`")
    try:
        print(json.dumps(json.loads(out), indent=2))
    except ValueError:
        print(out)
    if code >= 400:
        sys.exit(f"[local-aws] HTTP {code}")


# --------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def with_port(sp, default=DEFAULT_PORT):
        sp.add_argument("--port", type=int, default=default)
        return sp

    for name, fn in (("up", cmd_up), ("provision", cmd_provision)):
        sp = with_port(sub.add_parser(name))
        sp.add_argument("--env-out", default=str(DEFAULT_ENV_OUT))
        sp.set_defaults(fn=fn)

    with_port(sub.add_parser("down")).set_defaults(fn=cmd_down)

    sp = with_port(sub.add_parser("ecs-transition"))
    sp.add_argument("--mode", choices=["manual", "time", "immediate"], default="time")
    sp.add_argument("--seconds", type=float, default=1)
    sp.add_argument("--times", type=int, default=1000000, help="manual: DescribeTasks calls per step")
    sp.add_argument("--family", help="only tasks of this task-definition family (model ecs::task/<family>)")
    sp.add_argument("--unset", action="store_true", help="remove the setting (family: fall back to ecs::task)")
    sp.set_defaults(fn=cmd_ecs_transition)

    sp = with_port(sub.add_parser("task-status"))
    sp.add_argument("--task", required=True)
    sp.add_argument("--status", required=True)
    sp.add_argument("--exit-code", type=int)
    sp.set_defaults(fn=cmd_task_status)

    sp = sub.add_parser("invoke-proxy")
    sp.add_argument("--listen", type=int, default=9000)
    sp.add_argument("--upstream", type=int, default=9001)
    sp.add_argument("--function", default=FUNCTION_NAME)
    sp.add_argument("--binary", default="bootstrap")
    sp.add_argument("--timeout", type=float, default=900)
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(fn=cmd_invoke_proxy)

    sp = with_port(sub.add_parser("invoke-api-up"), default=9000)
    sp.add_argument("--function", default=FUNCTION_NAME)
    sp.set_defaults(fn=cmd_invoke_api_up)

    with_port(sub.add_parser("moto-up")).set_defaults(fn=cmd_moto_up)

    sp = with_port(sub.add_parser("invoke"), default=9000)
    sp.add_argument("--event", required=True)
    sp.add_argument("--function", default=FUNCTION_NAME)
    sp.add_argument("--timeout", type=float, default=900)
    sp.set_defaults(fn=cmd_invoke)

    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
