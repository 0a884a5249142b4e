"""What the API schemas cannot check in deploy/: run by deploy/validate (after the schema check).

Kubernetes (deploy/k8s/): the kustomization lists every manifest; the Services and the
disruption budget select the StatefulSet's pods; named ports, ConfigMap and Secret references
resolve; the StatefulSet has its probes, its preStop drain and a grace period longer than the
drain; every ENRICHMENT_* variable names a configuration key.

Compose (deploy/compose.yaml): the file parses, has three nodes and the services they need,
with health checks, dependencies on healthy services, a stop grace period long enough to drain,
node 1 as the seed, and secrets taken from the environment.

Prints one line per file checked; on failure, every problem found, and exits 1.
"""

import re
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
K8S = DEPLOY / "k8s"
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def config_variables():
    """Every ENRICHMENT_* variable that names a key of deploy/enrichment.example.toml, where
    each key appears, set or commented out, as `key = value` at the start of a line."""
    names = {"ENRICHMENT_LOG", "ENRICHMENT_CONFIG"}
    section = ""
    for line in (DEPLOY / "enrichment.example.toml").read_text().splitlines():
        head = re.match(r"^\[([a-z0-9_.]+)\]", line)
        if head:
            section = head.group(1).replace(".", "_") + "_"
            continue
        key = re.match(r"^#? ?([a-z0-9_]+) = ", line)
        if key:
            names.add(f"ENRICHMENT_{section}{key.group(1)}".upper())
    return names


KNOWN = config_variables()


def check_variable(where, name):
    if name.startswith("ENRICHMENT_") and name not in KNOWN:
        problem(where, f"{name} names no configuration key (a node would ignore it)")


def load_all(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as e:
        problem(path.name, f"not YAML: {e}")
        return []


def subset(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_kubernetes():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization.get("resources", [])
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    if sorted(listed) != present:
        problem("kustomization.yaml", f"lists {sorted(listed)}, the folder has {present}")

    objects = {}
    for name in present:
        for doc in load_all(K8S / name):
            objects.setdefault(doc.get("kind"), []).append((name, doc))

    def one(kind):
        found = objects.get(kind, [])
        if len(found) != 1:
            problem("k8s", f"expected one {kind}, found {len(found)}")
            return None, {}
        return found[0]

    _, configmap = one("ConfigMap")
    _, secret = one("Secret")
    sts_file, sts = one("StatefulSet")
    pdb_file, pdb = one("PodDisruptionBudget")
    services = objects.get("Service", [])
    if not sts:
        return
    where = sts_file
    spec = sts["spec"]
    pod = spec["template"]
    labels = pod["metadata"].get("labels", {})
    if not subset(spec["selector"].get("matchLabels"), labels):
        problem(where, "the selector does not match the pod template's labels")
    if spec.get("replicas") != 3:
        problem(where, f"replicas is {spec.get('replicas')}, not 3")

    containers = pod["spec"]["containers"]
    container = containers[0]
    ports = {p["name"]: p for p in container.get("ports", [])}

    # The headless service for seeds, and the service for clients.
    headless = [d for _, d in services if d["spec"].get("clusterIP") == "None"]
    normal = [d for _, d in services if d["spec"].get("clusterIP") != "None"]
    if len(headless) != 1 or len(normal) != 1:
        problem("k8s", "expected one headless Service (seeds) and one normal Service")
    for peers in headless:
        if spec.get("serviceName") != peers["metadata"]["name"]:
            problem(where, f"serviceName is not the headless service {peers['metadata']['name']}")
        if peers["spec"].get("publishNotReadyAddresses") is not True:
            problem(peers["metadata"]["name"], "publishNotReadyAddresses must be true")
        seeds = configmap.get("data", {}).get("ENRICHMENT_CLUSTER_SEEDS", "")
        if peers["metadata"]["name"] not in seeds:
            problem("configmap", f"seeds {seeds!r} do not name the headless service")
    for file, svc in services:
        if not subset(svc["spec"].get("selector"), labels):
            problem(file, "the selector does not match the StatefulSet's pods")
        for p in svc["spec"].get("ports", []):
            target = p.get("targetPort")
            if isinstance(target, str):
                if target not in ports:
                    problem(file, f"targetPort {target} is no container port")
                elif ports[target].get("protocol", "TCP") != p.get("protocol", "TCP"):
                    problem(file, f"port {target}: protocol differs from the container's")
    if normal and {"rest", "gateway"} - {p.get("targetPort") for p in normal[0]["spec"]["ports"]}:
        problem("service", "must expose the rest and gateway ports")

    if pdb:
        if pdb["spec"].get("maxUnavailable") != 1:
            problem(pdb_file, "maxUnavailable must be 1")
        if not subset(pdb["spec"]["selector"].get("matchLabels"), labels):
            problem(pdb_file, "the selector does not match the StatefulSet's pods")

    # References to the ConfigMap and the Secret, and $(VAR) expansions.
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    defined = set()
    for ref in container.get("envFrom", []):
        name = (ref.get("configMapRef") or {}).get("name")
        if name and name != configmap["metadata"]["name"]:
            problem(where, f"envFrom names ConfigMap {name}, which is not here")
    for key in configmap.get("data", {}):
        check_variable("configmap", key)
        defined.add(key)
    for env in container.get("env", []):
        check_variable(where, env["name"])
        for var in re.findall(r"\$\((\w+)\)", env.get("value", "")):
            if var not in defined:
                problem(where, f"{env['name']} uses $({var}) before it is defined")
        source = env.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["name"] != secret["metadata"]["name"] or ref["key"] not in secret_keys:
                problem(where, f"{env['name']}: no key {ref['key']} in Secret {ref['name']}")
        defined.add(env["name"])
    for arg in container.get("args", []):
        for var in re.findall(r"\$\((\w+)\)", arg):
            if var not in defined:
                problem(where, f"args use $({var}), which is not defined")
    node_id = [e for e in container.get("env", []) if e["name"] == "ENRICHMENT_NODE_ID"]
    if not node_id or node_id[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problem(where, "ENRICHMENT_NODE_ID must come from the pod's name")
    if "--cluster-advertise" not in container.get("args", []):
        problem(where, "the node must advertise its pod IP (--cluster-advertise)")

    # Probes, drain, grace period, resources, user.
    probes = {
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
    }
    for probe, path in probes.items():
        got = container.get(probe, {}).get("httpGet", {})
        if got.get("path") != path or got.get("port") not in ports:
            problem(where, f"{probe} must GET {path} on a container port")
    pre_stop = " ".join(
        container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    )
    if "/admin/v1/cluster/nodes/$ENRICHMENT_NODE_ID/drain" not in pre_stop:
        problem(where, "the preStop hook must drain the node through its admin API")
    sleep = re.search(r"sleep (\d+)", pre_stop)
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    # The drain request (5 s), the pause, then the node's own stop: gateway drain (5 s) and
    # in-flight requests (up to 30 s).
    needed = 5 + (int(sleep.group(1)) if sleep else 0) + 35
    if grace < needed:
        problem(where, f"terminationGracePeriodSeconds {grace} < {needed} (drain and stop)")
    res = container.get("resources", {})
    if not res.get("requests") or not res.get("limits"):
        problem(where, "resources need requests and limits")
    if not pod["spec"].get("securityContext", {}).get("runAsNonRoot"):
        problem(where, "pods must run as non-root")
    print(
        f"deploy/validate: deploy/k8s: {len(present)} manifests listed in kustomization.yaml; "
        "selectors, ports, references, probes, preStop drain and grace period agree"
    )


def check_compose():
    where = "compose.yaml"
    docs = load_all(DEPLOY / "compose.yaml")
    if len(docs) != 1:
        problem(where, "expected one YAML document")
        return
    services = docs[0].get("services", {})
    nodes = ["node-1", "node-2", "node-3"]
    expected = set(nodes) | {"postgres", "redis", "s3", "s3-init"}
    if set(services) != expected:
        problem(where, f"services are {sorted(services)}, expected {sorted(expected)}")
        return
    for name in ["postgres", "redis", "s3"] + nodes:
        if not services[name].get("healthcheck", {}).get("test"):
            problem(where, f"{name} has no health check")
    for name, svc in services.items():
        depends = svc.get("depends_on", {})
        if isinstance(depends, list):
            problem(where, f"{name}: depends_on needs conditions")
            continue
        for dep, cond in depends.items():
            if dep not in services:
                problem(where, f"{name} depends on unknown service {dep}")
            wanted = "service_completed_successfully" if dep == "s3-init" else "service_healthy"
            if cond.get("condition") != wanted:
                problem(where, f"{name} should wait for {dep} to be {wanted}")
    ids, host_ports = set(), set()
    bucket = None
    for name in nodes:
        svc = services[name]
        env = svc.get("environment", {})
        for key in env:
            check_variable(f"{where} {name}", key)
        missing = {"postgres", "redis", "s3-init"} - set(svc.get("depends_on", {}))
        if missing:
            problem(where, f"{name} does not wait for {sorted(missing)}")
        for key, want in {
            "ENRICHMENT_STORAGE": "postgres",
            "ENRICHMENT_BLOBS": "s3",
            "ENRICHMENT_CLUSTER_ENABLED": "true",
            "ENRICHMENT_CLUSTER_SEEDS": "node-1:8082",
        }.items():
            if str(env.get(key)) != want:
                problem(where, f"{name}: {key} should be {want}, is {env.get(key)!r}")
        for key in ["ENRICHMENT_CLUSTER_SECRET", "ENRICHMENT_ADMIN_TOKEN"]:
            if not re.fullmatch(r"\$\{" + key + r":-[^}]{16,}\}", str(env.get(key, ""))):
                problem(where, f"{name}: {key} must come from the environment, with a default of 16+ characters")
        ids.add(env.get("ENRICHMENT_NODE_ID"))
        bucket = env.get("ENRICHMENT_S3_BUCKET")
        grace = re.fullmatch(r"(\d+)s", str(svc.get("stop_grace_period", "")))
        if not grace or int(grace.group(1)) < 40:
            problem(where, f"{name}: stop_grace_period must be 40s or more (drain)")
        for port in svc.get("ports", []):
            host = port.rsplit(":", 1)[0]
            if host in host_ports:
                problem(where, f"{name}: host port {host} published twice")
            host_ports.add(host)
        if "ENRICHMENT_CLUSTER_ADVERTISE" not in " ".join(svc.get("command", [])):
            problem(where, f"{name}: the node must advertise its container's address")
    if ids != set(nodes):
        problem(where, f"node ids are {sorted(map(str, ids))}, expected {nodes}")
    init = " ".join(services["s3-init"].get("command", []))
    if f"mb --ignore-existing local/{bucket}" not in init:
        problem(where, f"s3-init does not create the bucket {bucket}")
    print(
        f"deploy/validate: deploy/compose.yaml: services {', '.join(sorted(services))}; "
        "health checks, dependencies, seeds and grace periods agree"
    )


check_kubernetes()
check_compose()
if problems:
    for p in problems:
        print(f"deploy/validate: {p}", file=sys.stderr)
    sys.exit(1)
