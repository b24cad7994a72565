#!/usr/bin/env python3
"""Deploy rehearsal: template.yaml, turned into plain CloudFormation by the SAM translator, deployed
with CreateStack into a local AWS (moto) that holds the infrastructure of a deployment
(tests/local-aws/localaws.py provisions it; its env file gives the parameters). Then it checks what
the stack made against what the function expects: the function (runtime, architecture, memory,
timeout, role, reserved concurrency, environment naming the stack's resources), the roles, the five
tables (keys, indexes, point-in-time recovery), the two schedules and their targets, the log
group, the on-failure queue and its alarm.

moto's CloudFormation skips resource types it cannot host (with a warning); the script lists them
first, checks the rest, and fails if one of them is a type the checks rely on.

Usage: deploy_rehearsal.py --env target/local-aws/rehearsal-env-5066
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

CODE_BUCKET = "foundry-rehearsal-code"
CODE_KEY = "bootstrap.zip"

failures: list[str] = []
checks = 0


def check(ok: bool, what: str) -> None:
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print(f"deploy_rehearsal: FAILED: {what}")


def translate(template: dict, params: dict[str, str], iam) -> dict:
    from samtranslator.public.translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    fn = template["Resources"]["InstanceManagementFunction"]["Properties"]
    # `sam build` + `sam package` replace the local CodeUri with the uploaded artifact.
    fn["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    # The translator takes AWS::Region (and the partition) from boto3's session.
    os.environ.setdefault("AWS_DEFAULT_REGION", params.get("AWS::Region", "us-east-1"))
    return transform(template, params, ManagedPolicyLoader(iam))


def unsupported_types(template: dict) -> list[str]:
    from moto.cloudformation.parsing import resource_class_from_type

    types = sorted({r["Type"] for r in template["Resources"].values()})
    return [t for t in types if not resource_class_from_type(t)]


def moto_applies(resource_type: str, prop: str) -> bool:
    """Whether moto's CloudFormation reads `prop` of `resource_type` at all (its
    create_from_cloudformation_json names it). When it does not, the rehearsal checks the
    property in the translated template instead, and says so."""
    import inspect

    from moto.cloudformation.parsing import resource_class_from_type

    cls = resource_class_from_type(resource_type)
    return bool(cls) and f'"{prop}"' in inspect.getsource(cls.create_from_cloudformation_json)


not_applied: set[str] = set()


def live_or_template(resource_type: str, prop: str, live, template_value, expected, what: str) -> None:
    if moto_applies(resource_type, prop):
        check(live == expected, f"{what}: {live}, expected {expected}")
    else:
        not_applied.add(f"{resource_type}.{prop}")
        check(template_value == expected, f"{what} (in the template; moto does not apply it): {template_value}")


def policy_doc(doc):
    if isinstance(doc, str):
        try:
            return json.loads(doc)
        except json.JSONDecodeError:
            import ast
            return ast.literal_eval(doc)
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", required=True, type=Path)
    args = ap.parse_args()
    env = dict(line.split("=", 1) for line in args.env.read_text().splitlines() if "=" in line)
    t0 = time.monotonic()
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=env["AWS_REGION"])

    def client(name: str):
        return session.client(name, endpoint_url=env["AWS_ENDPOINT_URL"])

    # The deployment's parameters: the provisioned infrastructure; the stack makes the tables
    # (under names of its own, so that they are told apart from the provisioned ones), the task
    # role and the task execution role.
    # Fresh names each run: the tables are retained when the stack goes (DeletionPolicy), so a
    # second run on the same moto would collide with the first's.
    suffix = f"rehearsal{int(time.time() * 1000) % 10**10}"
    stack_name = f"foundry-{suffix}"
    params = {
        "FunctionName": f"foundry-{suffix}-fn",
        "ClusterName": env["CLUSTER_NAME"], "FileSystemId": env["FILE_SYSTEM_ID"], "VpcId": env["VPC_ID"],
        "PrivateSubnetIds": env["PRIVATE_SUBNET_IDS"], "TaskSecurityGroupId": env["TASK_SECURITY_GROUP_ID"],
        "TaskRoleArn": "", "ExecutionRoleArn": "",
        "AlbHttpsListenerArn": env["ALB_HTTPS_LISTENER_ARN"], "AlbDnsName": env["ALB_DNS_NAME"],
        "AlbZoneId": env["ALB_ZONE_ID"], "Route53HostedZoneId": env["ROUTE53_HOSTED_ZONE_ID"],
        "DomainName": env["DOMAIN_NAME"], "CreateTables": "true",
        "InstanceTableName": f"foundry-{suffix}-instances",
        "LicensePoolTableName": f"foundry-{suffix}-license-pool",
        "ScheduledSessionsTableName": f"foundry-{suffix}-scheduled-sessions",
        "LicenseReservationsTableName": f"foundry-{suffix}-license-reservations",
        "UsageTableName": f"foundry-{suffix}-usage",
        "NotificationTableName": f"foundry-{suffix}-notifications",
        "AdminUserIds": "000000000000000001", "ReservedConcurrency": "20",
    }

    template = cfn.load()
    iam = client("iam")
    translated = translate(template, params, iam)
    check("Transform" not in translated, "the SAM translator left a Transform")
    types = sorted({r["Type"] for r in translated["Resources"].values()})
    print(f"deploy_rehearsal: SAM translator: {len(template['Resources'])} resources -> "
          f"{len(translated['Resources'])} CloudFormation resources of {len(types)} types")
    skipped = unsupported_types(translated)
    print("deploy_rehearsal: resource types moto's CloudFormation cannot host (skipped; their properties "
          f"are checked in the translated template, and by cfn-lint and checkov): {', '.join(skipped) or 'none'}")
    # moto fails the whole stack on an output that reads an attribute of a skipped resource:
    # such outputs are left out of the rehearsal (and listed).
    skipped_ids = {k for k, r in translated["Resources"].items() if r["Type"] in skipped}
    dropped = [name for name, out in translated.get("Outputs", {}).items()
               if any(f'"{k}"' in json.dumps(out) for k in skipped_ids)]
    for name in dropped:
        del translated["Outputs"][name]
    if dropped:
        print(f"deploy_rehearsal: outputs left out (they read a skipped resource): {', '.join(dropped)}")
    needed = {"AWS::Lambda::Function", "AWS::IAM::Role", "AWS::DynamoDB::Table", "AWS::Events::Rule",
              "AWS::Logs::LogGroup", "AWS::SQS::Queue"}
    check(not (needed & set(skipped)), f"moto cannot host a type the checks need: {needed & set(skipped)}")

    # The code artifact (`sam package` uploads the zip of `sam build`): a placeholder; moto
    # never runs it.
    s3 = client("s3")
    try:
        s3.create_bucket(Bucket=CODE_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho placeholder\n")
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buf.getvalue())

    cf = client("cloudformation")
    cf.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    status = ""
    for _ in range(120):
        stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    check(status == "CREATE_COMPLETE", f"stack status {status} ({stack.get('StackStatusReason', '')})")
    if status != "CREATE_COMPLETE":
        return report(t0)
    # (moto lists a skipped resource as an entry without ids)
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cf.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
                if r.get("LogicalResourceId")}
    resolver = cfn.Resolver(translated, params, {"AWS::Region": env["AWS_REGION"], "AWS::AccountId": "123456789012",
                                                "AWS::Partition": "aws", "AWS::StackName": stack_name})
    hosted = [k for k, r in translated["Resources"].items()
              if r["Type"] not in skipped and ("Condition" not in r or resolver.condition(r["Condition"]))]
    check(all(k in physical for k in hosted),
          f"resources missing from the stack: {[k for k in hosted if k not in physical]}")
    print(f"deploy_rehearsal: {stack_name} CREATE_COMPLETE with {len(physical)} resources")

    # --- the function
    lam = client("lambda")
    fn_name = physical["InstanceManagementFunction"]
    conf = lam.get_function_configuration(FunctionName=fn_name)
    check(fn_name == params["FunctionName"], f"function name {fn_name}")
    check(conf["Runtime"] == "provided.al2023", f"runtime {conf['Runtime']}")
    fn_props = translated["Resources"]["InstanceManagementFunction"]["Properties"]
    live_or_template("AWS::Lambda::Function", "Architectures", conf.get("Architectures"),
                     fn_props.get("Architectures"), ["arm64"], "architectures")
    live_or_template("AWS::Lambda::Function", "LoggingConfig", conf.get("LoggingConfig", {}).get("LogFormat"),
                     fn_props.get("LoggingConfig", {}).get("LogFormat"), "JSON", "log format")
    check(conf["MemorySize"] == 128 and conf["Timeout"] == 300, f"memory/timeout {conf['MemorySize']}/{conf['Timeout']}")
    check(conf["Handler"] == "bootstrap", f"handler {conf['Handler']}")
    concurrency = lam.get_function_concurrency(FunctionName=fn_name).get("ReservedConcurrentExecutions")
    check(concurrency == 20, f"reserved concurrency {concurrency}")

    iam_roles = {k: iam.get_role(RoleName=physical[k])["Role"]
                 for k in ("ExecutionRole", "FoundryTaskRole", "FoundryTaskExecutionRole")}
    check(conf["Role"] == iam_roles["ExecutionRole"]["Arn"], f"function role {conf['Role']}")
    variables = conf["Environment"]["Variables"]
    tables = {
        "INSTANCE_TABLE_NAME": "InstancesTable", "LICENSE_POOL_TABLE_NAME": "LicensePoolTable",
        "SCHEDULED_SESSIONS_TABLE_NAME": "ScheduledSessionsTable",
        "LICENSE_RESERVATIONS_TABLE_NAME": "LicenseReservationsTable", "USAGE_TABLE_NAME": "UsageTable",
        "NOTIFICATION_TABLE_NAME": "NotificationsTable",
    }
    for var, logical in tables.items():
        check(variables.get(var) == physical[logical], f"{var}={variables.get(var)}, the stack made {physical[logical]}")
    check(variables.get("TASK_ROLE_ARN") == iam_roles["FoundryTaskRole"]["Arn"],
          f"TASK_ROLE_ARN={variables.get('TASK_ROLE_ARN')}")
    check(variables.get("EXECUTION_ROLE_ARN") == iam_roles["FoundryTaskExecutionRole"]["Arn"],
          f"EXECUTION_ROLE_ARN={variables.get('EXECUTION_ROLE_ARN')}")
    for var, key in (("CLUSTER_NAME", "CLUSTER_NAME"), ("FILE_SYSTEM_ID", "FILE_SYSTEM_ID"),
                     ("ALB_HTTPS_LISTENER_ARN", "ALB_HTTPS_LISTENER_ARN"), ("DOMAIN_NAME", "DOMAIN_NAME"),
                     ("ROUTE53_HOSTED_ZONE_ID", "ROUTE53_HOSTED_ZONE_ID"), ("PRIVATE_SUBNET_IDS", "PRIVATE_SUBNET_IDS")):
        check(variables.get(var) == env[key], f"{var}={variables.get(var)}, expected {env[key]}")
    required = ["CLUSTER_NAME", "INSTANCE_TABLE_NAME", "USAGE_TABLE_NAME", "FILE_SYSTEM_ID", "VPC_ID",
                "PRIVATE_SUBNET_IDS", "TASK_SECURITY_GROUP_ID", "TASK_ROLE_ARN", "EXECUTION_ROLE_ARN",
                "ALB_HTTPS_LISTENER_ARN", "ALB_DNS_NAME", "ALB_ZONE_ID", "ROUTE53_HOSTED_ZONE_ID", "DOMAIN_NAME"]
    check(all(variables.get(v) for v in required), f"required variables empty: {[v for v in required if not variables.get(v)]}")

    # --- the roles: trust and inline policies as the template says
    for logical, service in (("ExecutionRole", "lambda.amazonaws.com"), ("FoundryTaskRole", "ecs-tasks.amazonaws.com"),
                             ("FoundryTaskExecutionRole", "ecs-tasks.amazonaws.com")):
        trust = policy_doc(iam_roles[logical]["AssumeRolePolicyDocument"])
        principals = [s["Principal"].get("Service") for s in trust["Statement"]]
        check(principals == [service], f"{logical} trusts {principals}")
    names = iam.list_role_policies(RoleName=physical["ExecutionRole"])["PolicyNames"]
    check(names == ["foundry-instance-management"], f"ExecutionRole policies {names}")
    doc = policy_doc(iam.get_role_policy(RoleName=physical["ExecutionRole"], PolicyName=names[0])["PolicyDocument"])
    # A statement or resource behind a condition that is off (`!If [Cond, ..., !Ref AWS::NoValue]`)
    # is absent in AWS; moto keeps it as null. The rehearsal deploys with the defaults, which
    # leave every such statement off (the world backups' reads).
    statements = [s for s in doc["Statement"] if s]
    sids = [s.get("Sid") for s in statements]
    want = [s.get("Sid") for s in
            template["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            if "Fn::If" not in s]
    check(sids == want, f"ExecutionRole statements {sids}")
    pass_role = next(s for s in statements if s.get("Sid") == "PassTaskRoles")
    check(sorted(r for r in pass_role["Resource"] if r) == sorted([iam_roles["FoundryTaskRole"]["Arn"],
                                                  iam_roles["FoundryTaskExecutionRole"]["Arn"]]),
          f"PassRole resources {pass_role['Resource']}")

    # --- the tables
    ddb = client("dynamodb")
    expect = {
        "InstancesTable": ("userId", {"TaskArnIndex": ["taskArn"], "sanitizedUsername-index": ["sanitizedUsername"],
                                      "runShard-runDeadline-index": ["runShard", "runDeadline"]}),
        "LicensePoolTable": ("licenseId", {"ownerId-index": ["ownerId"]}),
        "ScheduledSessionsTable": ("sessionId", {"userId-index": ["userId"], "startTime-index": ["startTime"],
                                                 "licenseId-startTime-index": ["licenseId", "startTime"],
                                                 "status-startTime-index": ["status", "startTime"]}),
        "LicenseReservationsTable": ("reservationId", {"licenseId-startTime-index": ["licenseId", "startTime"]}),
        "UsageTable": ("usageKey", {}),
    }
    for logical, (hash_key, indexes) in expect.items():
        t = ddb.describe_table(TableName=physical[logical])["Table"]
        check([k["AttributeName"] for k in t["KeySchema"]] == [hash_key], f"{logical} key {t['KeySchema']}")
        got = {g["IndexName"]: [k["AttributeName"] for k in g["KeySchema"]] for g in t.get("GlobalSecondaryIndexes", [])}
        check(got == indexes, f"{logical} indexes {got}")
        t_props = translated["Resources"][logical]["Properties"]
        live_or_template("AWS::DynamoDB::Table", "BillingMode", t.get("BillingModeSummary", {}).get("BillingMode"),
                         t_props.get("BillingMode"), "PAY_PER_REQUEST", f"{logical} billing mode")
        pitr = ddb.describe_continuous_backups(TableName=physical[logical])["ContinuousBackupsDescription"]
        live_or_template("AWS::DynamoDB::Table", "PointInTimeRecoverySpecification",
                         pitr.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus"),
                         "ENABLED" if t_props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
                         else "DISABLED", "ENABLED", f"{logical} point-in-time recovery")
        # moto reads CloudFormation's SSESpecification but looks for the API's key (Enabled),
        # not CloudFormation's (SSEEnabled), so it never reports encryption: the template.
        not_applied.add("AWS::DynamoDB::Table.SSESpecification.SSEEnabled")
        check(t_props.get("SSESpecification") == {"SSEEnabled": True}, f"{logical} encryption {t_props.get('SSESpecification')}")
    # The notifications (outbox) table: its key, its sparse index of pending notifications,
    # TTL on expiresAt (no point-in-time recovery: its items live a week).
    t = ddb.describe_table(TableName=physical["NotificationsTable"])["Table"]
    check([k["AttributeName"] for k in t["KeySchema"]] == ["notificationId"], f"NotificationsTable key {t['KeySchema']}")
    got = {g["IndexName"]: [k["AttributeName"] for k in g["KeySchema"]] for g in t.get("GlobalSecondaryIndexes", [])}
    check(got == {"pendingShard-nextAttemptAt-index": ["pendingShard", "nextAttemptAt"]}, f"NotificationsTable indexes {got}")
    ttl = ddb.describe_time_to_live(TableName=physical["NotificationsTable"])["TimeToLiveDescription"]
    live_or_template("AWS::DynamoDB::Table", "TimeToLiveSpecification", ttl.get("AttributeName"),
                     translated["Resources"]["NotificationsTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"],
                     "expiresAt", "NotificationsTable TTL attribute")
    ttl = ddb.describe_time_to_live(TableName=physical["InstancesTable"])["TimeToLiveDescription"]
    live_or_template("AWS::DynamoDB::Table", "TimeToLiveSpecification",
                     ttl.get("AttributeName"),
                     translated["Resources"]["InstancesTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"],
                     "ttl", "InstancesTable TTL attribute")

    # --- the schedules
    events = client("events")
    fn_arn = conf["FunctionArn"]
    for logical, rate, body in (("AutoShutdownSchedule", "rate(5 minutes)", {"action": "auto-shutdown-check", "userId": "system"}),
                                ("SessionPrepSchedule", "rate(1 minute)", {"action": "prepare-sessions", "userId": "system"}),
                                ("HealthCheckSchedule", "rate(5 minutes)", {"action": "health-check", "userId": "system"})):
        rule_name = physical[logical].split("/")[-1]
        rule = events.describe_rule(Name=rule_name)
        check(rule["ScheduleExpression"] == rate and rule["State"] == "ENABLED", f"{logical} {rule['ScheduleExpression']} {rule['State']}")
        targets = events.list_targets_by_rule(Rule=rule_name)["Targets"]
        check(len(targets) == 1 and targets[0]["Arn"] == fn_arn and json.loads(targets[0]["Input"]) == body,
              f"{logical} targets {targets}")

    # --- the task-state rule: the cluster's task-state changes of the function's families
    rule_name = physical["TaskStateRule"].split("/")[-1]
    rule = events.describe_rule(Name=rule_name)
    pattern = json.loads(rule.get("EventPattern") or "{}")
    cluster_arn = f"arn:aws:ecs:{env['AWS_REGION']}:123456789012:cluster/{env['CLUSTER_NAME']}"
    check(rule["State"] == "ENABLED" and pattern == {
        "source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [cluster_arn], "group": [{"prefix": "family:foundry-"}],
                   "lastStatus": ["RUNNING", "STOPPED"]}}, f"TaskStateRule {rule['State']} {pattern}")
    targets = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    check(len(targets) == 1 and targets[0]["Arn"] == fn_arn and "Input" not in targets[0],
          f"TaskStateRule targets {targets}")
    check(variables.get("START_WAIT") == "poll", f"START_WAIT={variables.get('START_WAIT')}")

    # --- the log group, the on-failure queue and its alarm
    logs = client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{fn_name}")["logGroups"]
    check([(g["logGroupName"], g.get("retentionInDays")) for g in groups] == [(f"/aws/lambda/{fn_name}", 14)],
          f"log group {groups}")
    sqs = client("sqs")
    queue_url = physical["AsyncFailureQueue"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    check(attrs.get("MessageRetentionPeriod") == "1209600", f"queue retention {attrs.get('MessageRetentionPeriod')}")
    queue_arn = attrs["QueueArn"]
    send = next(s for s in doc["Statement"] if s and s.get("Sid") == "AsyncFailureQueue")
    check(send["Resource"] == queue_arn, f"sqs:SendMessage on {send['Resource']}, the queue is {queue_arn}")
    if "AWS::CloudWatch::Alarm" not in skipped:
        cw = client("cloudwatch")
        alarm = cw.describe_alarms(AlarmNames=[f"{fn_name}-async-failures"])["MetricAlarms"]
        check(len(alarm) == 1 and alarm[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
              and alarm[0]["Dimensions"] == [{"Name": "QueueName", "Value": queue_url.rsplit("/", 1)[-1]}],
              f"on-failure queue alarm {alarm}")
    else:
        # Not hosted: the translated alarm must watch the queue's depth.
        props = translated["Resources"]["AsyncFailuresAlarm"]["Properties"]
        check(props["Namespace"] == "AWS/SQS" and props["MetricName"] == "ApproximateNumberOfMessagesVisible"
              and props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["AsyncFailureQueue", "QueueName"]}}],
              f"AsyncFailuresAlarm {props}")
    if "AWS::Lambda::EventInvokeConfig" not in skipped:
        eic = lam.get_function_event_invoke_config(FunctionName=fn_name)
        dest = eic.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        check(dest == queue_arn, f"on-failure destination {dest}")
    else:
        # Not hosted: the translated template must still name the queue as the destination.
        props = translated["Resources"]["AsyncInvokeConfig"]["Properties"]
        check(props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]},
              f"AsyncInvokeConfig destination {props['DestinationConfig']}")
    if not_applied:
        print("deploy_rehearsal: properties moto's CloudFormation does not apply (checked in the translated "
              f"template): {', '.join(sorted(not_applied))}")
    cf.delete_stack(StackName=stack_name)
    return report(t0)


def report(t0: float) -> int:
    took = time.monotonic() - t0
    if failures:
        print(f"deploy_rehearsal: {len(failures)} of {checks} checks failed ({took:.1f} s)")
        return 1
    print(f"deploy_rehearsal: {checks} checks passed ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
