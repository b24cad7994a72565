"""moto_server with an AWS-like ECS task lifecycle.

Started by `localaws.py up` as `.venv/bin/python tests/local-aws/moto_serve.py -H 127.0.0.1 -p PORT`;
every argument goes to moto's own `moto_server` entry point. Before the server starts, this module
patches moto's ECS Task model (moto 5.2.x) so that, as on AWS:

* a Fargate task starts in PROVISIONING and goes PROVISIONING -> PENDING -> ACTIVATING -> RUNNING;
* a RUNNING task stays RUNNING until StopTask (stock moto drifts it to STOPPED on its own);
* StopTask sets desiredStatus=STOPPED and returns the task with its current lastStatus; the task
  then goes DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED (a task stopped before it was
  RUNNING goes DEPROVISIONING -> STOPPED); stoppedReason is the reason given, stopCode
  UserInitiated;
* a task of a "run to completion" family (env LOCALAWS_ECS_RUN_TO_COMPLETION, comma-separated,
  default `foundry-efs-cleanup,foundry-permission-reset`) stops by itself after RUNNING, as if its
  essential container exited with code 0 (stopCode EssentialContainerExited);
* createdAt, startedAt, stoppingAt, stoppedAt and stopCode are filled in; the container's
  lastStatus follows the task and its exitCode is present only once the task is STOPPED
  (one container per container definition, as ECS reports them; stock moto reports the first);
* ListTasks without desiredStatus lists only desiredStatus=RUNNING tasks (the AWS default), after
  the tasks on a time-based progression caught up (a task moves on whether anyone looks or not);
* StopTask of an unknown task answers InvalidParameterException (stock moto: HTTP 500).

It also makes each DynamoDB request atomic, as DynamoDB is: moto serves requests on several
threads and its DynamoDB backend takes no lock, so two concurrent conditional writes or
transactions on the same item could both pass their conditions, and a read could see half of a
transaction. Every DynamoDB request is handled under one lock.

How fast each step happens is moto's state-manager setting (see README.md):
`POST /moto-api/state-manager/set-transition` with model_name `ecs::task` (all tasks) or
`ecs::task/<family>` (only tasks of that task-definition family; takes precedence).

Two extra endpoints (documented in README.md):
* `GET  /moto-api/localaws/info` -> {"localaws": true, "ecsLifecycle": [...], "patchDigest": "<sha256 of this file>"}
* `POST /moto-api/localaws/ecs/set-task-status` {"task": "<arn or id>", "lastStatus": "PENDING",
  "exitCode": 0?} -> the task's new state; sets a task's lastStatus directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from datetime import datetime, timedelta, timezone

from moto.core.responses import ActionResult
from moto.dynamodb.responses import DynamoHandler
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import InvalidParameterException
from moto.moto_api import state_manager
from moto.moto_api._internal import urls as moto_api_urls

STARTING = ["PROVISIONING", "PENDING", "ACTIVATING", "RUNNING"]
STOPPING = ["DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"]
ALL_STATES = STARTING + STOPPING
RUN_TO_COMPLETION = {
    f.strip()
    for f in os.environ.get(
        "LOCALAWS_ECS_RUN_TO_COMPLETION", "foundry-efs-cleanup,foundry-permission-reset"
    ).split(",")
    if f.strip()
}

_LOCK = threading.RLock()
Task = ecs_models.Task
Backend = ecs_models.EC2ContainerServiceBackend


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _family(task: Task) -> str:
    # arn:aws:ecs:us-east-1:123456789012:task-definition/<family>:<revision>
    return task.task_definition_arn.split("/")[-1].rsplit(":", 1)[0]


def _transition_config(task: Task) -> dict:
    custom = getattr(state_manager, "_transitions", {})
    per_family = custom.get(f"ecs::task/{task._localaws_family}")
    if per_family:
        return per_family
    return state_manager.get_transition("ecs::task")


def _enter(task: Task, new: str) -> None:
    """Record side effects of entering state `new`."""
    old = task._status
    task._status = new
    if new == old:
        return
    now = _now()
    if new == "RUNNING" and getattr(task, "started_at", None) is None:
        task.started_at = now
    if new in STOPPING and getattr(task, "stopping_at", None) is None:
        task.stopping_at = now
    if new == "STOPPED":
        task.stopped_at = now
        task.execution_stopped_at = now
        task.desired_status = "STOPPED"
    for c in task.containers:
        if new in ("PROVISIONING", "PENDING", "ACTIVATING"):
            c.last_status = "PENDING"
        elif new in ("RUNNING", "DEACTIVATING", "STOPPING"):
            c.last_status = "RUNNING"
        else:
            c.last_status = "STOPPED"
            if new == "STOPPED" and c.exitCode is None:
                c.exitCode = task._localaws_exit_code


def _next(task: Task, cur: str) -> str:
    stop_wanted = task.desired_status == "STOPPED"
    if cur in ("PROVISIONING", "PENDING"):
        return "DEPROVISIONING" if stop_wanted else STARTING[STARTING.index(cur) + 1]
    if cur == "ACTIVATING":
        return "DEACTIVATING" if stop_wanted else "RUNNING"
    if cur == "RUNNING":
        if stop_wanted:
            return "DEACTIVATING"
        if task._localaws_run_to_completion:
            # The essential container exited on its own (exit code 0).
            task.desired_status = "STOPPED"
            task.stop_code = "EssentialContainerExited"
            task.stopped_reason = "Essential container in task exited"
            return "DEACTIVATING"
        return "RUNNING"
    if cur in STOPPING[:-1]:
        return STOPPING[STOPPING.index(cur) + 1]
    return cur


def _status_get(task: Task) -> str:
    with _LOCK:
        cfg = _transition_config(task)
        progression = cfg.get("progression")
        cur = task._status
        if progression == "immediate":
            nxt = _next(task, cur)
            while nxt != cur:
                _enter(task, nxt)
                cur, nxt = nxt, _next(task, nxt)
        elif progression == "manual":
            if task._tick >= int(cfg.get("times", 1)):
                _enter(task, _next(task, cur))
                task._tick = 0
            # A later switch to "time" counts from the last read, not from the task's creation.
            task._time_progressed = datetime.now()
        elif progression == "time":
            seconds = float(cfg.get("seconds", 1))
            now = datetime.now()
            # Catch up: one step per elapsed period (stock moto does one step per read).
            while (now - task._time_progressed).total_seconds() >= seconds:
                nxt = _next(task, task._status)
                if nxt == task._status:
                    task._time_progressed = now
                    break
                _enter(task, nxt)
                task._time_progressed += timedelta(seconds=seconds)
        return task._status


def _status_set(task: Task, value: str) -> None:
    with _LOCK:
        _enter(task, value)


_orig_task_init = Task.__init__


def _task_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _orig_task_init(self, *args, **kwargs)
    # Stock moto gives a task one container, from the first container definition; ECS gives
    # it one per definition (the helper tasks have several, and their exit codes matter).
    task_def = next((a for a in [*args, *kwargs.values()] if hasattr(a, "container_definitions")), None)
    if task_def is not None and len(task_def.container_definitions) > 1:
        containers = []
        for cd in task_def.container_definitions:
            c = ecs_models.Container(task_def)
            c.image, c.name, c.command = cd.get("image"), cd.get("name"), cd.get("command")
            c.cpu, c.memory, c.environment = cd.get("cpu", 0), cd.get("memory"), cd.get("environment")
            containers.append(c)
        self.containers = containers
    self._localaws_family = _family(self)
    self._localaws_run_to_completion = self._localaws_family in RUN_TO_COMPLETION
    self._localaws_exit_code = 0
    self._status = "PROVISIONING"
    self._tick = 0
    self._time_progressed = datetime.now()
    self.created_at = _now()
    self.started_at = None
    self.stopping_at = None
    self.stopped_at = None
    self.execution_stopped_at = None
    self.stop_code = None
    for c in self.containers:
        c.last_status = "PENDING"
        c.exitCode = None


Task.__init__ = _task_init
Task.status = property(_status_get, _status_set)

_orig_stop_task = Backend.stop_task


def _stop_task(self, cluster_str: str, task_str: str, reason: str):  # type: ignore[no-untyped-def]
    cluster = self._get_cluster(cluster_str)
    task_id = task_str.split("/")[-1]
    for arn, task in (self.tasks.get(cluster.name) or {}).items():
        if arn.endswith(task_id):
            if task.container_instance_arn:
                # EC2 launch type: keep moto's own bookkeeping of instance resources.
                return _orig_stop_task(self, cluster_str, task_str, reason)
            with _LOCK:
                if task.desired_status != "STOPPED":
                    task.desired_status = "STOPPED"
                    task.stopped_reason = reason or ""
                    task.stop_code = "UserInitiated"
                    task._tick = 0
                    task._time_progressed = datetime.now()
            return task
    raise InvalidParameterException("The referenced task was not found.")


Backend.stop_task = _stop_task

_orig_describe_tasks = Backend.describe_tasks


def _describe_tasks(self, cluster_str, tasks):  # type: ignore[no-untyped-def]
    found = _orig_describe_tasks(self, cluster_str, tasks)
    # Progress now, before the response is serialized: the serializer reads `containers` (and
    # the *At fields) before `lastStatus`, so they would lag one call behind the status.
    for task in found:
        _ = task.status
    return found


Backend.describe_tasks = _describe_tasks


def _describe_tasks_response(self):  # type: ignore[no-untyped-def]
    # As stock moto, plus AWS's failures entry {"arn": ..., "reason": "MISSING"} for each
    # requested task that does not exist (stock moto returns "failures": []).
    requested = self._get_param("tasks", [])
    tasks = self.ecs_backend.describe_tasks(self._get_param("cluster", "default"), requested)
    if "TAGS" in self._get_param("include", []):
        self._include_in_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    else:
        self._exclude_from_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    found_ids = {t.task_arn.split("/")[-1] for t in tasks}
    failures = [
        {"arn": r, "reason": "MISSING"} for r in requested if r.split("/")[-1] not in found_ids
    ]
    return ActionResult({"tasks": tasks, "failures": failures})


ecs_responses.EC2ContainerServiceResponse.describe_tasks = _describe_tasks_response


def _list_tasks_response(self):  # type: ignore[no-untyped-def]
    # On AWS a task moves on whether anyone looks or not: a run-to-completion task that has
    # stopped by now is no longer listed as RUNNING. Tasks on a time-based progression catch
    # up before the listing filters them (reading a task's status does that); manual
    # progressions are left alone, since reading them counts as a tick.
    cluster = self._get_param("cluster", "default")
    for task in self.ecs_backend.list_tasks(cluster, None, None, None, None, None):
        if _transition_config(task).get("progression") == "time":
            _ = task.status
    # AWS: "The default status filter is RUNNING" (desiredStatus). Only the API default changes;
    # moto's internal callers of Backend.list_tasks() still see every task.
    tasks = self.ecs_backend.list_tasks(
        self._get_param("cluster", "default"),
        self._get_param("containerInstance"),
        self._get_param("family"),
        self._get_param("startedBy"),
        self._get_param("serviceName"),
        self._get_param("desiredStatus") or "RUNNING",
    )
    return ActionResult({"taskArns": [t.task_arn for t in tasks]})


ecs_responses.EC2ContainerServiceResponse.list_tasks = _list_tasks_response


def _find_task(ident: str):
    for account in ecs_models.ecs_backends.values():
        for backend in account.values():
            for cluster_tasks in backend.tasks.values():
                for arn, task in cluster_tasks.items():
                    if arn == ident or arn.endswith("/" + ident.split("/")[-1]):
                        return task
    return None


def _describe(task: Task) -> dict:
    return {
        "taskArn": task.task_arn,
        "family": task._localaws_family,
        "lastStatus": task._status,
        "desiredStatus": task.desired_status,
    }


# The digest of this file as the server started with it: `localaws.py up` restarts a moto it
# started from an older version of this file instead of reusing it.
with open(__file__, "rb") as _own:
    PATCH_DIGEST = hashlib.sha256(_own.read()).hexdigest()


def localaws_info(request, full_url, headers):  # type: ignore[no-untyped-def]
    return 200, {"Content-Type": "application/json"}, json.dumps(
        {
            "localaws": True,
            "ecsLifecycle": ALL_STATES,
            "runToCompletion": sorted(RUN_TO_COMPLETION),
            "patchDigest": PATCH_DIGEST,
        }
    )


def localaws_set_task_status(request, full_url, headers):  # type: ignore[no-untyped-def]
    if request.method != "POST":
        return 405, {}, json.dumps({"error": "POST only"})
    try:
        body = json.loads(request.get_data() or b"{}")
        ident = body["task"]
        status = body["lastStatus"].upper()
    except (ValueError, KeyError, AttributeError):
        return 400, {}, json.dumps({"error": 'body must be {"task": "<arn or id>", "lastStatus": "..."}'})
    if status not in ALL_STATES:
        return 400, {}, json.dumps({"error": f"lastStatus must be one of {ALL_STATES}"})
    with _LOCK:
        task = _find_task(ident)
        if task is None:
            return 404, {}, json.dumps({"error": f"task {ident} not found"})
        if "exitCode" in body:
            task._localaws_exit_code = body["exitCode"]
        if status in STOPPING and task.desired_status != "STOPPED":
            task.desired_status = "STOPPED"
            task.stop_code = task.stop_code or "EssentialContainerExited"
            task.stopped_reason = task.stopped_reason or "Essential container in task exited"
        _enter(task, status)
        task._tick = 0
        task._time_progressed = datetime.now()
        return 200, {"Content-Type": "application/json"}, json.dumps(_describe(task))


_DYNAMODB_LOCK = threading.Lock()
_dynamodb_call_action = DynamoHandler.call_action


def _atomic_dynamodb_call_action(self):  # type: ignore[no-untyped-def]
    with _DYNAMODB_LOCK:
        return _dynamodb_call_action(self)


DynamoHandler.call_action = _atomic_dynamodb_call_action

moto_api_urls.url_paths["{0}/moto-api/localaws/info"] = localaws_info
moto_api_urls.url_paths["{0}/moto-api/localaws/ecs/set-task-status"] = localaws_set_task_status


if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
