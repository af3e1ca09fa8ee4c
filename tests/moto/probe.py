"""Makes AWS calls with boto3 against a moto server and reports what came back, one result per call.

Run with the moto venv's python (tests/it/moto.rs does). Reads one JSON spec on stdin:

    {"endpoint": "http://127.0.0.1:PORT",
     "calls": [{"service": "ce", "operation": "GetCostAndUsage", "params": {...},
                "credentials": {"access_key_id": "...", "secret_access_key": "...",
                                "session_token": "..."}}]}

`credentials` null (or absent) sends the call unsigned. Timestamps in `params` may be epoch
seconds (boto3 takes them). Prints {"results": [...]} on stdout, in the order of the calls, each
either {"ok": <response without ResponseMetadata>} or {"error": {"code", "message", "status"}}
(a ClientError; `code` is taken from moto's XML error body when botocore could not read it,
`botocore_code` is what botocore said) or {"exception": "<type>: <text>"} (anything else). Datetimes come out as epoch
seconds.
"""

import datetime
import json
import re
import sys

import boto3
import botocore
from botocore.config import Config


def plain(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot put {type(value).__name__} in JSON")


def call(endpoint, spec):
    credentials = spec.get("credentials")
    config = Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30)
    if credentials is None:
        config = config.merge(Config(signature_version=botocore.UNSIGNED))
        keys = {}
    else:
        keys = {
            "aws_access_key_id": credentials["access_key_id"],
            "aws_secret_access_key": credentials["secret_access_key"],
            "aws_session_token": credentials.get("session_token"),
        }
    client = boto3.client(spec["service"], endpoint_url=endpoint, region_name="us-east-1", config=config, **keys)
    method = getattr(client, botocore.xform_name(spec["operation"]))
    try:
        response = method(**spec.get("params", {}))
    except botocore.exceptions.ClientError as e:
        error = e.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        # moto answers auth errors as EC2-style XML even on JSON services: botocore then reports
        # the HTTP status as the code and the whole XML as the message.
        found = re.search(r"<Code>([^<]*)</Code>", message)
        if found:
            code = found.group(1)
            message = (re.search(r"<Message>([^<]*)</Message>", message) or found).group(1)
        return {
            "error": {
                "code": code,
                "botocore_code": error.get("Code", ""),
                "message": message,
                "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0),
            }
        }
    except Exception as e:  # noqa: BLE001 - reported to the test, which decides
        return {"exception": f"{type(e).__name__}: {e}"}
    response.pop("ResponseMetadata", None)
    return {"ok": response}


def main():
    spec = json.load(sys.stdin)
    results = [call(spec["endpoint"], c) for c in spec["calls"]]
    json.dump({"results": results}, sys.stdout, default=plain)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
