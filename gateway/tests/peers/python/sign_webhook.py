"""Signs a webhook delivery with the official Standard Webhooks package
(`standardwebhooks`), for gateway/tests/webhooks_inbound.rs: an independent
implementation of the scheme the gateway verifies.

Usage: sign_webhook.py SECRET MSG_ID TIMESTAMP < body
Prints the `webhook-signature` header value (`v1,<base64>`).
"""

import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook


def main() -> None:
    secret, msg_id, timestamp = sys.argv[1:4]
    body = sys.stdin.buffer.read().decode("utf-8")
    signed_at = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=signed_at, data=body)
    # The package's own verifier accepts what it signed (a check of the
    # inputs, not of the gateway); it only verifies within its 5 minutes.
    if abs(datetime.now(tz=timezone.utc).timestamp() - int(timestamp)) < 300:
        headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
        Webhook(secret).verify(body, headers, json_parse=False)
    sys.stdout.write(signature)


if __name__ == "__main__":
    main()
