"""The deployment files are checked here, since no cluster runs them here: every Kubernetes
object against the Kubernetes schemas (kubernetes-validate, strict: an unknown or misspelt
field fails), and what a schema cannot see — names that must point at each other, the
queues the autoscaler watches, the probes' paths — against the manifests and the platform.
deploy/compose.yaml gets the same kind of cross-checks; `make deploy-check` runs it for real.
"""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from django.urls import resolve

from archive import jobs

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.33.0"  # oldest release still supported when these were written
KEDA_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def objects() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in documents(path)]


def by_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def pod_specs() -> dict[str, dict]:
    """Every pod template, by its owner's name."""
    owners = [o for o in objects() if o["kind"] in {"Deployment", "StatefulSet", "Job"}]
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in owners}


@pytest.mark.parametrize(
    "obj",
    [o for o in objects() if (o["apiVersion"], o["kind"]) not in KEDA_KINDS],
    ids=lambda o: f"{o['kind']}/{o['metadata']['name']}",
)
def test_every_object_matches_the_kubernetes_schema(obj):
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_schema_check_catches_a_misspelt_field():
    web = by_kind("Deployment")["strata-web"]
    broken = yaml.safe_load(yaml.safe_dump(web).replace("readinessProbe", "readynessProbe"))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_every_secret_and_config_reference_exists():
    secrets = {name: set(s["stringData"]) for name, s in by_kind("Secret").items()}
    configmaps = by_kind("ConfigMap")
    claims = by_kind("PersistentVolumeClaim")
    for owner, spec in pod_specs().items():
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, owner
                else:
                    assert source["configMapRef"]["name"] in configmaps, owner
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], f"{owner}: {ref}"
        for volume in spec.get("volumes", []):
            assert volume["persistentVolumeClaim"]["claimName"] in claims, owner


def test_each_role_gets_its_own_broker_login_and_runs_as_the_image_user():
    logins = {
        owner: next(
            v["valueFrom"]["secretKeyRef"]["key"]
            for c in spec["containers"]
            for v in c.get("env", [])
            if v["name"] == "MQTT_URL"
        )
        for owner, spec in pod_specs().items()
        if any(v["name"] == "MQTT_URL" for c in spec["containers"] for v in c.get("env", []))
    }
    assert logins == {
        "strata-web": "WEB_MQTT_URL",
        "strata-ingest": "INGEST_MQTT_URL",
        "strata-controller": "CONTROL_MQTT_URL",
    }
    for owner, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True, owner
        assert spec["securityContext"]["runAsUser"] == 10001, owner  # deploy/Dockerfile's user


def test_ingest_pods_keep_their_names_and_the_controller_has_a_standby():
    ingest = by_kind("StatefulSet")["strata-ingest"]
    assert ingest["spec"]["replicas"] >= 2  # shared subscription: they split the stream
    governing = by_kind("Service")[ingest["spec"]["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None"
    command = " ".join(ingest["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "--client-id $(hostname)" in command  # the pod name: its broker session survives
    assert by_kind("Deployment")["strata-controller"]["spec"]["replicas"] == 2  # advisory lock


def test_web_probes_ask_the_health_endpoints_with_an_allowed_host():
    container = pod_specs()["strata-web"]["containers"][0]
    allowed = by_kind("ConfigMap")["strata"]["data"]["ALLOWED_HOSTS"].split(",")
    exempt = by_kind("ConfigMap")["strata"]["data"]["SECURE_REDIRECT_EXEMPT"].split(",")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert resolve(get["path"]).url_name in {"healthz", "readyz"}, probe
        assert {"name": "Host", "value": allowed[0]} in get["httpHeaders"], probe
        assert any(re.search(p, get["path"].lstrip("/")) for p in exempt), probe


def queues_of(container: dict) -> list[str]:
    return container["command"][container["command"].index("-Q") + 1].split(",")


def one_task_at_a_time(command: list[str]) -> bool:
    """The solo pool, reserving no second task (Celery's prefetch is concurrency times the
    multiplier, and its default concurrency is the core count, even for the solo pool)."""
    option = dict(zip(command, command[1:], strict=False))
    return option.get("--pool") == "solo" and option.get("--concurrency") == "1"


def test_gpu_workers_go_to_gpu_nodes_and_scale_on_the_platform_queues():
    spec = pod_specs()["strata-decoder-gpu"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    worker = spec["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "STRATA_DECODE_DEVICE", "value": "cuda"} in worker["env"]
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert set(queues_of(worker)) == routed
    assert queues_of(worker)[0] == jobs.LIVE_QUEUE  # live first when one waits
    assert one_task_at_a_time(worker["command"])

    scaled = [o for o in objects() if o["kind"] == "ScaledObject"]
    deployments = by_kind("Deployment")
    assert all(s["spec"]["scaleTargetRef"]["name"] in deployments for s in scaled)
    # Celery's Redis transport: a list per queue and priority, the queue's name for priority
    # 0 and name + "\x06\x16" + priority for the others; every one the platform sends to
    sent_to = {"live"} | {"archive" if p == 0 else f"archive\x06\x16{p}" for p in jobs.Priority}
    watched = {t["metadata"]["listName"] for s in scaled for t in s["spec"]["triggers"]}
    assert watched == sent_to
    steps = settings.CELERY_BROKER_TRANSPORT_OPTIONS["priority_steps"]
    assert all(p in steps for p in jobs.Priority)  # a priority off the steps is rounded
    for obj in scaled:
        # each list scales the workers that consume its queue
        container = pod_specs()[obj["spec"]["scaleTargetRef"]["name"]]["containers"][0]
        for trigger in obj["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA: strings
            assert trigger["metadata"]["listName"].split("\x06\x16")[0] in queues_of(container)
        assert 1 <= obj["spec"]["minReplicaCount"] < obj["spec"]["maxReplicaCount"]


def test_a_live_worker_is_reserved_for_live_views_and_scales_on_its_queue():
    container = pod_specs()["strata-decoder-live"]["containers"][0]
    assert queues_of(container) == [jobs.LIVE_QUEUE]
    assert one_task_at_a_time(container["command"])
    threads = {v["name"]: v["value"] for v in container["env"]}["STRATA_DECODE_THREADS"]
    assert int(threads) == int(container["resources"]["requests"]["cpu"])  # no oversubscribing
    name = container["command"][container["command"].index("-n") + 1].split("@")[0]
    assert f"-d {name}@$(hostname)" in container["livenessProbe"]["exec"]["command"][-1]
    (live,) = [
        o for o in objects() if o["kind"] == "ScaledObject" and "live" in o["metadata"]["name"]
    ]
    assert live["spec"]["scaleTargetRef"]["name"] == "strata-decoder-live"
    assert [t["metadata"]["listName"] for t in live["spec"]["triggers"]] == [jobs.LIVE_QUEUE]


# --- compose ---------------------------------------------------------------------------------

COMPOSE = ROOT / "deploy" / "compose.yaml"
LOCAL = ROOT / "deploy" / "compose.local.yaml"


class ComposeLoader(yaml.SafeLoader):
    """PyYAML plus compose's ``!reset`` tag (compose.local.yaml)."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def compose(path: Path = COMPOSE) -> dict:
    return yaml.load(path.read_text(), Loader=ComposeLoader)


def test_compose_runs_every_role_from_one_image():
    services = compose()["services"]
    assert set(services) == {
        "postgres", "redis", "mosquitto", "migrate", "web", "ingest-0", "ingest-1",
        "controller", "worker", "worker-live",
    }  # fmt: skip
    platform = {name for name, s in services.items() if "build" in s}
    assert platform == {
        "migrate", "web", "ingest-0", "ingest-1", "controller", "worker", "worker-live",
    }  # fmt: skip
    assert len({services[name]["image"] for name in platform}) == 1
    assert services["ingest-0"]["command"][-1] != services["ingest-1"]["command"][-1]  # slots


def test_compose_dependencies_exist_and_the_platform_waits_for_migrations():
    services = compose()["services"]
    for name, service in services.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on {needed}"
            assert condition["condition"] in {
                "service_started", "service_healthy", "service_completed_successfully",
            }  # fmt: skip
            if condition["condition"] == "service_healthy":
                assert "test" in services[needed]["healthcheck"], needed
    for name in ("web", "ingest-0", "ingest-1", "controller", "worker", "worker-live"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }


def test_compose_gives_each_role_its_broker_login_and_no_secret_in_the_file():
    text = COMPOSE.read_text()
    services = compose()["services"]
    expected = {"web": "strata-web", "ingest-0": "strata-ingest", "controller": "strata-control"}
    for name, account in expected.items():
        assert services[name]["environment"]["MQTT_URL"].startswith(f"mqtt://{account}:"), name
    assert "MQTT_URL" not in services["worker"]["environment"]
    assert "MQTT_URL" not in services["worker-live"]["environment"]
    for variable in ("SECRET_KEY", "POSTGRES_PASSWORD", "MQTT_WEB_PASSWORD"):
        assert f"${{{variable}:?" in text  # required from the environment, never a default
    accounts = set(
        re.findall(r"^user (\S+)$", (ROOT / "deploy/mosquitto/platform.acl").read_text(), re.M)
    )
    assert accounts == {"strata-ingest", "strata-control", "strata-web"}


def test_the_local_override_only_moves_services_onto_the_host_network():
    local = compose(LOCAL)["services"]
    assert set(local) == set(compose()["services"])
    for name, service in local.items():
        assert service["network_mode"] == "host", name
        assert set(service) <= {"network_mode", "ports", "image", "command", "environment"}, name


def test_compose_runs_a_live_worker_beside_the_archive_worker_sharing_the_cores():
    services = compose()["services"]
    live, archive = services["worker-live"], services["worker"]

    def args(service: dict) -> list[str]:
        return service["command"][service["command"].index("celery") :]

    assert queues_of(live) == [jobs.LIVE_QUEUE]
    assert queues_of(archive) == [jobs.LIVE_QUEUE, jobs.ARCHIVE_QUEUE]  # live first when idle
    assert archive["command"][:3] == ["nice", "-n", "10"]  # the live worker's decodes go first
    for service in (live, archive):
        assert one_task_at_a_time(args(service)), service["command"]
        assert service["environment"]["STRATA_DECODE_THREADS"].startswith("${")
        name = args(service)[args(service).index("-n") + 1].split("@")[0]
        assert f"-d {name}@$$(hostname)" in service["healthcheck"]["test"][-1]
    ports = {s["environment"]["STRATA_METRICS_PORT"] for s in (live, archive)}
    assert len(ports) == 2  # both on the host network in compose.local.yaml
