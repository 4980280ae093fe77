"""Checks on template.yaml that cfn-lint and `sam validate` cannot make.

The linters know CloudFormation; they do not know catalog-sync's contract (the README): which
environment variables each function reads (infra/function-env.json, shared with the Rust config
code), which key prefixes expire, which S3 actions each function needs on which prefix, what the
sample events must look like. These tests read the real files and fail when they drift.

Run with the cfn-lint venv (its cfnlint.decode loader understands !Ref, !Sub and the other short
tags, and it ships PyYAML):

    .tools/cfn-lint/bin/python infra/tests/test_template.py [-v]

infra/check-template.sh runs it after the linters; it also sets CATALOG_SYNC_TRANSLATED to the
SAM-translated template (infra/tests/sam_translate.py) so the generated resources are checked too.
The last line printed is "tests: N passed, M failed, K skipped".
"""

import copy
import functools
import json
import os
import re
import subprocess
import sys
import tomllib
import unittest
import urllib.parse

import yaml
from cfnlint.decode import decode

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEMPLATE = os.environ.get("CATALOG_SYNC_TEMPLATE", os.path.join(ROOT, "template.yaml"))
FUNCTION_ENV = os.path.join(ROOT, "infra", "function-env.json")

SYNC = "SyncOnArrivalFunction"
POLL = "PollBatchStatusFunction"
FUNCTIONS = {SYNC: "sync-on-arrival", POLL: "poll-batch-status"}
ROLES = {SYNC: "SyncOnArrivalRole", POLL: "PollBatchStatusRole"}
LOG_GROUPS = {SYNC: "SyncOnArrivalLogGroup", POLL: "PollBatchStatusLogGroup"}

# README, "Configuration": every variable the product reads, plus RUST_LOG for the log filter
# and the two tuning knobs the README documents (PRODUCT_TYPE_MAPPING, POLL_CONCURRENCY).
CONTRACT_ENV = {
    "CATALOG_ID", "ACCESS_TOKEN_SECRET_ARN", "META_ACCESS_TOKEN", "GRAPH_API_BASE_URL",
    "GRAPH_API_VERSION", "SYNCED_BUCKET", "LANDING_BUCKET", "LANDING_PREFIX", "ARCHIVE_PREFIX",
    "REJECTED_PREFIX", "FAILED_PREFIX", "ALERT_TOPIC_ARN", "BATCH_SIZE", "PENDING_MAX_AGE",
    "PRODUCT_TYPE_MAPPING", "POLL_CONCURRENCY", "RUST_LOG",
}
# Variables the product added to the original configuration list (resumable files and the sweep, the column
# mapping, change detection, the local endpoint); each must be documented in the README's configuration table.
ADDED_ENV = {
    "CONTINUE_QUEUE_URL",
    "STALE_FILE_AGE",
    "MAX_REDRIVES",
    "COLUMN_MAPPING",
    "AWS_ENDPOINT_URL",
    "SNAPSHOT_PREFIX",
    "RESEND_AFTER",
    "MAX_DELETE_FRACTION",
}
# The README's default prefixes.
PREFIX_DEFAULTS = {
    "LANDING_PREFIX": "data/", "ARCHIVE_PREFIX": "archive/",
    "REJECTED_PREFIX": "rejected/", "FAILED_PREFIX": "failed/",
}
LANDING_EXPIRING = ["archive/", "rejected/", "failed/"]
SYNCED_EXPIRING = ["synced/", "reports/", "checked/"]
NEVER_EXPIRING = {"LandingBucket": ["data/"], "SyncedBucket": ["pending/", "progress/"]}

# What each function may do in S3, per (bucket, key pattern); "" is the bucket itself.
# The sync function receives one file: reads and removes it from data/, files it under archive/,
# rejected/ or failed/ (copy + delete; *Tagging so tagged uploads copy), writes the batch bodies,
# the report and the pending records, and checkpoints large files under progress/.
# ListBucket lets a GET of a missing key answer 404 instead of 403 (idempotent re-delivery).
_LANDING_RW = {
    ("landing", ""): {"s3:ListBucket"},
    ("landing", "data/*"): {"s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject"},
    ("landing", "archive/*"): {"s3:PutObject", "s3:PutObjectTagging"},
    ("landing", "rejected/*"): {"s3:PutObject", "s3:PutObjectTagging"},
    ("landing", "failed/*"): {"s3:PutObject", "s3:PutObjectTagging"},
}
EXPECTED_S3 = {
    SYNC: {
        **_LANDING_RW,
        ("synced", ""): {"s3:ListBucket"},
        ("synced", "synced/*"): {"s3:PutObject"},
        ("synced", "reports/*"): {"s3:PutObject"},
        ("synced", "pending/*"): {"s3:PutObject"},
        ("synced", "progress/*"): {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
    },
    # The poller lists and resolves pending/ handles (-> checked/), reads synced/ and reports/ to
    # map item errors back to lines, re-drives files left in data/ through the continuation
    # queue, and moves files it gives up on to failed/ (with their report).
    POLL: {
        ("landing", ""): {"s3:ListBucket"},
        ("landing", "data/*"): {"s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject"},
        ("landing", "failed/*"): {"s3:PutObject", "s3:PutObjectTagging"},
        ("synced", ""): {"s3:ListBucket"},
        ("synced", "pending/*"): {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        ("synced", "checked/*"): {"s3:PutObject"},
        ("synced", "synced/*"): {"s3:GetObject", "s3:PutObject"},
        ("synced", "reports/*"): {"s3:GetObject", "s3:PutObject"},
        ("synced", "progress/*"): {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
    },
}

# `sam local invoke` resolves pseudo parameters to these values (samcli intrinsics_symbol_table).
# Each function's binary: the keys of what the metric_names example of crates/sync prints.
BINARIES = {SYNC: "sync-on-arrival", POLL: "poll-batch-status"}

SAM_LOCAL_PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::StackName": "local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/"
    "local/51af3dc0-da77-11e4-872e-1234567db123",
}


# ----------------------------------------------------------------------------- helpers

def plain(node):
    """cfnlint's decoded nodes (dict_node, str_node, ...) as plain Python values."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def load_template(path=TEMPLATE):
    tpl, matches = decode(path)
    if matches:
        raise AssertionError(f"{path} does not parse: {[str(m) for m in matches]}")
    return plain(tpl)


def as_list(v):
    return v if isinstance(v, list) else [v]


def ref(name):
    return {"Ref": name}


def getatt(name, attr):
    return {"Fn::GetAtt": [name, attr]}


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def references(node, logical_id):
    """Does node refer to logical_id (Ref, GetAtt, or a ${Id} / ${Id.Attr} variable in a Sub)?"""
    for n in walk(node):
        if isinstance(n, dict):
            if n.get("Ref") == logical_id:
                return True
            ga = n.get("Fn::GetAtt")
            if ga is not None:
                target = ga[0] if isinstance(ga, list) else str(ga).split(".")[0]
                if target == logical_id:
                    return True
            sub = n.get("Fn::Sub")
            if sub is not None:
                text = sub[0] if isinstance(sub, list) else sub
                if isinstance(text, str) and re.search(r"\$\{" + re.escape(logical_id) + r"[.}]", text):
                    return True
    return False


def evaluate(node, pseudo, params=None):
    """A small evaluator for the intrinsics used in names: Ref (pseudo/params), Sub, Select, Split, Join."""
    params = params or {}
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg in pseudo:
                return pseudo[arg]
            if arg in params:
                return params[arg]
            raise ValueError(f"cannot evaluate Ref {arg}")
        if fn == "Fn::Select":
            return evaluate(arg[1], pseudo, params)[int(arg[0])]
        if fn == "Fn::Split":
            return evaluate(arg[1], pseudo, params).split(arg[0])
        if fn == "Fn::Join":
            return arg[0].join(evaluate(v, pseudo, params) for v in arg[1])
        if fn == "Fn::Sub":
            text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            values = {k: evaluate(v, pseudo, params) for k, v in variables.items()}

            def repl(m):
                key = m.group(1)
                if key in values:
                    return values[key]
                if key in pseudo:
                    return pseudo[key]
                if key in params:
                    return params[key]
                raise ValueError(f"cannot evaluate ${{{key}}}")

            return re.sub(r"\$\{([^}!]+)\}", repl, text)
    raise ValueError(f"cannot evaluate {node!r}")


_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON_FIELD = {
    0: r"[0-9,\-*/]+",                       # minutes
    1: r"[0-9,\-*/]+",                       # hours
    2: r"[0-9,\-*/?LW]+",                    # day of month
    3: r"[0-9A-Za-z,\-*/]+",                 # month
    4: r"[0-9A-Za-z,\-*?L#]+",               # day of week
    5: r"[0-9,\-*/]+",                       # year
}


def parse_schedule(expr):
    """Parse an EventBridge rule schedule expression. Returns the interval in seconds for rate()
    expressions and None for cron(); raises ValueError if EventBridge would reject it."""
    m = _RATE.fullmatch(expr)
    if m:
        value, unit = int(m.group(1)), m.group(2)
        if value < 1:
            raise ValueError(f"{expr}: the rate must be positive")
        if (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"{expr}: use the singular unit for 1 and the plural otherwise")
        return value * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
    if expr.startswith("cron(") and expr.endswith(")"):
        fields = expr[5:-1].split(" ")
        if len(fields) != 6:
            raise ValueError(f"{expr}: cron needs 6 fields (minutes hours day-of-month month day-of-week year)")
        for i, f in enumerate(fields):
            if not re.fullmatch(_CRON_FIELD[i], f):
                raise ValueError(f"{expr}: bad cron field {f!r}")
        if (fields[2] == "?") == (fields[4] == "?"):
            raise ValueError(f"{expr}: exactly one of day-of-month and day-of-week must be '?'")
        return None
    raise ValueError(f"{expr}: not a rate(...) or cron(...) expression")


def policy_statements(template):
    """Every IAM policy statement in the template, with where it came from."""
    out = []
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        docs = []
        t = res.get("Type")
        if t == "AWS::IAM::Role":
            docs += [(f"{lid}.{p.get('PolicyName')}", p["PolicyDocument"]) for p in props.get("Policies", [])]
        elif t in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy",
                   "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            docs.append((lid, props.get("PolicyDocument", {})))
        elif t == "AWS::Serverless::Function":
            for p in as_list(props.get("Policies", [])):
                if isinstance(p, dict) and "Statement" in p:
                    docs.append((f"{lid}.Policies", p))
                elif p:
                    docs.append((f"{lid}.Policies", {"Statement": [{"Effect": "Allow", "Action": ["<policy template or managed policy>"], "Resource": "*", "_raw": p}]}))
        for where, doc in docs:
            for st in as_list(doc.get("Statement", [])):
                out.append((where, st))
    return out


def canonical_s3_resource(resource, template):
    """('landing'|'synced', key pattern) for the S3 ARNs the roles use, else None."""
    landing_sub = template["Resources"]["LandingBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    landing_prefix = "arn:${AWS::Partition}:s3:::" + landing_sub[0]
    if isinstance(resource, dict):
        if resource == getatt("SyncedBucket", "Arn"):
            return ("synced", "")
        if resource == getatt("LandingBucket", "Arn"):
            return ("landing", "")
        sub = resource.get("Fn::Sub")
        if isinstance(sub, str):
            for bucket, lid in (("synced", "SyncedBucket"), ("landing", "LandingBucket")):
                head = "${" + lid + ".Arn}"
                if sub == head:
                    return (bucket, "")
                if sub.startswith(head + "/"):
                    return (bucket, sub[len(head) + 1:])
        if isinstance(sub, list) and sub[1] == landing_sub[1]:
            if sub[0] == landing_prefix:
                return ("landing", "")
            if sub[0].startswith(landing_prefix + "/"):
                return ("landing", sub[0][len(landing_prefix) + 1:])
    return None


@functools.lru_cache(maxsize=1)
def emitted_metric_names():
    """{logical id: metric names} the functions emit, from the Rust source of truth
    (crates/sync/src/metrics.rs, `emitted_names`): the file CATALOG_SYNC_METRIC_NAMES names
    (infra/check-template.sh writes it), else the example run here."""
    path = os.environ.get("CATALOG_SYNC_METRIC_NAMES")
    if path:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    else:
        subprocess.run(["cargo", "build", "--quiet", "--locked", "--workspace", "--all-features",
                        "--example", "metric_names"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        text = subprocess.run([os.path.join(ROOT, target, "debug", "examples", "metric_names")],
                              capture_output=True, text=True, check=True).stdout
    names = json.loads(text)
    return {lid: set(names[binary]) for lid, binary in BINARIES.items()}


def dashboard_metrics(body):
    """(namespace, name, dimensions) of every metric of every widget of a DashboardBody (a Sub
    string: ${Logical.Id} stays as text)."""
    sub = body["Fn::Sub"]
    text = sub if isinstance(sub, str) else sub[0]
    out = []
    for widget in json.loads(text)["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            parts = [p for p in row if not isinstance(p, dict)]
            namespace, name, dims = parts[0], parts[1], parts[2:]
            out.append((widget["properties"].get("title"), namespace, name,
                        dict(zip(dims[::2], dims[1::2]))))
    return out


def lifecycle_prefix(rule):
    if "Prefix" in rule:
        return rule["Prefix"]
    f = rule.get("Filter") or {}
    if "Prefix" in f:
        return f["Prefix"]
    if "And" in f:
        return f["And"].get("Prefix", "")
    return ""


# ----------------------------------------------------------------------------- tests

class TemplateTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.r = cls.t["Resources"]
        cls.p = cls.t.get("Parameters", {})
        with open(FUNCTION_ENV, encoding="utf-8") as f:
            cls.env_manifest = json.load(f)

    def fn(self, lid):
        res = self.r.get(lid)
        self.assertIsNotNone(res, f"{lid} missing")
        self.assertEqual(res["Type"], "AWS::Serverless::Function")
        return res["Properties"]

    def env(self, lid):
        return self.fn(lid).get("Environment", {}).get("Variables", {})

    def landing_name_expr(self):
        return self.r["LandingBucket"]["Properties"]["BucketName"]


class Parameters(TemplateTestCase):
    def test_issue_parameters_exist(self):
        for name in ["CatalogId", "AccessTokenSecretArn", "AlertEmail", "GraphApiVersion", "BatchSize",
                     "PollSchedule", "PendingMaxAge", "RetentionDays", "EnableAuditTrail",
                     "SyncReservedConcurrency"]:
            self.assertIn(name, self.p, f"parameter {name} missing")
        for name in ["CatalogId", "AccessTokenSecretArn", "AlertEmail"]:
            self.assertNotIn("Default", self.p[name], f"{name} must be given at deploy time")

    def test_defaults_are_the_documented_ones(self):
        self.assertEqual(self.p["PollSchedule"]["Default"], "rate(5 minutes)")
        self.assertEqual(int(self.p["RetentionDays"]["Default"]), 30)
        self.assertEqual(int(self.p["SyncReservedConcurrency"]["Default"]), 1)
        self.assertEqual(str(self.p["EnableAuditTrail"]["Default"]), "false")
        self.assertEqual(int(self.p["BatchSize"]["Default"]), 3000)
        self.assertEqual(int(self.p["BatchSize"]["MinValue"]), 1)
        self.assertEqual(int(self.p["BatchSize"]["MaxValue"]), 5000, "Meta's hard limit")
        self.assertEqual(self.p["PendingMaxAge"]["Default"], "24h")
        self.assertRegex(self.p["GraphApiVersion"]["Default"], r"^v\d+\.\d+$")
        self.assertEqual(self.p["ColumnMapping"]["Default"], "", "no mapping unless one is given")

    def test_every_default_satisfies_its_own_constraints(self):
        for name, spec in self.p.items():
            if "Default" not in spec:
                continue
            d = spec["Default"]
            if "AllowedPattern" in spec:
                self.assertRegex(str(d), "^(?:" + spec["AllowedPattern"] + ")$", name)
            if "AllowedValues" in spec:
                self.assertIn(str(d), [str(v) for v in spec["AllowedValues"]], name)
            if "MinValue" in spec:
                self.assertGreaterEqual(float(d), float(spec["MinValue"]), name)
            if "MaxValue" in spec:
                self.assertLessEqual(float(d), float(spec["MaxValue"]), name)

    def test_schedule_expression_parses(self):
        interval = parse_schedule(self.p["PollSchedule"]["Default"])
        self.assertEqual(interval, 300)
        pattern = "^(?:" + self.p["PollSchedule"]["AllowedPattern"] + ")$"
        for good in ["rate(1 minute)", "rate(10 minutes)", "rate(2 hours)", "cron(0/10 * * * ? *)"]:
            parse_schedule(good)
            self.assertRegex(good, pattern)

    def test_schedule_parser_rejects_what_eventbridge_rejects(self):
        # The parser must be able to fail, or the test above proves nothing.
        for bad in ["rate(5 minute)", "rate(1 minutes)", "rate(0 minutes)", "rate(5 secs)",
                    "every 5 minutes", "cron(0/10 * * * *)", "cron(0 12 * * * *)",
                    "cron(0 12 ? * ? *)", "rate(5minutes)"]:
            with self.assertRaises(ValueError, msg=bad):
                parse_schedule(bad)


class Functions(TemplateTestCase):
    def test_runtime_architecture_and_build(self):
        for lid, binary in FUNCTIONS.items():
            props = self.fn(lid)
            self.assertEqual(props.get("Runtime"), "provided.al2023", lid)
            self.assertEqual(props.get("Architectures"), [ref("Architecture")], lid)
            self.assertEqual(props.get("Handler"), "bootstrap", lid)
            self.assertEqual(props.get("CodeUri"), ".", f"{lid}: cargo-lambda builds from the workspace root")
            meta = self.r[lid].get("Metadata", {})
            self.assertEqual(meta.get("BuildMethod"), "rust-cargolambda", lid)
            self.assertEqual(meta.get("BuildProperties", {}).get("Binary"), binary, lid)

    def test_architecture_is_a_parameter_arm64_by_default(self):
        spec = self.p["Architecture"]
        self.assertEqual(spec["Default"], "arm64")
        self.assertEqual(sorted(spec["AllowedValues"]), ["arm64", "x86_64"])

    def test_build_tools_are_pinned_as_the_deploy_workflow_pins_them(self):
        with open(os.path.join(ROOT, "infra", "requirements-cargo-lambda.txt"), encoding="utf-8") as f:
            pins = dict(re.findall(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)$", f.read()))
        self.assertEqual(set(pins), {"cargo-lambda", "ziglang"})
        with open(os.path.join(ROOT, ".github", "workflows", "deploy.yml"), encoding="utf-8") as f:
            deploy = f.read()
        for package, version in pins.items():
            self.assertIn(f"{package}=={version}", deploy, f"deploy.yml pins {package} differently")

    def test_binaries_are_workspace_packages(self):
        for lid, binary in FUNCTIONS.items():
            manifest = os.path.join(ROOT, "functions", binary, "Cargo.toml")
            self.assertTrue(os.path.isfile(manifest), f"{lid}: {manifest} missing")
            with open(manifest, encoding="utf-8") as f:
                self.assertRegex(f.read(), r'(?m)^name\s*=\s*"' + re.escape(binary) + '"', manifest)

    def test_memory_and_timeouts_are_sensible(self):
        for lid in FUNCTIONS:
            props = self.fn(lid)
            self.assertTrue(128 <= int(props["MemorySize"]) <= 10240, lid)
            self.assertTrue(30 <= int(props["Timeout"]) <= 900, lid)
        poll_every = parse_schedule(self.p["PollSchedule"]["Default"])
        self.assertLess(int(self.fn(POLL)["Timeout"]), poll_every,
                        "a poll must finish before the next one starts")

    def test_function_env_manifest_names_are_the_contract(self):
        self.assertEqual(set(self.env_manifest), set(FUNCTIONS), "infra/function-env.json keys")
        for lid, names in self.env_manifest.items():
            self.assertEqual(len(names), len(set(names)), f"{lid}: duplicates in infra/function-env.json")
            self.assertLessEqual(set(names), CONTRACT_ENV | ADDED_ENV,
                                 f"{lid}: names not in the README or ADDED_ENV")
        readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
        for name in ADDED_ENV:
            self.assertIn(f"| `{name}` |", readme, f"{name} is documented in the README")
            self.assertNotIn("META_ACCESS_TOKEN", names, "on AWS the token comes from Secrets Manager")

    def test_every_env_var_a_function_reads_is_set(self):
        for lid, names in self.env_manifest.items():
            env = self.env(lid)
            missing = [n for n in names if n not in env]
            self.assertEqual(missing, [], f"{lid} reads these but the template does not set them")
            extra = sorted(set(env) - set(names))
            self.assertEqual(extra, [], f"{lid} sets these but infra/function-env.json does not list them")
            self.assertNotIn("META_ACCESS_TOKEN", env, "a token must never be in the environment")

    def test_env_values_point_at_the_right_things(self):
        expected = {
            "CATALOG_ID": ref("CatalogId"),
            "ACCESS_TOKEN_SECRET_ARN": ref("AccessTokenSecretArn"),
            "GRAPH_API_VERSION": ref("GraphApiVersion"),
            "GRAPH_API_BASE_URL": ref("GraphApiBaseUrl"),
            "SYNCED_BUCKET": ref("SyncedBucket"),
            "LANDING_BUCKET": self.landing_name_expr(),
            "ALERT_TOPIC_ARN": ref("AlertTopic"),
            "BATCH_SIZE": ref("BatchSize"),
            "PENDING_MAX_AGE": ref("PendingMaxAge"),
            "PRODUCT_TYPE_MAPPING": ref("ProductTypeMapping"),
            "COLUMN_MAPPING": ref("ColumnMapping"),
            "POLL_CONCURRENCY": ref("PollConcurrency"),
            "RUST_LOG": ref("LogLevel"),
            "CONTINUE_QUEUE_URL": ref("ContinueQueue"),
            "STALE_FILE_AGE": ref("StaleFileAge"),
            "MAX_REDRIVES": ref("MaxRedrives"),
            "RESEND_AFTER": ref("ResendAfter"),
            "MAX_DELETE_FRACTION": ref("MaxDeleteFraction"),
            # Full snapshots live inside the landing folder.
            "SNAPSHOT_PREFIX": "data/full/",
            # Declared for `sam local invoke --env-vars` only; not set on AWS.
            "AWS_ENDPOINT_URL": ref("AWS::NoValue"),
            **PREFIX_DEFAULTS,
        }
        for lid in FUNCTIONS:
            for name, value in self.env(lid).items():
                self.assertEqual(value, expected[name], f"{lid} {name}")

    def test_s3_trigger_matches_configuration(self):
        events = self.fn(SYNC).get("Events", {})
        s3 = [e for e in events.values() if e.get("Type") == "S3"]
        self.assertEqual(len(s3), 1, "one S3 event source")
        props = s3[0]["Properties"]
        self.assertEqual(props["Bucket"], ref("LandingBucket"))
        self.assertEqual(as_list(props["Events"]), ["s3:ObjectCreated:*"])
        rules = {r["Name"].lower(): r["Value"] for r in props["Filter"]["S3Key"]["Rules"]}
        self.assertEqual(rules.get("prefix"), self.env(SYNC)["LANDING_PREFIX"])
        self.assertEqual(rules.get("prefix"), PREFIX_DEFAULTS["LANDING_PREFIX"])
        self.assertEqual(rules.get("suffix"), ".csv")
        self.assertFalse([e for e in self.fn(POLL).get("Events", {}).values() if e.get("Type") == "S3"],
                         "only the sync function is triggered by S3")

    def test_poller_runs_on_the_schedule(self):
        events = list(self.fn(POLL).get("Events", {}).values())
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["Type"], "Schedule")
        self.assertEqual(events[0]["Properties"]["Schedule"], ref("PollSchedule"))
        self.assertNotEqual(events[0]["Properties"].get("State"), "DISABLED")
        self.assertNotIn(events[0]["Properties"].get("Enabled"), (False, "false"))

    def test_sync_reserved_concurrency_comes_from_the_parameter(self):
        rce = self.fn(SYNC).get("ReservedConcurrentExecutions")
        self.assertIsNotNone(rce, "sync function needs reserved concurrency")
        if rce != ref("SyncReservedConcurrency"):
            cond, then, otherwise = rce["Fn::If"]
            self.assertEqual(then, ref("SyncReservedConcurrency"))
            self.assertEqual(otherwise, ref("AWS::NoValue"))
            self.assertEqual(self.t["Conditions"][cond],
                             {"Fn::Not": [{"Fn::Equals": [ref("SyncReservedConcurrency"), 0]}]})

    def test_failed_async_invocations_go_to_a_queue_with_bounded_retries(self):
        cfg = self.fn(SYNC).get("EventInvokeConfig")
        self.assertIsNotNone(cfg, "EventInvokeConfig missing on the sync function")
        self.assertIn("MaximumRetryAttempts", cfg, "set the retry count explicitly")
        self.assertTrue(0 <= int(cfg["MaximumRetryAttempts"]) <= 2)
        self.assertTrue(60 <= int(cfg.get("MaximumEventAgeInSeconds", 21600)) <= 21600)
        on_failure = cfg["DestinationConfig"]["OnFailure"]
        self.assertEqual(on_failure["Type"], "SQS")
        dest = on_failure["Destination"]
        self.assertEqual(dest, getatt(dest["Fn::GetAtt"][0], "Arn"))
        self.assertEqual(self.r[dest["Fn::GetAtt"][0]]["Type"], "AWS::SQS::Queue")

    def test_log_groups_have_retention_and_are_the_functions_own(self):
        for lid, lg in LOG_GROUPS.items():
            props = self.fn(lid)
            self.assertEqual(props.get("LoggingConfig", {}).get("LogGroup"), ref(lg), lid)
            group = self.r[lg]
            self.assertEqual(group["Type"], "AWS::Logs::LogGroup")
            self.assertIn("RetentionInDays", group["Properties"], lg)
            name = group["Properties"]["LogGroupName"]["Fn::Sub"]
            self.assertEqual(name, "/aws/lambda/" + props["FunctionName"]["Fn::Sub"], lg)


class NoCircularDependency(TemplateTestCase):
    def test_sync_function_and_role_do_not_reference_the_landing_bucket(self):
        fn = copy.deepcopy(self.r[SYNC])
        fn["Properties"].pop("Events", None)  # the event source is the one allowed reference
        for lid, node in ((SYNC, fn), (ROLES[SYNC], self.r[ROLES[SYNC]]), (LOG_GROUPS[SYNC], self.r[LOG_GROUPS[SYNC]])):
            self.assertFalse(references(node, "LandingBucket"),
                             f"{lid} refers to LandingBucket: circular with its S3 notification")

    def test_landing_bucket_name_is_derived_from_the_stack(self):
        expr = self.landing_name_expr()
        self.assertTrue(references(expr, "AWS::StackId") or references(expr, "AWS::StackName"))
        name = evaluate(expr, SAM_LOCAL_PSEUDO)
        self.assertRegex(name, r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", "a valid bucket name")
        self.assertLessEqual(len(name), 63)


class Buckets(TemplateTestCase):
    def buckets(self):
        return {k: v for k, v in self.r.items() if v["Type"] == "AWS::S3::Bucket"}

    def test_expected_buckets(self):
        self.assertLessEqual({"LandingBucket", "SyncedBucket"}, set(self.buckets()))

    def test_encryption_and_public_access_block(self):
        for lid, b in self.buckets().items():
            props = b["Properties"]
            rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            algos = {r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules}
            self.assertTrue(algos and algos <= {"AES256", "aws:kms", "aws:kms:dsse"}, lid)
            pab = props["PublicAccessBlockConfiguration"]
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
                self.assertIs(pab.get(k), True, f"{lid} {k}")

    def test_acls_are_disabled(self):
        # BucketOwnerEnforced turns ACLs off, so no object can be made public or foreign-owned
        # by an ACL; access is only what IAM and the bucket policy grant.
        for lid, b in self.buckets().items():
            rules = b["Properties"].get("OwnershipControls", {}).get("Rules", [])
            self.assertEqual([r.get("ObjectOwnership") for r in rules], ["BucketOwnerEnforced"], lid)

    def test_bucket_policies_deny_non_tls(self):
        for lid in self.buckets():
            policies = [v for v in self.r.values()
                        if v["Type"] == "AWS::S3::BucketPolicy" and v["Properties"]["Bucket"] == ref(lid)]
            self.assertEqual(len(policies), 1, f"{lid}: one bucket policy")
            found = False
            for st in policies[0]["Properties"]["PolicyDocument"]["Statement"]:
                cond = st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
                if st["Effect"] == "Deny" and str(cond).lower() == "false":
                    self.assertEqual(st["Principal"], "*")
                    self.assertIn("s3:*", as_list(st["Action"]))
                    res = as_list(st["Resource"])
                    self.assertIn(getatt(lid, "Arn"), res, f"{lid}: the bucket itself")
                    self.assertIn({"Fn::Sub": "${" + lid + ".Arn}/*"}, res, f"{lid}: its objects")
                    found = True
            self.assertTrue(found, f"{lid}: no Deny on aws:SecureTransport=false")

    def test_lifecycle_expires_the_named_prefixes_after_the_retention_period(self):
        for lid, prefixes in (("LandingBucket", LANDING_EXPIRING), ("SyncedBucket", SYNCED_EXPIRING)):
            rules = self.r[lid]["Properties"]["LifecycleConfiguration"]["Rules"]
            for prefix in prefixes:
                matching = [r for r in rules if lifecycle_prefix(r) == prefix]
                self.assertEqual(len(matching), 1, f"{lid}: one rule for {prefix}")
                rule = matching[0]
                self.assertEqual(rule["Status"], "Enabled", f"{lid} {prefix}")
                self.assertEqual(rule.get("ExpirationInDays"), ref("RetentionDays"), f"{lid} {prefix}")

    def test_lifecycle_never_touches_data_pending_or_progress(self):
        for lid, keep in NEVER_EXPIRING.items():
            rules = self.r[lid]["Properties"]["LifecycleConfiguration"]["Rules"]
            for rule in rules:
                deletes = any(k in rule for k in ("ExpirationInDays", "ExpirationDate", "Transitions",
                                                   "NoncurrentVersionExpiration", "Transition"))
                if not deletes:
                    continue
                p = lifecycle_prefix(rule)
                for k in keep:
                    self.assertFalse(k.startswith(p) or p.startswith(k),
                                     f"{lid}: rule {rule.get('Id')} (prefix {p!r}) would expire {k}")

    def test_incomplete_multipart_uploads_are_aborted(self):
        for lid in ("LandingBucket", "SyncedBucket"):
            rules = self.r[lid]["Properties"]["LifecycleConfiguration"]["Rules"]
            abort = [r for r in rules if "AbortIncompleteMultipartUpload" in r and lifecycle_prefix(r) == ""]
            self.assertEqual(len(abort), 1, f"{lid}: one bucket-wide abort rule")
            self.assertGreaterEqual(int(abort[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]), 1)


class Iam(TemplateTestCase):
    def test_no_wildcard_actions_or_resources_in_allow_statements(self):
        statements = policy_statements(self.t)
        self.assertGreater(len(statements), 10)
        for where, st in statements:
            if st.get("Effect") != "Allow":
                continue  # a wildcard in a Deny (the TLS-only bucket policies) only narrows access
            self.assertNotIn("NotAction", st, where)
            self.assertNotIn("NotResource", st, where)
            for action in as_list(st.get("Action", [])):
                self.assertNotIn("*", str(action), f"{where}: wildcard action {action}")
            if "Resource" in st:
                for res in as_list(st["Resource"]):
                    self.assertNotEqual(res, "*", f"{where}: wildcard resource")
                    text = res if isinstance(res, str) else json.dumps(res)
                    # A "*" may only end "<bucket>/<prefix>/": all keys under a named prefix,
                    # never a whole bucket ("<bucket>/*") or part of a name.
                    for star in re.finditer(r"\*", text):
                        before = text[:star.start()]
                        self.assertRegex(before, r"/[^/*\"]+/$", f"{where}: wildcard in {text}")

    def test_roles_are_assumed_by_lambda_only(self):
        for lid, role in ROLES.items():
            self.assertEqual(self.fn(lid).get("Role"), getatt(role, "Arn"), lid)
            doc = self.r[role]["Properties"]["AssumeRolePolicyDocument"]
            principals = [st["Principal"] for st in doc["Statement"]]
            self.assertEqual(principals, [{"Service": "lambda.amazonaws.com"}], role)
            self.assertNotIn("ManagedPolicyArns", self.r[role]["Properties"],
                             f"{role}: managed policies grant on Resource '*'")

    def role_grants(self, lid):
        grants = {}
        for st in as_list(self.r[ROLES[lid]]["Properties"]["Policies"]):
            for s in as_list(st["PolicyDocument"]["Statement"]):
                self.assertEqual(s["Effect"], "Allow")
                for res in as_list(s["Resource"]):
                    for action in as_list(s["Action"]):
                        grants.setdefault(action, []).append(res)
        return grants

    def test_s3_permissions_are_exactly_the_prefixes_each_function_touches(self):
        for lid, expected in EXPECTED_S3.items():
            actual = {}
            for action, resources in self.role_grants(lid).items():
                if not action.startswith("s3:"):
                    continue
                for res in resources:
                    key = canonical_s3_resource(res, self.t)
                    self.assertIsNotNone(key, f"{lid}: {action} on an unexpected resource {res}")
                    actual.setdefault(key, set()).add(action)
            self.assertEqual(actual, expected, f"{lid}: S3 permissions differ (see infra/README.md, IAM)")

    def test_other_permissions_are_one_topic_one_secret_own_logs(self):
        for lid in FUNCTIONS:
            grants = {a: r for a, r in self.role_grants(lid).items() if not a.startswith("s3:")}
            expected = {
                "sns:Publish": [ref("AlertTopic")],
                "secretsmanager:GetSecretValue": [ref("AccessTokenSecretArn")],
                "logs:CreateLogStream": [getatt(LOG_GROUPS[lid], "Arn")],
                "logs:PutLogEvents": [getatt(LOG_GROUPS[lid], "Arn")],
            }
            queue = getatt("ContinueQueue", "Arn")
            if lid == SYNC:
                dlq = self.fn(SYNC)["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
                expected["sqs:SendMessage"] = [dlq, queue]
                for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                               "sqs:ChangeMessageVisibility"):
                    expected[action] = [queue]
            else:
                expected["sqs:SendMessage"] = [queue]
            self.assertEqual(grants, expected, lid)

    def test_the_continuation_queue_feeds_the_sync_function_one_file_at_a_time(self):
        events = self.fn(SYNC).get("Events", {})
        sqs = [e for e in events.values() if e.get("Type") == "SQS"]
        self.assertEqual(len(sqs), 1, "one SQS event source")
        self.assertEqual(sqs[0]["Properties"]["Queue"], getatt("ContinueQueue", "Arn"))
        self.assertEqual(sqs[0]["Properties"]["BatchSize"], 1)
        queue = self.r["ContinueQueue"]["Properties"]
        self.assertGreaterEqual(int(queue["VisibilityTimeout"]), int(self.fn(SYNC)["Timeout"]),
                                "a message is not handed out again while it is being processed")
        self.assertTrue(queue["SqsManagedSseEnabled"])
        policy = self.r["ContinueQueuePolicy"]["Properties"]
        self.assertEqual(policy["Queues"], [ref("ContinueQueue")])
        denies = [st for st in policy["PolicyDocument"]["Statement"] if st["Effect"] == "Deny"]
        self.assertTrue(any(st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
                            for st in denies), "TLS only")


class Queues(TemplateTestCase):
    def test_every_queue_is_encrypted_and_tls_only(self):
        queues = [k for k, v in self.r.items() if v["Type"] == "AWS::SQS::Queue"]
        self.assertGreaterEqual(len(queues), 2)
        for lid in queues:
            props = self.r[lid]["Properties"]
            self.assertTrue(props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props,
                            f"{lid}: encrypted at rest")
            policies = [v for v in self.r.values()
                        if v["Type"] == "AWS::SQS::QueuePolicy" and ref(lid) in v["Properties"]["Queues"]]
            self.assertEqual(len(policies), 1, f"{lid}: one queue policy")
            denies = [st for st in policies[0]["Properties"]["PolicyDocument"]["Statement"]
                      if st["Effect"] == "Deny"
                      and str(st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"]
            self.assertEqual(len(denies), 1, f"{lid}: no Deny on aws:SecureTransport=false")
            self.assertEqual(denies[0]["Principal"], "*")
            self.assertIn("sqs:*", as_list(denies[0]["Action"]))
            self.assertEqual(denies[0]["Resource"], getatt(lid, "Arn"))


class AlarmsAndAlerts(TemplateTestCase):
    def alarms(self):
        return {k: v["Properties"] for k, v in self.r.items() if v["Type"] == "AWS::CloudWatch::Alarm"}

    def metrics_of(self, alarm):
        """(namespace, metric, dimensions) of an alarm, including metric-math inputs."""
        if "MetricName" in alarm:
            yield alarm["Namespace"], alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        for m in alarm.get("Metrics", []):
            if "MetricStat" in m:
                met = m["MetricStat"]["Metric"]
                yield met["Namespace"], met["MetricName"], {d["Name"]: d["Value"] for d in met.get("Dimensions", [])}

    def find(self, namespace, metric, dims):
        return [lid for lid, a in self.alarms().items()
                if (namespace, metric, dims) in list(self.metrics_of(a))]

    def test_function_errors_and_throttles(self):
        for lid in FUNCTIONS:
            for metric in ("Errors", "Throttles"):
                self.assertTrue(self.find("AWS/Lambda", metric, {"FunctionName": ref(lid)}),
                                f"no {metric} alarm for {lid}")

    def test_dead_letter_queue_depth(self):
        dlq = self.fn(SYNC)["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        self.assertTrue(self.find("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                  {"QueueName": getatt(dlq, "QueueName")}))

    def test_embedded_metric_item_errors(self):
        hits = [lid for lid in FUNCTIONS
                if self.find("CatalogSync", "ItemErrors", {"FunctionName": ref(lid)})]
        self.assertIn(POLL, hits, "ItemErrors of the poller (it reads batch results) must alarm")

    def test_alarms_name_only_metrics_the_functions_emit(self):
        emitted = emitted_metric_names()
        seen = 0
        for lid, alarm in self.alarms().items():
            for namespace, metric, dims in self.metrics_of(alarm):
                if namespace != "CatalogSync":
                    continue
                seen += 1
                function = dims.get("FunctionName", {}).get("Ref")
                self.assertIn(function, emitted, f"{lid}: {metric} needs a function's FunctionName")
                self.assertIn(metric, emitted[function],
                              f"{lid}: {function} never emits {metric} (crates/sync/src/metrics.rs)")
        self.assertGreater(seen, 0)

    def test_every_alarm_notifies_the_alert_topic(self):
        alarms = self.alarms()
        self.assertGreaterEqual(len(alarms), 6)
        for lid, a in alarms.items():
            self.assertIn(ref("AlertTopic"), a.get("AlarmActions", []), lid)
            self.assertGreaterEqual(float(a["Threshold"]), 1, lid)
            self.assertEqual(a.get("TreatMissingData"), "notBreaching", lid)

    def test_topic_with_email_subscription(self):
        self.assertEqual(self.r["AlertTopic"]["Type"], "AWS::SNS::Topic")
        subs = [v["Properties"] for v in self.r.values() if v["Type"] == "AWS::SNS::Subscription"]
        self.assertIn({"TopicArn": ref("AlertTopic"), "Protocol": "email", "Endpoint": ref("AlertEmail")}, subs)


class Dashboard(TemplateTestCase):
    # What issue 17 asks the dashboard to show, per function.
    REQUIRED = {
        SYNC: {"ProductsReceived", "ProductsSent", "ProductsRejected", "ProductsRefusedByMeta",
               "ProductsUnchanged", "ProductsDeleted", "BatchesSent",
               # Meta's throttling of items_batch, which a successful retry hides otherwise.
               "GraphCallsThrottled", "GraphCallsFailed"},
        POLL: {"BatchesChecked", "BatchesFinished", "ItemErrors", "ApiErrors", "PendingHandles",
               "OldestPendingSeconds", "FileToVerdictSeconds", "GraphCallsThrottled"},
    }

    def metrics(self):
        boards = [v["Properties"] for v in self.r.values() if v["Type"] == "AWS::CloudWatch::Dashboard"]
        self.assertEqual(len(boards), 1, "one dashboard")
        out = []
        for title, namespace, name, dims in dashboard_metrics(boards[0]["DashboardBody"]):
            function = re.fullmatch(r"\$\{(\w+)\}", dims.get("FunctionName", ""))
            out.append((title, namespace, name, function.group(1) if function else None))
        return out

    def test_every_widget_names_a_metric_its_function_emits(self):
        emitted = emitted_metric_names()
        lambda_metrics = {"Errors", "Throttles", "Invocations", "Duration", "ConcurrentExecutions"}
        never = []
        for title, namespace, name, function in self.metrics():
            self.assertIn(function, FUNCTIONS, f"{title}: {name} is not per function")
            if namespace == "CatalogSync":
                if name not in emitted[function]:
                    never.append(f"{name} of {function} (widget {title!r})")
            else:
                self.assertEqual(namespace, "AWS/Lambda", title)
                self.assertIn(name, lambda_metrics, title)
        self.assertFalse(never, "the dashboard shows metrics the functions never emit "
                                "(crates/sync/src/metrics.rs): " + "; ".join(never))

    def test_it_shows_what_the_issue_asks_for(self):
        shown = {(function, name) for _, namespace, name, function in self.metrics()
                 if namespace == "CatalogSync"}
        for function, names in self.REQUIRED.items():
            for name in names:
                self.assertIn((function, name), shown, f"{name} of {function} is not on the dashboard")
        lambda_shown = {(function, name) for _, namespace, name, function in self.metrics()
                        if namespace == "AWS/Lambda"}
        for function in FUNCTIONS:
            for name in ("Errors", "Throttles"):
                self.assertIn((function, name), lambda_shown)

    def test_widgets_use_the_stacks_region_and_the_name_is_unique_per_region(self):
        board = next(v["Properties"] for v in self.r.values() if v["Type"] == "AWS::CloudWatch::Dashboard")
        text = board["DashboardBody"]["Fn::Sub"]
        for widget in json.loads(text)["widgets"]:
            self.assertEqual(widget["properties"]["region"], "${AWS::Region}")
        self.assertIn("${AWS::Region}", board["DashboardName"]["Fn::Sub"])


class SamLocal(unittest.TestCase):
    """`sam local invoke` sets only variables the template declares, silently ignoring others."""

    def test_the_local_env_file_sets_only_declared_variables(self):
        with open(os.path.join(ROOT, "infra", "sam-local-env.json"), encoding="utf-8") as f:
            local = json.load(f)
        with open(FUNCTION_ENV, encoding="utf-8") as f:
            declared = json.load(f)
        self.assertEqual(set(local), {"Parameters"}, "one set of values for both functions")
        for lid, names in declared.items():
            self.assertLessEqual(set(local["Parameters"]), set(names), f"{lid} does not declare these")
        self.assertNotIn("META_ACCESS_TOKEN", local["Parameters"])

    def test_make_test_and_ci_run_the_check(self):
        with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
            makefile = f.read()
        prerequisites = re.search(r"(?m)^test:(.*)$", makefile).group(1).split()
        self.assertIn("sam-local", prerequisites)
        self.assertLess(prerequisites.index("sam-local"), prerequisites.index("fresh-clone"))
        with open(os.path.join(ROOT, ".github", "workflows", "ci.yml"), encoding="utf-8") as f:
            ci = f.read()
        self.assertRegex(ci, r"install-tools\.sh[^\n]*cargo-lambda", "CI installs cargo-lambda")
        self.assertIn("make test", ci)


class OutputsAndOptions(TemplateTestCase):
    def test_outputs(self):
        outs = {k: v["Value"] for k, v in self.t["Outputs"].items()}
        expected = {
            "LandingBucketName": ref("LandingBucket"),
            "SyncedBucketName": ref("SyncedBucket"),
            "AlertTopicArn": ref("AlertTopic"),
            "SyncOnArrivalFunctionName": ref(SYNC),
            "PollBatchStatusFunctionName": ref(POLL),
        }
        for k, v in expected.items():
            self.assertEqual(outs.get(k), v, k)

    def test_audit_trail_is_optional_and_off_by_default(self):
        self.assertEqual(self.t["Conditions"]["AuditTrailEnabled"], {"Fn::Equals": [ref("EnableAuditTrail"), "true"]})
        trails = [k for k, v in self.r.items() if v["Type"] == "AWS::CloudTrail::Trail"]
        self.assertEqual(len(trails), 1)
        conditional = {trails[0]} | {k for k, v in self.r.items() if references(v, "AuditTrailBucket")}
        conditional.add("AuditTrailBucket")
        for lid in conditional:
            self.assertEqual(self.r[lid].get("Condition"), "AuditTrailEnabled", lid)
        for k, v in self.t["Outputs"].items():
            if references(v, "AuditTrailBucket"):
                self.assertEqual(v.get("Condition"), "AuditTrailEnabled", k)

    def test_samconfig_defaults(self):
        with open(os.path.join(ROOT, "samconfig.toml"), "rb") as f:
            cfg = tomllib.load(f)
        deploy = cfg["default"]["deploy"]["parameters"]
        self.assertIn("CAPABILITY_IAM", str(deploy["capabilities"]), "the template creates IAM roles")
        self.assertIs(deploy.get("resolve_s3"), True)
        self.assertIn("stack_name", cfg["default"]["global"]["parameters"])


class SampleEvents(TemplateTestCase):
    def load_event(self, name):
        with open(os.path.join(ROOT, "events", name), encoding="utf-8") as f:
            return json.load(f)

    def test_s3_object_created_event(self):
        ev = self.load_event("s3-object-created.json")
        self.assertEqual(len(ev["Records"]), 1)
        rec = ev["Records"][0]
        self.assertEqual(rec["eventSource"], "aws:s3")
        self.assertTrue(rec["eventName"].startswith("ObjectCreated:"))
        raw = rec["s3"]["object"]["key"]
        key = urllib.parse.unquote_plus(raw)  # S3 event keys: '+' is a space, then percent-decoding
        self.assertIn("+", raw, "the sample key shows how S3 encodes a space")
        self.assertIn(" ", key)
        self.assertTrue(key.startswith(PREFIX_DEFAULTS["LANDING_PREFIX"]), key)
        self.assertTrue(key.lower().endswith(".csv"), key)
        # The bucket is the one `sam local invoke` resolves LANDING_BUCKET to.
        bucket = evaluate(self.landing_name_expr(), SAM_LOCAL_PSEUDO)
        self.assertEqual(rec["s3"]["bucket"]["name"], bucket)
        self.assertEqual(rec["s3"]["bucket"]["arn"], "arn:aws:s3:::" + bucket)

    def test_scheduled_event(self):
        ev = self.load_event("scheduled-poll.json")
        self.assertEqual(ev["source"], "aws.events")
        self.assertEqual(ev["detail-type"], "Scheduled Event")
        self.assertEqual(ev["detail"], {})
        self.assertRegex(ev["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Workflows(unittest.TestCase):
    """The schema check proves the workflows are well-formed; these prove they do the job."""

    def load(self, name):
        with open(os.path.join(ROOT, ".github", "workflows", name), encoding="utf-8") as f:
            wf = yaml.safe_load(f)
        wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as true
        return wf

    def runs(self, wf):
        text = "\n".join(s.get("run", "") for job in wf["jobs"].values() for s in job.get("steps", []))
        return re.sub(r"\\\n\s*", " ", text)  # join shell line continuations

    def test_ci_runs_fmt_clippy_and_make_test(self):
        wf = self.load("ci.yml")
        runs = self.runs(wf)
        for cmd in ("cargo fmt", "cargo clippy", "make test"):
            self.assertIn(cmd, runs)
        self.assertIn("pull_request", wf["on"])

    def test_deploy_uses_oidc_and_deploys_main(self):
        wf = self.load("deploy.yml")
        self.assertEqual(wf["on"]["push"]["branches"], ["main"])
        creds = [(name, s) for name, job in wf["jobs"].items() for s in job.get("steps", [])
                 if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        self.assertEqual(len(creds), 1)
        job, creds = creds[0][0], [creds[0][1]]
        perms = wf["jobs"][job].get("permissions", wf.get("permissions", {}))
        self.assertEqual(perms.get("id-token"), "write", "OIDC needs id-token: write")
        self.assertIn("role-to-assume", creds[0]["with"])
        self.assertNotIn("aws-access-key-id", creds[0]["with"], "OIDC, no long-lived keys")
        runs = self.runs(wf)
        self.assertIn("sam build", runs)
        self.assertRegex(runs, r"sam deploy[^\n]*--no-confirm-changeset")
        self.assertRegex(runs, r"sam deploy[^\n]*--no-fail-on-empty-changeset")


class Translated(unittest.TestCase):
    """Resources SAM generates, read from the translated template (infra/tests/sam_translate.py)."""

    @classmethod
    def setUpClass(cls):
        path = os.environ.get("CATALOG_SYNC_TRANSLATED")
        if not path:
            raise unittest.SkipTest("CATALOG_SYNC_TRANSLATED not set (infra/check-template.sh sets it)")
        with open(path, encoding="utf-8") as f:
            cls.r = json.load(f)["Resources"]

    def test_landing_notification(self):
        confs = self.r["LandingBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
        self.assertEqual(len(confs), 1)
        self.assertEqual(confs[0]["Event"], "s3:ObjectCreated:*")
        self.assertEqual(confs[0]["Function"], getatt(SYNC, "Arn"))
        rules = {r["Name"]: r["Value"] for r in confs[0]["Filter"]["S3Key"]["Rules"]}
        self.assertEqual(rules, {"prefix": "data/", "suffix": ".csv"})

    def test_event_invoke_configs(self):
        cfgs = {v["Properties"]["FunctionName"]["Ref"]: v["Properties"] for v in self.r.values()
                if v["Type"] == "AWS::Lambda::EventInvokeConfig"}
        self.assertIn("OnFailure", cfgs[SYNC]["DestinationConfig"])
        self.assertLessEqual(cfgs[SYNC]["MaximumRetryAttempts"], 2)

    def test_schedule_rule(self):
        rules = [v["Properties"] for v in self.r.values() if v["Type"] == "AWS::Events::Rule"]
        self.assertEqual([r["ScheduleExpression"] for r in rules], [ref("PollSchedule")])
        self.assertEqual(rules[0]["Targets"][0]["Arn"], getatt(POLL, "Arn"))


def main():
    verbosity = 2 if "-v" in sys.argv[1:] else 1
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=verbosity, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
