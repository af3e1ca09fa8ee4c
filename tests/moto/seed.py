"""Seeds a running moto server (auth still off) for the CloudFront provider's tests.

Run with the moto venv's python (tests/it/moto.rs does). Reads one JSON spec on stdin:

    {"endpoint": "http://127.0.0.1:PORT",
     "policy_file": "/abs/deploy/aws/cloudfront-exporter-policy.json",
     "distributions": 2,
     "metrics": [{"distribution": 0, "name": "BytesDownloaded",
                  "timestamp": 1764806400, "value": 12345.0}],
     "ce_results": [<GetCostAndUsage responses, queued in this order>],
     "auth": true}

and prints one JSON object on stdout:

    {"users": {"exporter": {"access_key_id", "secret_access_key", "arn"},
               "exporter-no-ce": {...}, "assumer": {...}},
     "roles": {"cdn-exporter": "<arn>", "cdn-exporter-web": "<arn>"},
     "external_id": "ext-1234",
     "oidc_provider": "<arn>",
     "distributions": [{"id", "domain_name", "aliases"}],
     "account_id": "123456789012"}

Everything here is test data for a local moto: no real AWS account or secret is involved.
Notes about moto go to stderr. Any failure is an exception and a non-zero exit.
"""

import copy
import datetime
import json
import sys
import urllib.request

import boto3
from botocore.config import Config

EXTERNAL_ID = "ext-1234"
ALIAS = "cdn0.example.test"
OIDC_URL = "https://oidc.example.test/id/CDNEXPORTERTEST"
# What the deploy policy says as cloudwatch:GetMetricData, moto checks as monitoring:GetMetricData:
# it takes an action's prefix from the SigV4 signing name, and CloudWatch signs as "monitoring".
MOTO_COMPANION = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "MotoOnlyCloudWatchSigningName",
            "Effect": "Allow",
            "Action": ["monitoring:GetMetricData"],
            "Resource": "*",
        }
    ],
}


def note(text):
    print(f"seed.py: {text}", file=sys.stderr)


def client(spec, service):
    return boto3.client(
        service,
        endpoint_url=spec["endpoint"],
        region_name="us-east-1",
        # Any key works while auth is off; these are not credentials of anything.
        aws_access_key_id="AKIAMOTOSEEDER000000",
        aws_secret_access_key="moto-seeder-not-a-secret",
        config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30),
    )


def post(spec, path, body, content_type):
    request = urllib.request.Request(
        spec["endpoint"] + path,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status // 100 != 2:
            raise RuntimeError(f"POST {path}: HTTP {response.status}")


def user(iam, name, policy_arns):
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    for policy_arn in policy_arns:
        iam.attach_user_policy(UserName=name, PolicyArn=policy_arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"], "arn": arn}


def role(iam, name, trust, policy_arns):
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    for policy_arn in policy_arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return arn


def without_action(policy, action):
    """A copy of `policy` with `action` taken out of every statement's Action list."""
    copied = copy.deepcopy(policy)
    for statement in copied["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        statement["Action"] = [a for a in actions if a != action]
    return copied


def distribution_config(index):
    origin = f"origin{index}.example.test"
    config = {
        "CallerReference": f"cdn-usage-exporter-test-{index}",
        "Comment": f"cdn-usage-exporter test distribution {index}",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "origin",
                    "DomainName": origin,
                    "CustomOriginConfig": {
                        "HTTPPort": 80,
                        "HTTPSPort": 443,
                        "OriginProtocolPolicy": "https-only",
                    },
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "origin",
            "ViewerProtocolPolicy": "redirect-to-https",
            # The managed CachingOptimized policy (a constant id in every account).
            "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
        },
    }
    if index == 0:
        config["Aliases"] = {"Quantity": 1, "Items": [ALIAS]}
    return config


def main():
    spec = json.load(sys.stdin)
    policy = json.load(open(spec["policy_file"], encoding="utf-8"))

    iam = client(spec, "iam")
    deploy = iam.create_policy(PolicyName="cdn-usage-exporter", PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
    companion = iam.create_policy(
        PolicyName="cdn-usage-exporter-moto-only",
        PolicyDocument=json.dumps(MOTO_COMPANION),
        Description="moto only: CloudWatch actions are checked under the signing name",
    )["Policy"]["Arn"]
    note(
        "moto quirk: it checks CloudWatch calls as monitoring:GetMetricData (the signing name), so the "
        "moto-only policy cdn-usage-exporter-moto-only grants that; real AWS needs cloudwatch:GetMetricData, "
        "which the deploy policy has"
    )
    no_ce = iam.create_policy(
        PolicyName="cdn-usage-exporter-no-ce",
        PolicyDocument=json.dumps(without_action(policy, "ce:GetCostAndUsage")),
    )["Policy"]["Arn"]

    users = {
        "exporter": user(iam, "exporter", [deploy, companion]),
        "exporter-no-ce": user(iam, "exporter-no-ce", [no_ce, companion]),
    }
    account_id = users["exporter"]["arn"].split(":")[4]
    role_arn = f"arn:aws:iam::{account_id}:role/cdn-exporter"
    assume_only = iam.create_policy(
        PolicyName="cdn-exporter-assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}],
            }
        ),
    )["Policy"]["Arn"]
    users["assumer"] = user(iam, "assumer", [assume_only])

    roles = {
        "cdn-exporter": role(
            iam,
            "cdn-exporter",
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": users["assumer"]["arn"]},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
                    }
                ],
            },
            [deploy, companion],
        )
    }
    assert roles["cdn-exporter"] == role_arn, roles
    oidc = iam.create_open_id_connect_provider(
        Url=OIDC_URL, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["0" * 40]
    )["OpenIDConnectProviderArn"]
    issuer = OIDC_URL.removeprefix("https://")
    roles["cdn-exporter-web"] = role(
        iam,
        "cdn-exporter-web",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com"}},
                }
            ],
        },
        [deploy, companion],
    )

    cloudfront = client(spec, "cloudfront")
    distributions = []
    for index in range(spec.get("distributions", 0)):
        created = cloudfront.create_distribution(DistributionConfig=distribution_config(index))["Distribution"]
        aliases = created["DistributionConfig"].get("Aliases", {}).get("Items", [])
        distributions.append({"id": created["Id"], "domain_name": created["DomainName"], "aliases": aliases})

    cloudwatch = client(spec, "cloudwatch")
    for metric in spec.get("metrics", []):
        distribution = distributions[metric["distribution"]]["id"]
        cloudwatch.put_metric_data(
            Namespace="AWS/CloudFront",
            MetricData=[
                {
                    "MetricName": metric["name"],
                    "Dimensions": [
                        {"Name": "DistributionId", "Value": distribution},
                        {"Name": "Region", "Value": "Global"},
                    ],
                    "Timestamp": datetime.datetime.fromtimestamp(metric["timestamp"], datetime.timezone.utc),
                    "Value": metric["value"],
                    "Unit": metric.get("unit", "None"),
                }
            ],
        )

    results = spec.get("ce_results", [])
    if results:
        post(spec, "/moto-api/static/ce/cost-and-usage-results", json.dumps({"results": results}), "application/json")

    if spec.get("auth", False):
        # text/plain: with a form content type moto reads an empty body and answers 500.
        post(spec, "/moto-api/reset-auth", "0", "text/plain")

    json.dump(
        {
            "users": users,
            "roles": roles,
            "external_id": EXTERNAL_ID,
            "oidc_provider": oidc,
            "distributions": distributions,
            "account_id": account_id,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
