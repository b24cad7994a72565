#!/usr/bin/env python3
"""A stand-in for Discord's REST API on 127.0.0.1, for `make run`: it answers what the
function's notifications call, and prints one line per message that arrives.

Subcommands (run with the project venv):

  setup [--port 9010] [--moto http://127.0.0.1:5000]
        create (or update) the bot-token and webhook secrets in the local moto, and print the
        settings that point the function at this sink (KEY=VALUE lines)
  serve [--port 9010]
        answer until stopped: POST /api/v10/users/@me/channels (a DM channel dm-<recipient>),
        POST /api/v10/channels/<id>/messages, POST /api/webhooks/<id>/<token>

The token is a made-up local value; the sink never prints the Authorization header itself,
only whether one came.
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys

DEFAULT_PORT = 9010
TOKEN_SECRET = "local-discord-bot-token"
WEBHOOK_SECRET = "local-discord-webhook"
LOCAL_TOKEN = "local-bot-token-not-a-real-one"


def setup(port: int, moto: str) -> None:
    import boto3  # only setup needs it

    sm = boto3.client(
        "secretsmanager",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    webhook = f"http://127.0.0.1:{port}/api/webhooks/1/local-webhook-token"
    for name, value in ((TOKEN_SECRET, LOCAL_TOKEN), (WEBHOOK_SECRET, webhook)):
        try:
            sm.create_secret(Name=name, SecretString=value)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=name, SecretString=value)
    print(f"DISCORD_TOKEN_SECRET={TOKEN_SECRET}")
    print(f"DISCORD_WEBHOOK_SECRET={WEBHOOK_SECRET}")
    print(f"DISCORD_API_BASE_URL=http://127.0.0.1:{port}/api/v10")


class Sink(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per message, printed below
        pass

    def answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        if path.endswith("/users/@me/channels"):
            self.answer(200, {"id": f"dm-{body.get('recipient_id', '0')}", "type": 1})
            return
        if path.endswith("/messages") or "/webhooks/" in path:
            embed = (body.get("embeds") or [{}])[0]
            fields = "; ".join(f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields", []))
            to = path.split("/")[-2] if path.endswith("/messages") else f"webhook {body.get('content', '')}"
            auth = "with the bot token" if self.headers.get("authorization") else "without a token"
            print(
                f"[discord] to {to} ({auth}): {embed.get('title')} | {embed.get('description')}"
                + (f" | {embed.get('url')}" if embed.get("url") else "")
                + (f" | {fields}" if fields else ""),
                flush=True,
            )
            self.answer(200, {"id": "1", "channel_id": "local"})
            return
        self.answer(404, {"message": "404: Not Found", "code": 0})


def serve(port: int) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink)
    print(f"[discord] stub Discord API on http://127.0.0.1:{port}/api/v10", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--moto", default="http://127.0.0.1:5000")
    v = sub.add_parser("serve")
    v.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = ap.parse_args()
    if args.cmd == "setup":
        setup(args.port, args.moto)
    else:
        serve(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
