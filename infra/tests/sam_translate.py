"""Translate template.yaml with the SAM translator, offline, into plain CloudFormation JSON.

Run with the SAM CLI's venv (it ships samtranslator):

    AWS_DEFAULT_REGION=us-east-1 .tools/sam/bin/python infra/tests/sam_translate.py template.yaml out.json

cfn-lint (1.x) validates SAM resources against SAM's schema but no longer runs the transform, so
what SAM generates (the S3 notification on the landing bucket, the Lambda permissions, the
EventInvokeConfig, the schedule rule) is only seen by linting this output. That is where a
circular dependency between the landing bucket's notification and the sync function would show.

Like `sam validate`, local CodeUri values are replaced by a dummy S3 URI first (the translator
only accepts S3 locations), and no managed policies are looked up (the template uses none), so
no credentials and no network are needed.
"""

import json
import sys

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The template attaches no AWS managed policies by name, so nothing needs resolving."""

    def load(self):
        return {}


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} TEMPLATE OUT.json", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            props = resource.setdefault("Properties", {})
            if isinstance(props.get("CodeUri", "."), str):
                props["CodeUri"] = "s3://offline-placeholder/code.zip"
    translated = transform(template, {}, NoManagedPolicies())
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
