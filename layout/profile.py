#!/usr/bin/env python3
"""The code of `bootstrap` that a cold start and typical invocations run, as a linker symbol order.

`make layout` runs this. It starts the release binary under valgrind's callgrind against a
stand-in Lambda Runtime API of its own (the local AWS's env file is the function's
configuration), three times:

1. a cold start and one `status` event (the call the bot makes most);
2. a cold start and 20 `status` events;
3. a cold start and a typical sequence: a user's lifecycle, the read-only actions, the two
   scheduled sweeps.

callgrind records the address of every instruction that ran (`--dump-instr=yes`). The linker
map of the same build (`-Wl,-Map=…`, written by build.rs when FOUNDRY_LINK_MAP is set) says
which function (input section) holds each address. The file written lists those functions'
symbols: first the ones of run 1, then the others of run 2, then those of run 3, each group
in the order the binary has them. (Run 2 adds the few functions that only a second
invocation runs, such as reusing a connection: grouped, they fill one block, not one in each
of several.) build.rs hands it to the linker (`--symbol-ordering-file`), which places
them at the start of the code, next to each other.

Why: on a page fault in a file mapping, the kernel maps the whole 64 KiB block around the
page (fault-around). The code that a cold start and an invocation run is spread over nearly
every 64 KiB block of the binary, so nearly all of it becomes resident. Packed together, it
fills a few blocks.
"""

import argparse
import bisect
import collections
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time

ADMIN = "000000000000000001"


def status_events(n):
    return [{"action": "status", "userId": "100000000000000001"}] * n


def typical_events(user_id, now):
    """A user's lifecycle, the read-only actions the bot sends, and the two schedules."""
    san = "layout" + user_id[-8:]
    day = 86_400
    return [
        {"action": "status", "userId": "100000000000000001"},
        {"action": "create", "userId": user_id, "sanitizedUsername": san,
         "foundryUsername": "gm@example.com", "foundryPassword": "correct-horse-battery",
         "licenseType": "byol", "allowLicenseSharing": True, "maxConcurrentUsers": 1},
        {"action": "start", "userId": user_id},
        {"action": "status", "userId": user_id},
        {"action": "list-all", "userId": ADMIN},
        {"action": "schedule-session", "userId": user_id, "startTime": now + 2 * day,
         "endTime": now + 2 * day + 3 * 3600, "licenseType": "byol", "sessionTitle": "Layout",
         "preferredLicenseId": "byol-" + user_id},
        {"action": "list-sessions", "userId": user_id},
        {"action": "check-availability", "userId": user_id, "startTime": now + 3 * day,
         "endTime": now + 3 * day + 3600, "licenseType": "pooled"},
        {"action": "get-user-costs", "userId": user_id},
        {"action": "admin-overview", "userId": ADMIN},
        {"action": "auto-shutdown-check", "userId": "system"},
        {"action": "prepare-sessions", "userId": "system"},
        {"action": "stop", "userId": user_id},
        {"action": "destroy", "userId": user_id},
    ]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """The stand-in Runtime API: hands out the events, one per `/next`."""

    protocol_version = "HTTP/1.1"
    events = []
    served = 0
    answers = []
    done = threading.Event()  # the binary asked for an event after the last one

    def log_message(self, *args):
        pass

    def _reply(self, code, body, headers=()):
        data = body.encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        cls = type(self)
        if not self.path.endswith("/invocation/next"):
            return self._reply(404, "{}")
        if cls.served >= len(cls.events):
            cls.done.set()
            time.sleep(600)  # the binary is stopped while it waits here
            return
        event = cls.events[cls.served]
        cls.served += 1
        deadline = int(time.time() * 1000) + 120_000
        self._reply(200, json.dumps(event), [
            ("Lambda-Runtime-Aws-Request-Id", f"layout-{cls.served}"),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn",
             "arn:aws:lambda:us-east-1:000000000000:function:foundry-vtt-instance-management"),
            # Lambda sends one with every event (the runtime puts it in _X_AMZN_TRACE_ID).
            ("Lambda-Runtime-Trace-Id", f"Root=1-5759e988-bd862e3fe1be46a99427{cls.served:04x};Sampled=0"),
            ("Content-Type", "application/json"),
        ])

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode(errors="replace")
        type(self).answers.append((self.path, body))
        self._reply(202, "{}")


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def run_under_callgrind(binary, env_file, events, out):
    """Runs `binary` through `events` under callgrind (profile written to `out`) → the
    status codes of its answers."""
    RuntimeApi.events, RuntimeApi.served, RuntimeApi.answers = events, 0, []
    RuntimeApi.done = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # As in Lambda: the function's configuration and the runtime's variables, nothing else.
    env = read_env_file(env_file)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "foundry-vtt-instance-management",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/foundry-vtt-instance-management",
        "AWS_LAMBDA_LOG_STREAM_NAME": "layout",
    })
    cmd = ["valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-strings=no",
           "--compress-pos=no", f"--callgrind-out-file={out}", f"--log-file={out}.log", binary]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not RuntimeApi.done.wait(timeout=1):
            if proc.poll() is not None:
                sys.exit(f"layout: {binary} exited ({proc.returncode}) before its last event; see {out}.log")
    finally:
        proc.terminate()  # callgrind writes its profile on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.shutdown()
    codes = collections.Counter()
    for (path, body), event in zip(RuntimeApi.answers, events):
        if not path.endswith("/response"):
            sys.exit(f"layout: {event.get('action')} failed: {body[:300]}")
        code = json.loads(body).get("statusCode")
        codes[code] += 1
        expected_error = event.get("userId") == "100000000000000001"  # "Instance not found"
        if code != 200 and not expected_error:
            sys.exit(f"layout: {event.get('action')} answered {code}: {body[:300]}")
    return codes


def executed_addresses(callgrind_out, binary):
    """Every address in `binary` at which callgrind counted an executed instruction (each
    cost line of `--dump-instr=yes` starts with one). Jumps and tail calls between functions
    are seen too, which function entries alone would miss."""
    real = os.path.realpath(binary)
    addresses, in_binary = set(), False
    with open(callgrind_out, errors="replace") as f:
        for line in f:
            if line.startswith("ob="):
                in_binary = os.path.realpath(line[3:].strip()) == real
            elif in_binary and line.startswith("0x"):
                addresses.add(int(line.split(None, 1)[0], 16))
    return addresses


MAP_LINE = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+(\s+)(.*)$")


def code_sections(map_file):
    """lld's map (`--no-demangle`) → the input sections of the code, as sorted
    [(vma, size, first symbol)]."""
    sections, out_name, current = [], None, None
    with open(map_file, errors="replace") as f:
        for line in f:
            m = MAP_LINE.match(line)
            if not m:
                continue
            vma, size, indent, text = int(m.group(1), 16), int(m.group(2), 16), len(m.group(3)), m.group(4)
            if indent == 1:  # an output section
                out_name, current = text.split()[0], None
            elif ":(" in text:  # an input section
                current = [vma, size, None] if out_name.startswith(".text") else None
                if current:
                    sections.append(current)
            elif current is not None and current[2] is None and text.strip():
                current[2] = text.strip()  # its first symbol
    return sorted(tuple(s) for s in sections if s[2])


def hot_sections(sections, addresses):
    """The sections that hold one of `addresses`, in address order."""
    starts = [s[0] for s in sections]
    hot = set()
    for a in addresses:
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and sections[i][0] <= a < sections[i][0] + max(sections[i][1], 1):
            hot.add(i)
    return [sections[i] for i in sorted(hot)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the release bootstrap, linked with a map")
    ap.add_argument("--map", required=True, help="its lld map file (--no-demangle)")
    ap.add_argument("--env", required=True, help="the local AWS's env file")
    ap.add_argument("--work", required=True, help="a directory for callgrind's profiles")
    ap.add_argument("--out", required=True, help="the symbol order file to write")
    ap.add_argument("--status-events", type=int, default=20)
    args = ap.parse_args()

    os.makedirs(args.work, exist_ok=True)
    sections = code_sections(args.map)
    if not sections:
        sys.exit(f"layout: no code sections with symbols in {args.map}")
    user_id = "7" + str(int(time.time() * 1_000_000))[-17:]
    runs = [("first", status_events(1)),
            ("status", status_events(args.status_events)),
            ("typical", typical_events(user_id, int(time.time())))]
    order, seen, total = [], set(), sum(s[1] for s in sections)
    for name, events in runs:
        out = os.path.join(args.work, f"callgrind-{name}.out")
        codes = run_under_callgrind(args.binary, args.env, events, out)
        hot = hot_sections(sections, executed_addresses(out, args.binary))
        new = [s for s in hot if s[2] not in seen]
        seen.update(s[2] for s in new)
        order.extend(new)
        print(f"layout: run '{name}': {len(events)} events (status codes {dict(codes)}): "
              f"{len(hot)} functions, {sum(s[1] for s in hot) / 2**20:.2f} MiB of "
              f"{total / 2**20:.2f} MiB of code; {len(new)} not in an earlier run")
    with open(args.out, "w") as f:
        f.writelines(s[2] + "\n" for s in order)
    print(f"layout: {len(order)} symbols, {sum(s[1] for s in order) / 2**20:.2f} MiB → {args.out}")


if __name__ == "__main__":
    main()
