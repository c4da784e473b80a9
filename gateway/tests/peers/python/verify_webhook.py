"""Verifies webhook deliveries with the official Standard Webhooks library.

An independent check of the gateway's webhook signatures, for
tests/events_webhook.rs: the Rust test hands over what its receiver got and
this script says, per delivery, whether `standardwebhooks` accepts it.

Usage: verify_webhook.py SECRET < deliveries.json

stdin: a JSON list of deliveries, each {"headers": {name: value},
"body_base64": "..."}. stdout: a JSON list with, per delivery, "ok" or
"error: <why>". Exits 0 when it could check them all (whatever the
verdicts), 2 on bad input.
"""

import base64
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verdict(webhook: Webhook, delivery: dict) -> str:
    body = base64.b64decode(delivery["body_base64"])
    try:
        # json_parse=False: binary-mode bodies need not be JSON objects.
        webhook.verify(body, delivery["headers"], json_parse=False)
    except WebhookVerificationError as e:
        return f"error: {e}"
    return "ok"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        webhook = Webhook(sys.argv[1])
        deliveries = json.load(sys.stdin)
    except Exception as e:  # noqa: BLE001 - any bad input is reported the same way
        print(f"bad input: {e}", file=sys.stderr)
        return 2
    print(json.dumps([verdict(webhook, d) for d in deliveries]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
