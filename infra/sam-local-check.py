"""`sam build` and `sam local invoke` of both functions, in Docker, against moto and the Graph
API emulator, with each outcome checked: the `sam-local` step of `make test`.

    .tools/sam/bin/python infra/sam-local-check.py        # what `make sam-local` runs

What it does, in order (each step is timed; the summary is printed at the end):

 1. Takes a machine-wide lock: the local network below has fixed addresses, so two runs on one
    machine (other worktrees) wait for each other.
 2. Docker: installs Debian's `docker.io` when `dockerd` is missing (root or passwordless sudo
    needed), then starts a private daemon for this run only: its own socket, exec root,
    containerd namespace and default bridge, no iptables, forwarding or masquerading changes.
    Its data root is kept in DOCKER_ROOT so the image below is built once per machine.
 3. The stand-in base image for provided.al2023 (the Lambda base images cannot be pulled here),
    assembled from this machine's C library, loader, CA certificates and the three programs
    SAM's image build runs (sh, mv, chmod); rebuilt only when that recipe changes. How it
    differs from Amazon Linux 2023: infra/README.md, "Running a function locally".
 4. A Docker network created with --internal (no route out of it) on SUBNET; moto and the
    emulator listen on its gateway address only, never on a wildcard address.
 5. Seeds moto from infra/sam-local-env.json: both buckets, the token secret, the alert topic
    with an SQS queue subscribed (to read the alerts), the continuation queue; uploads
    events/sam-local/products.csv to the key events/s3-object-created.json names.
 6. Runs the commands of README.md, "Run a function locally", exactly as written: `sam build`,
    then `sam local invoke` of each function with its sample event.
 7. Checks what each invocation did, not only its exit status: the file archived, the products
    in the emulator's catalog (asked over HTTP), pending records written by the sync function
    and consumed by the poller, its verdicts under checked/, the batch_warnings alert on SNS,
    and the metrics both printed.
 8. Stops everything it started, on success, failure or Ctrl-C, and removes the network.

The functions accept plain http for the Graph API on loopback only, so inside each function
container 127.0.0.1:5000 and :5001 are relayed to moto and the emulator on the gateway, before
SAM may reach the container (see RelayWatcher).

A run that cannot start Docker fails and says why; it is never skipped. Inside the fresh clone
of infra/fresh-clone-check.sh (CATALOG_SYNC_NESTED=1) it is skipped only when this very commit
already passed here from a clean working tree (a stamp under <target>/sam-local/proved/).
Needs Linux on x86_64, root or passwordless sudo, nsenter (util-linux), and the pinned tools
(infra/install-tools.sh sam moto cargo-lambda).
"""

import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOOLS = os.environ.get("TOOLS_DIR", os.path.join(ROOT, ".tools"))
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
CACHE = os.path.join(TARGET, "sam-local")  # logs and the proof stamps
# The private daemon's data root, so the images are built once per machine (runs take turns, see
# LOCK). Not under target/: tools that walk it (`sam build --cached`, CI caches) trip over
# Docker's files, and it belongs to root.
DOCKER_ROOT = os.environ.get("CATALOG_SYNC_DOCKER_ROOT", "/var/lib/catalog-sync/sam-local-docker")
ENV_FILE = "infra/sam-local-env.json"
CSV = "events/sam-local/products.csv"
UNCATEGORISED = "SL-3"  # its product with no category, which Meta takes with a warning
LOCK = os.path.join(tempfile.gettempdir(), "catalog-sync-sam-local.lock")

# The local network. Fixed, because infra/sam-local-env.json and the README's commands name it.
# 198.19.0.0/16 is reserved for network tests (RFC 2544): no LAN, VPN or Docker default pool uses it.
NETWORK = "catalog-sync-local"
SUBNET = "198.19.117.0/24"
GATEWAY = "198.19.117.1"
# The private daemon's default bridge, which SAM's containers start on and publish the runtime
# interface emulator's port through (created here: Docker only makes its own docker0, and a
# daemon with no default bridge deletes docker0, which may be the machine's own Docker's). Its
# containers' default route points at an address nobody holds, so nothing leaves through it.
BRIDGE = "csam-local0"
BRIDGE_SUBNET = "198.19.118.0/24"
BRIDGE_ADDRESS = "198.19.118.1/24"
BLACKHOLE_GATEWAY = "198.19.118.254"
MOTO_PORT = 5000
EMULATOR_PORT = 5001
# What the functions see on their own loopback (relayed to the gateway; see RelayWatcher).
LOOPBACK_RELAYS = {MOTO_PORT: (GATEWAY, MOTO_PORT), EMULATOR_PORT: (GATEWAY, EMULATOR_PORT)}

IMAGE = "catalog-sync/provided-al2023-standin"
IMAGE_TAG = "latest"
RIE_PORT = 8080  # where SAM's runtime interface emulator listens inside the container
# Where SAM looks for it (`--container-host`): relayed to Docker's 127.0.0.1:<port> once the
# function container is ready (see RelayWatcher).
SAM_CONTAINER_HOST = "127.0.0.2"
# glibc of Amazon Linux 2023: a binary needing a newer symbol version would not start on Lambda.
AL2023_GLIBC = (2, 34)
# The C libraries Rust binaries link against, and the programs SAM's image build runs.
BASE_LIBRARIES = ["libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1"]
BASE_PROGRAMS = ["sh", "mv", "chmod"]
# Bump when the recipe below changes in a way its inputs do not show.
RECIPE_VERSION = "1"

STEP_TIMES = []


class CheckFailed(Exception):
    """A check failed; the message says what and, where known, why."""


def say(message):
    print(f"sam-local: {message}", flush=True)


@contextlib.contextmanager
def step(name):
    start = time.monotonic()
    try:
        yield
    finally:
        took = time.monotonic() - start
        STEP_TIMES.append((name, took))
        say(f"{name}: {took:.1f} s")


def quietly(what, action, *args):
    """Runs a clean-up action; a failure is reported, and does not hide the run's own result."""
    try:
        action(*args)
    except Exception as e:  # clean-up goes on with the next action
        print(f"sam-local: could not {what}: {e}", file=sys.stderr)


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def privileged(argv):
    """argv as root: as is when root, else through passwordless sudo."""
    if os.geteuid() == 0:
        return argv
    if shutil.which("sudo") is None:
        raise CheckFailed(f"`{argv[0]}` needs root, and sudo is not installed; run as root")
    return ["sudo", "-n", "--"] + argv


def run(argv, what, **kwargs):
    """Runs argv; on failure raises with its output's last lines."""
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise CheckFailed(f"{what} failed (exit status {result.returncode}):\n{tail}")
    return result


# ---------------------------------------------------------------------------- the README's commands

def readme_commands():
    """The first sh block under "### Run a function locally" in README.md, one command per entry
    (continuation lines joined, comments removed)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^### Run a function locally\n(.*?)(?=^#{2,3} )", text, re.S | re.M)
    check(section, 'README.md has no "### Run a function locally" section')
    block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
    check(block, 'README.md, "Run a function locally": no ```sh block')
    joined = re.sub(r"\\\n\s*", " ", block.group(1))
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    build = [c for c in commands if c.startswith("sam build")]
    invokes = {name: [c for c in commands if c.startswith(f"sam local invoke {name} ")]
               for name in ("SyncOnArrivalFunction", "PollBatchStatusFunction")}
    check(len(build) == 1 and all(len(v) == 1 for v in invokes.values()) and len(commands) == 3,
          f'README.md, "Run a function locally": expected `sam build` and one `sam local invoke` '
          f"of each function, found: {commands}")
    for command in (build[0], *[v[0] for v in invokes.values()]):
        check("Architecture=x86_64" in command, f"README command without Architecture=x86_64: {command}")
    for name, (command,) in invokes.items():
        for needed in (f"--env-vars {ENV_FILE}", f"--docker-network {NETWORK}",
                       f"--invoke-image {IMAGE}", "--skip-pull-image",
                       f"--container-host {SAM_CONTAINER_HOST}"):
            check(needed in command, f"README command for {name} lacks `{needed}`: {command}")
    return build[0], invokes["SyncOnArrivalFunction"][0], invokes["PollBatchStatusFunction"][0]


def run_readme_command(command, log_path, timeout):
    """Runs a README command with the pinned SAM CLI and cargo-lambda first on PATH; returns
    (stdout, stderr). The AWS variables point at nothing real: SAM passes them to the container."""
    env = dict(os.environ)
    # cargo-lambda's venv first: cargo-lambda runs zig as `python3 -m ziglang`.
    env["PATH"] = os.pathsep.join([os.path.join(TOOLS, "cargo-lambda", "bin"),
                                   os.path.join(TOOLS, "sam", "bin"), env.get("PATH", "")])
    env.update({
        "SAM_CLI_TELEMETRY": "0", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    say(f"$ {command}")
    try:
        result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise CheckFailed(f"`{command}` did not finish within {timeout} s") from e
    with open(log_path, "w", encoding="utf-8") as f:
        f.write(f"$ {command}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-40:])
        raise CheckFailed(f"`{command}` failed (exit status {result.returncode}); full output in "
                          f"{log_path}; last lines:\n{tail}")
    return result.stdout, result.stderr


# ---------------------------------------------------------------------------- Docker

def ensure_docker():
    """dockerd on PATH, installing Debian's docker.io when it is missing."""
    if shutil.which("dockerd"):
        return
    if shutil.which("apt-get") is None:
        raise CheckFailed("dockerd is not installed and there is no apt-get to install Debian's "
                          "docker.io; install Docker's daemon (docker.io) and run again")
    say("dockerd is missing: installing Debian's docker.io")
    run(privileged(["apt-get", "update"]), "apt-get update (to install docker.io)")
    run(privileged(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
                    "--no-install-recommends", "docker.io"]), "apt-get install docker.io")
    check(shutil.which("dockerd"), "docker.io was installed but dockerd is still not on PATH")


class Dockerd:
    """A private Docker daemon for this run: own socket and exec root under a temporary folder,
    its data root kept in the cache, its own containerd namespace and default bridge (BRIDGE),
    and no iptables, forwarding or masquerading changes to this machine."""

    def __init__(self, workdir):
        self.data_root = os.path.join(DOCKER_ROOT, "data")
        self.exec_root = os.path.join(workdir, "x")  # short: containerd's socket paths are limited
        self.socket = os.path.join(workdir, "docker.sock")
        self.pidfile = os.path.join(DOCKER_ROOT, "dockerd.pid")
        self.log_path = os.path.join(workdir, "dockerd.log")
        self.process = None
        self.client = None
        self.bridge_made = False

    def start(self):
        run(privileged(["mkdir", "-p", self.data_root]), f"mkdir {self.data_root}")
        self._stop_leftover()
        # Networks are made afresh each run; an earlier run killed mid-way may have left some.
        subprocess.run(privileged(["rm", "-rf", os.path.join(self.data_root, "network")]), check=False)
        clashes = subnet_overlaps(BRIDGE_SUBNET, own_device=BRIDGE)
        check(not clashes, f"the range of the Docker daemon's bridge, {BRIDGE_SUBNET}, is already "
                           f"routed on this machine ({', '.join(clashes)}); free it first")
        self._make_bridge()
        argv = privileged([
            "dockerd", "--data-root", self.data_root, "--exec-root", self.exec_root,
            "-H", f"unix://{self.socket}", "--pidfile", self.pidfile,
            "--containerd-namespace", "catalog-sync-sam-local",
            "--containerd-plugins-namespace", "catalog-sync-sam-local-plugins",
            "--bridge", BRIDGE, "--default-gateway", BLACKHOLE_GATEWAY,
            "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
        ])
        if os.geteuid() != 0:
            argv += ["--group", str(os.getegid())]
        log = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        import docker  # the SAM CLI's own Docker SDK

        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise CheckFailed(f"Docker could not start: dockerd exited with status "
                                  f"{self.process.returncode}; its log:\n{self.log_tail()}")
            if os.path.exists(self.socket):
                try:
                    client = docker.DockerClient(base_url=f"unix://{self.socket}", timeout=120)
                    client.ping()
                    self.client = client
                    return
                except Exception:  # not answering yet
                    pass
            if time.monotonic() > deadline:
                raise CheckFailed(f"Docker could not start: dockerd did not answer within 60 s; "
                                  f"its log:\n{self.log_tail()}")
            time.sleep(0.2)

    def _make_bridge(self):
        if os.path.exists(f"/sys/class/net/{BRIDGE}"):
            run(privileged(["ip", "link", "delete", BRIDGE]), f"ip link delete {BRIDGE} (left by an earlier run)")
        run(privileged(["ip", "link", "add", BRIDGE, "type", "bridge"]), f"ip link add {BRIDGE}")
        self.bridge_made = True
        run(privileged(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE]), f"ip addr add {BRIDGE_ADDRESS}")
        run(privileged(["ip", "link", "set", BRIDGE, "up"]), f"ip link set {BRIDGE} up")

    def _stop_leftover(self):
        """A daemon of an earlier run that was killed before it could stop its own."""
        try:
            with open(self.pidfile, encoding="utf-8") as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except (OSError, ValueError):
            return
        if "dockerd" in cmdline and self.data_root in cmdline:
            say(f"stopping the Docker daemon an earlier run left behind (pid {pid})")
            subprocess.run(privileged(["kill", "-TERM", str(pid)]), check=False)
            for _ in range(100):
                if not os.path.exists(f"/proc/{pid}"):
                    break
                time.sleep(0.1)

    def log_tail(self, lines=25):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self):
        """Removes every container and network (their interfaces on this machine with them),
        stops the daemon, and deletes the bridge."""
        if self.client is not None:
            for container in self.client.containers.list(all=True):
                quietly(f"remove container {container.short_id}", container.remove, force=True)
            for network in self.client.networks.list(names=[NETWORK]):
                quietly(f"remove the network {NETWORK}", network.remove)
            with contextlib.suppress(Exception):
                self.client.close()
        if self.process is not None and self.process.poll() is None:
            subprocess.run(privileged(["kill", "-TERM", str(self.process.pid)]), check=False)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                subprocess.run(privileged(["kill", "-KILL", str(self.process.pid)]), check=False)
                self.process.wait(timeout=10)
        if self.bridge_made:
            subprocess.run(privileged(["ip", "link", "delete", BRIDGE]), check=False)


# ---------------------------------------------------------------------------- the stand-in image

def library_paths(programs):
    """Absolute paths of the shared objects (and the loader) `programs` load, from ldd."""
    found = set()
    for program in programs:
        out = run(["ldd", program], f"ldd {program}").stdout
        for line in out.splitlines():
            m = re.search(r"(/\S+)\s+\(0x", line)
            if m:
                found.add(m.group(1))
    return sorted(found)


def image_recipe():
    """(hash, files): every host file the image holds, and a hash of them and of the recipe."""
    programs = []
    for name in BASE_PROGRAMS:
        path = shutil.which(name)
        check(path, f"the stand-in image needs `{name}` from this machine, and it is not on PATH")
        programs.append(os.path.realpath(path))
    libraries = library_paths(programs)
    libc_dir = os.path.dirname(next(p for p in libraries if os.path.basename(p) == "libc.so.6"))
    for name in BASE_LIBRARIES:
        path = os.path.join(libc_dir, name)
        if os.path.exists(path) and path not in libraries:
            libraries.append(path)
    certificates = "/etc/ssl/certs/ca-certificates.crt"
    check(os.path.exists(certificates), f"{certificates} is missing (Debian: apt-get install ca-certificates)")
    files = {}
    for path in sorted(set(libraries)):
        files[path] = path
    for name, path in zip(BASE_PROGRAMS, programs):
        files[f"/bin/{name}"] = path
    files[certificates] = certificates
    digest = hashlib.sha256(f"recipe {RECIPE_VERSION}\n".encode())
    for inside, host in sorted(files.items()):
        digest.update(inside.encode() + b"\0")
        with open(host, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16], files


def build_image(client):
    """The stand-in image, built unless the one in the cache has the same recipe."""
    recipe, files = image_recipe()
    import docker

    with contextlib.suppress(docker.errors.ImageNotFound):
        existing = client.images.get(f"{IMAGE}:{IMAGE_TAG}")
        if (existing.labels or {}).get("catalog-sync.recipe") == recipe:
            return recipe, False
    # SAM names its image with the runtime interface emulator after our repository
    # (IMAGE:rapid-x86_64): an old one would still carry the old base.
    for image in client.images.list(name=IMAGE):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image.id, force=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directories = {"/bin", "/etc/pki/tls/certs", "/var/task", "/var/runtime", "/opt", "/tmp"}
        directories |= {os.path.dirname(inside) for inside in files}
        for d in list(directories):
            while d not in ("/", ""):
                directories.add(d)
                d = os.path.dirname(d)
        for d in sorted(directories):
            info = tarfile.TarInfo(d.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "/tmp" else 0o755
            tar.addfile(info)
        for inside, host in sorted(files.items()):
            info = tar.gettarinfo(os.path.realpath(host), arcname=inside.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(host, "rb") as f:
                tar.addfile(info, f)
        # Amazon Linux keeps its CA bundle here.
        link = tarfile.TarInfo("etc/pki/tls/certs/ca-bundle.crt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/ssl/certs/ca-certificates.crt"
        tar.addfile(link)
        release = (f'NAME="catalog-sync stand-in for provided.al2023"\nID=catalog-sync-standin\n'
                   f'RECIPE="{recipe}"\n').encode()
        info = tarfile.TarInfo("etc/os-release")
        info.size = len(release)
        tar.addfile(info, io.BytesIO(release))
    buffer.seek(0)
    client.api.import_image_from_data(
        buffer.getvalue(), repository=IMAGE, tag=IMAGE_TAG,
        changes=[f'LABEL catalog-sync.recipe="{recipe}"', "WORKDIR /var/task",
                 "ENV PATH=/bin LANG=C.UTF-8 TZ=:UTC"])
    return recipe, True


def glibc_needs(binary):
    """The highest GLIBC_x.y symbol version `binary` names (in .gnu.version_r)."""
    with open(binary, "rb") as f:
        data = f.read()
    versions = {tuple(int(n) for n in m.groups()) for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)", data)}
    return max(versions) if versions else None


# ---------------------------------------------------------------------------- network and servers

def ipv4_routes():
    """(network, mask) of every IPv4 route of this machine, from /proc/net/route."""
    routes = []
    with open("/proc/net/route", encoding="ascii") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            dest = socket.inet_ntoa(int(fields[1], 16).to_bytes(4, "little"))
            mask = socket.inet_ntoa(int(fields[7], 16).to_bytes(4, "little"))
            routes.append((fields[0], dest, mask))
    return routes


def subnet_overlaps(subnet, own_device=None):
    """Routes of this machine into `subnet`, other than through `own_device`."""
    import ipaddress

    ours = ipaddress.ip_network(subnet)
    clashes = []
    for device, dest, mask in ipv4_routes():
        net = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
        if net.prefixlen > 0 and net.overlaps(ours) and device != own_device:
            clashes.append(f"{net} on {device}")
    return clashes


def create_network(client):
    import docker

    for network in client.networks.list(names=[NETWORK]):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()
    clashes = subnet_overlaps(SUBNET)
    check(not clashes, f"the local network's range {SUBNET} (named in {ENV_FILE} and README.md) is "
                       f"already routed on this machine ({', '.join(clashes)}); free it first")
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=SUBNET, gateway=GATEWAY)])
    return client.networks.create(NETWORK, driver="bridge", internal=True, ipam=ipam,
                                  labels={"catalog-sync": "sam-local"})


class Server:
    """A child process (moto, the emulator), stopped with its whole process group."""

    def __init__(self, name, argv, log_path):
        self.name, self.log_path = name, log_path
        self.log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_http(self, url, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailed(f"{self.name} exited with status {self.process.returncode}; "
                                  f"its log:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        raise CheckFailed(f"{self.name} did not answer at {url} within {timeout} s; its log:\n{self.tail()}")

    def tail(self, lines=20):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])

    def stop(self):
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


# ---------------------------------------------------------------------------- relays

class Relay:
    """Listens on (host, port) and pipes every connection to target; threads, no dependencies."""

    def __init__(self, host, port, target):
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(64)
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        sockets = [client, upstream]
        try:
            while not self.closed.is_set():
                readable, _, _ = select.select(sockets, [], [], 1.0)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is client else client).sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def close(self):
        self.closed.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def relay_main(specs):
    """`relay LISTEN_PORT=HOST:PORT...`: loopback relays, run inside a container's network
    namespace (through nsenter) until killed; prints `ready` once listening."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    relays = []
    for spec in specs:
        port, target = spec.split("=", 1)
        host, target_port = target.rsplit(":", 1)
        relays.append(Relay("127.0.0.1", int(port), (host, int(target_port))))
    print("ready", flush=True)
    while True:
        time.sleep(3600)


class RelayWatcher:
    """Watches the private daemon for SAM's function containers. When one starts, relays
    127.0.0.1:5000 and :5001 inside it to moto and the emulator on the gateway (a process in the
    container's network namespace, started with nsenter), and only then opens the way to its
    runtime interface emulator: Docker publishes that on 127.0.0.1:<port>, and SAM, told
    `--container-host 127.0.0.2`, waits until 127.0.0.2:<port> answers, relayed here. So the
    function's first call (the token, from moto) never races the relay. Undone when it dies."""

    def __init__(self, client, workdir):
        self.client = client
        self.workdir = workdir
        self.active = {}
        self.errors = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.events = client.events(decode=True, filters={
            "type": "container", "label": "sam.cli.container.type=lambda"})
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        try:
            for event in self.events:
                if self.stopping.is_set():
                    return
                status, cid = event.get("status") or event.get("Action"), event.get("id")
                if status == "start":
                    try:
                        self._attach(cid)
                    except Exception as e:  # reported by the invocation's checks
                        self.errors.append(f"container {cid[:12]}: {e}")
                elif status in ("die", "destroy"):
                    self._detach(cid)
        except Exception:
            if not self.stopping.is_set():
                raise

    def _attach(self, cid):
        attrs = self.client.api.inspect_container(cid)
        pid = attrs["State"]["Pid"]
        published = attrs["HostConfig"]["PortBindings"][f"{RIE_PORT}/tcp"][0]
        port = int(published["HostPort"])
        specs = [f"{port}={host}:{target}" for port, (host, target) in LOOPBACK_RELAYS.items()]
        inner_log = open(os.path.join(self.workdir, f"relay-{cid[:12]}.log"), "w", encoding="utf-8")
        inner = subprocess.Popen(
            privileged(["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable,
                        os.path.abspath(__file__), "relay", *specs]),
            stdout=subprocess.PIPE, stderr=inner_log, text=True, start_new_session=True)
        with self.lock:
            self.active[cid] = [inner, None]
        line = inner.stdout.readline().strip()
        if line != "ready":
            raise CheckFailed(f"the loopback relay in the function container did not start ({line!r})")
        outer = Relay(SAM_CONTAINER_HOST, port, (published.get("HostIp") or "127.0.0.1", port))
        with self.lock:
            self.active[cid][1] = outer

    def _detach(self, cid):
        with self.lock:
            inner, outer = self.active.pop(cid, (None, None))
        if outer is not None:
            outer.close()
        if inner is not None and inner.poll() is None:
            subprocess.run(privileged(["kill", "-TERM", str(inner.pid)]), check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                inner.wait(timeout=5)

    def stop(self):
        self.stopping.set()
        with contextlib.suppress(Exception):
            self.events.close()
        for cid in list(self.active):
            self._detach(cid)


# ---------------------------------------------------------------------------- moto and the emulator

def load_env_file():
    with open(os.path.join(ROOT, ENV_FILE), encoding="utf-8") as f:
        env = json.load(f)["Parameters"]
    expected = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
                "GRAPH_API_BASE_URL": f"http://127.0.0.1:{EMULATOR_PORT}"}
    for name, value in expected.items():
        check(env.get(name) == value, f"{ENV_FILE}: {name} must be {value} (relayed to {GATEWAY} in "
                                      f"the function container), found {env.get(name)!r}")
    return env


def aws(service):
    import boto3

    return boto3.client(service, endpoint_url=f"http://{GATEWAY}:{MOTO_PORT}", region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def seed_moto(env, token):
    """What the stack would have created, named as infra/sam-local-env.json names it."""
    with open(os.path.join(ROOT, "events", "s3-object-created.json"), encoding="utf-8") as f:
        record = json.load(f)["Records"][0]["s3"]
    landing = record["bucket"]["name"]
    check(landing == env["LANDING_BUCKET"],
          f"{ENV_FILE}: LANDING_BUCKET {env['LANDING_BUCKET']} is not the sample event's bucket {landing}")
    key = urllib.parse.unquote_plus(record["object"]["key"])
    s3 = aws("s3")
    for bucket in (landing, env["SYNCED_BUCKET"]):
        s3.create_bucket(Bucket=bucket)
    secret_name = env["ACCESS_TOKEN_SECRET_ARN"].split(":secret:", 1)[1]
    aws("secretsmanager").create_secret(Name=secret_name, SecretString=token)
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name=env["ALERT_TOPIC_ARN"].rsplit(":", 1)[1])["TopicArn"]
    check(topic == env["ALERT_TOPIC_ARN"], f"moto made topic {topic}, {ENV_FILE} names {env['ALERT_TOPIC_ARN']}")
    alerts = sqs.create_queue(QueueName="catalog-sync-sam-local-alerts")["QueueUrl"]
    alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=alerts_arn)
    sqs.create_queue(QueueName=env["CONTINUE_QUEUE_URL"].rstrip("/").rsplit("/", 1)[1])
    with open(os.path.join(ROOT, CSV), "rb") as f:
        s3.put_object(Bucket=landing, Key=key, Body=f.read(), ContentType="text/csv")
    return landing, key, alerts


def keys(bucket, prefix):
    out, token = [], None
    s3 = aws("s3")
    while True:
        kwargs = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        page = s3.list_objects_v2(**kwargs)
        out += [o["Key"] for o in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        if not token:
            return out


def get_json(bucket, key):
    return json.loads(aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def graph_api_version(env):
    """The version the functions call: the env file's, else the template's default."""
    if "GRAPH_API_VERSION" in env:
        return env["GRAPH_API_VERSION"]
    with open(os.path.join(ROOT, "template.yaml"), encoding="utf-8") as f:
        found = re.search(r"(?m)^  GraphApiVersion:\n(?:    .*\n)*?    Default: (v\d+\.\d+)$", f.read())
    check(found, "template.yaml: no default GraphApiVersion")
    return found.group(1)


def emulator_products(env, token):
    """retailer_id -> fields of every product in the emulator's catalog, asked over HTTP."""
    url = (f"http://{GATEWAY}:{EMULATOR_PORT}/{graph_api_version(env)}/{env['CATALOG_ID']}/products"
           f"?fields=retailer_id,title")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {p["retailer_id"]: p for p in json.load(response)["data"]}


def response(out, function):
    """A function's response, as `sam local invoke` prints it."""
    try:
        value = json.loads(out)
    except json.JSONDecodeError as e:
        raise CheckFailed(f"{function} answered no JSON document ({e}): {out[:2000]}") from e
    check(isinstance(value, dict) and "errorType" not in value,
          f"{function} failed: {out[:2000]}")
    return value


def metric_lines(log_text):
    """The embedded-metric-format lines a function printed (SAM copies them to its stderr)."""
    found = []
    for line in log_text.splitlines():
        start = line.find("{")
        if start >= 0 and '"_aws"' in line:
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(line[start:])
                if isinstance(value, dict) and "CloudWatchMetrics" in value.get("_aws", {}):
                    found.append(value)
    return found


def alerts_received(queue_url, wait_seconds=10):
    sqs = aws("sqs")
    messages, deadline = [], time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in got.get("Messages", []):
            messages.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        if messages and not got.get("Messages"):
            break
    return messages


def csv_ids():
    import csv

    with open(os.path.join(ROOT, CSV), newline="", encoding="utf-8") as f:
        return [row["id"] for row in csv.DictReader(f)]


# ---------------------------------------------------------------------------- the run

def proved_stamp(untracked="normal"):
    """The stamp this commit leaves when it passed from a clean working tree, else None.
    `untracked="no"` ignores untracked files: the fresh clone has its `.tools` link and what the
    README's first command left, none of it read by the build."""
    status = subprocess.run(["git", "status", "--porcelain", f"--untracked-files={untracked}"],
                            cwd=ROOT, capture_output=True, text=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if status.returncode != 0 or head.returncode != 0 or status.stdout.strip():
        return None
    return os.path.join(CACHE, "proved", head.stdout.strip())


def main(argv):
    if argv[:1] == ["relay"]:
        relay_main(argv[1:])
        return 0
    if os.environ.get("CATALOG_SYNC_NESTED") == "1":
        proved = proved_stamp(untracked="no")
        if proved and os.path.exists(proved):
            say(f"skipped: commit {os.path.basename(proved)[:12]} already passed this check from a "
                f"clean working tree ({proved})")
            return 0
    stamp = proved_stamp()
    check(platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64"),
          f"this check runs the x86_64 build in Docker on Linux x86_64; this is "
          f"{platform.system()} {platform.machine()}")
    for tool in ("sam/bin/sam", "moto/bin/moto_server", "cargo-lambda/bin/cargo-lambda"):
        check(os.access(os.path.join(TOOLS, tool), os.X_OK),
              f"{TOOLS}/{tool} is missing: run infra/install-tools.sh (make tools)")
    check(shutil.which("nsenter"), "nsenter (util-linux) is needed to relay loopback ports into "
                                   "the function containers")
    build_cmd, sync_cmd, poll_cmd = readme_commands()
    env = load_env_file()
    token = "sam-local-test-token"
    os.makedirs(CACHE, exist_ok=True)
    total = time.monotonic()

    # Read-only: whoever created the lock file, every user can take the lock through it.
    with open(os.open(LOCK, os.O_RDONLY | os.O_CREAT, 0o644), encoding="utf-8") as lock, \
            contextlib.ExitStack() as cleanup:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another sam-local check on this machine ({LOCK})")
            fcntl.flock(lock, fcntl.LOCK_EX)
        workdir = tempfile.mkdtemp(prefix="cs-sam-")
        # The daemon's exec root in it belongs to root.
        cleanup.callback(subprocess.run, privileged(["rm", "-rf", workdir]), check=False)
        logs = os.path.join(CACHE, "logs")
        os.makedirs(logs, exist_ok=True)

        with step("docker: install if missing, start the daemon"):
            ensure_docker()
            daemon = Dockerd(workdir)
            cleanup.callback(quietly, "stop the Docker daemon", daemon.stop)
            daemon.start()
        client = daemon.client
        os.environ["DOCKER_HOST"] = f"unix://{daemon.socket}"
        with step("stand-in image for provided.al2023"):
            recipe, built = build_image(client)
            say(f"image {IMAGE}:{IMAGE_TAG} (recipe {recipe}) {'built' if built else 'from the cache'}")
        with step(f"internal network {NETWORK} ({SUBNET})"):
            create_network(client)  # removed by daemon.stop
        with step("moto and the Graph API emulator on the gateway, seeded"):
            # The workspace's features, as `make unit` builds it: then this finds it built.
            run(["cargo", "build", "--quiet", "--locked", "--workspace", "--all-features", "--bin",
                 "graph-emulator"], "cargo build --bin graph-emulator", cwd=ROOT)
            moto = Server("moto", [os.path.join(TOOLS, "moto", "bin", "moto_server"), "-H", GATEWAY,
                                   "-p", str(MOTO_PORT)], os.path.join(logs, "moto.log"))
            cleanup.callback(quietly, "stop moto", moto.stop)
            emulator = Server("graph-emulator", [
                os.path.join(TARGET, "debug", "graph-emulator"), "--host", GATEWAY,
                "--port", str(EMULATOR_PORT), "--catalog", env["CATALOG_ID"], "--token", token,
                "--checks-until-finished", "0"], os.path.join(logs, "graph-emulator.log"))
            cleanup.callback(quietly, "stop the emulator", emulator.stop)
            moto.wait_http(f"http://{GATEWAY}:{MOTO_PORT}/moto-api/")
            emulator.wait_http(f"http://{GATEWAY}:{EMULATOR_PORT}/")
            landing, key, alerts = seed_moto(env, token)
        with step("sam build (x86_64)"):
            run_readme_command(build_cmd, os.path.join(logs, "sam-build.log"), timeout=3600)
        for function in ("SyncOnArrivalFunction", "PollBatchStatusFunction"):
            bootstrap = os.path.join(ROOT, ".aws-sam", "build", function, "bootstrap")
            check(os.path.exists(bootstrap), f"sam build left no {bootstrap}")
            needs = glibc_needs(bootstrap)
            check(needs is None or needs <= AL2023_GLIBC,
                  f"{bootstrap} needs GLIBC_{needs[0]}.{needs[1]}, newer than Amazon Linux 2023's "
                  f"{AL2023_GLIBC[0]}.{AL2023_GLIBC[1]}: it would not start on Lambda")
            _, files = image_recipe()
            missing = [p for p in library_paths([bootstrap]) if p not in files]
            check(not missing, f"{bootstrap} loads {missing}, which the stand-in image lacks: "
                               f"add them to BASE_LIBRARIES in {__file__}")

        watcher = RelayWatcher(client, workdir)
        cleanup.callback(quietly, "stop the relays", watcher.stop)
        ids = csv_ids()

        with step("sam local invoke SyncOnArrivalFunction"):
            out, err = run_readme_command(sync_cmd, os.path.join(logs, "invoke-sync.log"), timeout=900)
        check(not watcher.errors, f"relays: {watcher.errors}")
        summary = response(out, "sync-on-arrival")
        check(summary.get("archived") == [key], f"sync-on-arrival did not archive {key}: {out}")
        check(summary["counts"]["sent"] == len(ids), f"expected {len(ids)} products sent: {out}")
        check(key not in keys(landing, "data/"), f"{key} is still in data/")
        check(f"archive/{key[len('data/'):]}" in keys(landing, "archive/"),
              f"archive/ holds {keys(landing, 'archive/')}, not the file")
        batch_size = int(env["BATCH_SIZE"])
        batches = -(-len(ids) // batch_size)
        pending = keys(env["SYNCED_BUCKET"], "pending/")
        check(len(pending) == batches, f"expected {batches} pending records, found {pending}")
        for record_key in pending:
            record = get_json(env["SYNCED_BUCKET"], record_key)
            check(record["source_key"] == key, f"{record_key} names {record['source_key']}, not {key}")
        products = emulator_products(env, token)
        check(sorted(products) == sorted(ids), f"the emulator's catalog holds {sorted(products)}, "
                                               f"expected {sorted(ids)}")
        sync_metrics = metric_lines(err)
        check(sync_metrics and sync_metrics[-1].get("ProductsSent") == len(ids)
              and sync_metrics[-1].get("BatchesSent") == batches,
              f"sync-on-arrival's metrics line: {sync_metrics}")
        say(f"sync-on-arrival: archived {key}, {len(ids)} products in the emulator's catalog, "
            f"{batches} pending records")

        with step("sam local invoke PollBatchStatusFunction"):
            out, err = run_readme_command(poll_cmd, os.path.join(logs, "invoke-poll.log"), timeout=300)
        check(not watcher.errors, f"relays: {watcher.errors}")
        summary = response(out, "poll-batch-status")
        check(summary.get("finished") == batches, f"the poller finished {summary.get('finished')} of "
                                                  f"{batches} batches: {out}")
        check(summary.get("item_warnings", 0) >= 1, f"the emulator reported no warnings: {out}")
        check(keys(env["SYNCED_BUCKET"], "pending/") == [], "pending records left after the poll")
        checked = keys(env["SYNCED_BUCKET"], "checked/")
        check(len(checked) == batches, f"expected {batches} verdicts under checked/, found {checked}")
        received = alerts_received(alerts)
        kinds = [m.get("MessageAttributes", {}).get("kind", {}).get("Value") for m in received]
        check("batch_warnings" in kinds, f"no batch_warnings alert on SNS; received kinds {kinds}")
        warning = next(m["Message"] for m in received
                       if m.get("MessageAttributes", {}).get("kind", {}).get("Value") == "batch_warnings")
        check(UNCATEGORISED in warning, f"the batch_warnings alert does not name {UNCATEGORISED}, "
                                       f"the product of {CSV} with no category: {warning}")
        poll_metrics = metric_lines(err)
        check(poll_metrics and poll_metrics[0].get("BatchesFinished") == batches,
              f"the poller's metrics line: {poll_metrics}")
        check(any("FileToVerdictSeconds" in m for m in poll_metrics),
              f"the poller printed no FileToVerdictSeconds: {poll_metrics}")
        say(f"poll-batch-status: {batches} verdicts under checked/, pending/ empty, alerts {kinds}")

        if stamp:
            os.makedirs(os.path.dirname(stamp), exist_ok=True)
            with open(stamp, "w", encoding="utf-8") as f:
                f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))

    say("times: " + ", ".join(f"{name} {took:.1f} s" for name, took in STEP_TIMES))
    say(f"1 passed, 0 failed (both functions built and invoked in Docker, {time.monotonic() - total:.0f} s)")
    return 0


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main(sys.argv[1:]))
    except CheckFailed as e:
        print(f"sam-local: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"sam-local: interrupted ({e}); everything started was stopped", file=sys.stderr)
        sys.exit(130)
