"""The production manifests in deploy/, validated offline.

- deploy/dagster.yaml goes through Dagster's own instance-config loading
  (``dagster_instance_config``), every configurable class in it is imported and its config
  processed against the class's schema with the environment variables it names set (what
  ``ConfigurableClassData.rehydrate`` does, minus connecting), and the Kubernetes Job that the
  K8sRunLauncher would create for a run is built with dagster-k8s and validated against the
  Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors).
- deploy/helm-values.yaml: the instance sections the dagster chart renders from it (mirrored from
  the chart's templates) must equal deploy/dagster.yaml's, and its Kubernetes fragments must be
  valid objects; deploy/dagster.yaml must have the same concurrency / run-monitoring keys as the
  loopback scale test's instance (tessera_assets_tests/infra/dagster_stack.py).
- deploy/ray-cluster.yaml: RayCluster v1 fields, string rayStartParams, pod templates valid,
  the head service the settings point at, GPU slots = half the gpu pool limit.
- deploy/k8s-config.example.yaml: valid objects, placeholder-only secrets.
- deploy/tessera.example.json: parsed by ``PipelineSettings``; holds no credentials.

Each checker is also fed broken variants, so the checks are known to bite.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.33"  # oldest Kubernetes minor the manifests are meant for
ENV = {  # what deploy/dagster.yaml reads from the environment; dummy values
    "DAGSTER_PG_HOST": "db.example", "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "not-a-secret", "DAGSTER_PG_DB": "dagster",
    "TESSERA_IMAGE": "ghcr.io/example/tessera-assets:test",
}
SECRET_WORDS = re.compile(r"(key|secret|token|password|passwd|credential)", re.I)


# --------------------------------------------------------------------------- loading


def load_yaml(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def load_yaml_all(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


@pytest.fixture
def pg_env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


# --------------------------------------------------------------------------- Kubernetes schemas


@cache
def _k8s_registry() -> tuple[str, Registry]:
    version = [v for v in kv_utils.all_versions() if v.startswith(K8S_VERSION + ".")][-1]
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    defs = kv_utils.schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
    return folder, Resource.from_contents(defs) @ Registry()


# resource.Quantity, as the API server parses it (the OpenAPI schema only says "string")
QUANTITY = re.compile(r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
                      r"(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")


def check_quantities(obj: Any) -> int:
    """Every requests/limits value under ``obj`` is a valid quantity; returns how many."""
    seen = 0
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("requests", "limits") and isinstance(v, dict):
                for name, q in v.items():
                    assert QUANTITY.match(str(q)), f"{k}.{name}: {q!r} is not a quantity"
                    seen += 1
            else:
                seen += check_quantities(v)
    elif isinstance(obj, list):
        seen += sum(check_quantities(v) for v in obj)
    return seen


def k8s_validate(obj: dict) -> None:
    """A whole object (apiVersion + kind), strict schema of Kubernetes ``K8S_VERSION``."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    check_quantities(obj)


def k8s_validate_as(obj: Any, type_name: str) -> None:
    """A fragment against the strict schema of one type (``volume-v1``, ``container-v1``,
    ``podtemplatespec-v1``, ``objectmeta-meta-v1`` ...), as kubernetes-validate does for objects."""
    import jsonschema

    folder, registry = _k8s_registry()
    schema = kv_utils.schema_contents(f"{folder}/{type_name}.json", K8S_VERSION)
    registry = Resource.from_contents(schema) @ registry
    jsonschema.Draft202012Validator(schema, registry=registry).validate(obj)
    check_quantities(obj)


# --------------------------------------------------------------------------- Dagster instance


def check_instance(config: dict, tmp_path: Path) -> dict:
    """Validate an instance config the way ``DagsterInstance`` loads it; return the processed
    configs of its configurable classes and storage (environment variables resolved)."""
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.storage.config import pg_config

    home = tmp_path / f"home{len(list(tmp_path.iterdir()))}"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    processed: dict[str, Any] = {}
    for section in ("run_launcher", "run_coordinator"):
        entry = validated[section]
        klass = getattr(importlib.import_module(entry["module"]), entry["class"])
        result = process_config(resolve_to_config_type(klass.config_type()),
                                entry.get("config") or {})
        assert result.success, f"{section}: {[e.message for e in result.errors]}"
        processed[section] = (klass, result.value)
    assert set(validated["storage"]) == {"postgres"}
    result = process_config(resolve_to_config_type(pg_config()), validated["storage"]["postgres"])
    assert result.success, [e.message for e in result.errors]
    processed["storage"] = result.value
    return processed


def run_worker_job(launcher_config: dict) -> dict:
    """The Kubernetes Job dagster-k8s builds for a run from this launcher config, as the JSON
    the API server would receive."""
    import kubernetes
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
    )

    job_config = DagsterK8sJobConfig(
        **{k: v for k, v in launcher_config.items() if k in DagsterK8sJobConfig._fields})
    job = construct_dagster_k8s_job(
        job_config, ["dagster", "api", "execute_run", "{}"], "dagster-run-0123456789",
        UserDefinedDagsterK8sConfig.from_dict(launcher_config.get("run_k8s_config") or {}),
        component="run_worker", labels={"dagster/job": "__ASSET_JOB"})
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def test_dagster_yaml_is_a_valid_instance(pg_env, tmp_path):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    processed = check_instance(load_yaml("dagster.yaml"), tmp_path)
    assert processed["run_launcher"][0] is K8sRunLauncher
    assert processed["run_coordinator"][0] is QueuedRunCoordinator
    pg = processed["storage"]["postgres_db"]
    assert (pg["hostname"], pg["password"]) == (ENV["DAGSTER_PG_HOST"], ENV["DAGSTER_PG_PASSWORD"])


def test_run_worker_job_is_valid_kubernetes(pg_env, tmp_path):
    launcher = check_instance(load_yaml("dagster.yaml"), tmp_path)["run_launcher"][1]
    job = run_worker_job(launcher)
    k8s_validate(job)
    assert check_quantities(job) == 3  # cpu and memory requested, memory limited
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == ENV["TESSERA_IMAGE"]
    assert container["resources"]["limits"]["memory"]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    env_from = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert {"tessera-env", "tessera-secrets"} <= env_from
    # $TESSERA_CONFIG (from tessera-env) lies on the tessera-config ConfigMap volume
    settings_dir = str(Path(configmap_data("tessera-env")["TESSERA_CONFIG"]).parent)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts[settings_dir]]["configMap"]["name"] == "tessera-config"
    pw = next(e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD")
    assert pw["valueFrom"]["secretKeyRef"] == {"name": "tessera-dagster-postgresql",
                                              "key": "postgresql-password"}


BROKEN_INSTANCES = {
    # the launcher cannot mount the instance into run pods without it (required field)
    "no instance ConfigMap": lambda c: c["run_launcher"]["config"].pop("instance_config_map"),
    # dagster 1.13 has no `dagster.core` alias any more
    "old module path": lambda c: c["run_coordinator"].update(module="dagster.core.run_coordinator"),
    "pool limit not an int": lambda c: c["concurrency"]["pools"].update(default_limit="8"),
    "misspelt run-monitoring key": lambda c: c["run_monitoring"].update(start_timeout=60),
    "both run-queue places": lambda c: c["run_coordinator"].update(
        config={"max_concurrent_runs": 4}),
    "unknown launcher field": lambda c: c["run_launcher"]["config"].update(job_namespaces="x"),
}


@pytest.mark.parametrize("mutation", list(BROKEN_INSTANCES))
def test_instance_check_rejects_broken_config(mutation, pg_env, tmp_path):
    config = load_yaml("dagster.yaml")
    BROKEN_INSTANCES[mutation](config)
    with pytest.raises(Exception):  # noqa: B017 (DagsterInvalidConfigError, AssertionError, ...)
        check_instance(config, tmp_path)


@pytest.mark.parametrize("breakage", [
    lambda rk: rk["container_config"]["resources"]["limits"].update(memory="8 GB"),
    lambda rk: rk["pod_spec_config"].update(tolerations=[{"key": "a", "operatr": "Exists"}]),
    lambda rk: rk["container_config"].update(volume_mounts=[{"name": "x"}]),  # no mountPath
], ids=["quantity", "unknown field", "missing required field"])
def test_run_worker_job_check_rejects_broken_pod_config(breakage, pg_env, tmp_path):
    config = load_yaml("dagster.yaml")
    breakage(config["run_launcher"]["config"]["run_k8s_config"])
    launcher = check_instance(config, tmp_path)["run_launcher"][1]
    with pytest.raises(Exception):  # noqa: B017 (dagster-k8s or the schema refuses it)
        k8s_validate(run_worker_job(launcher))


# --------------------------------------------------------------------------- loopback agreement


def _shape(value: Any) -> Any:
    """Keys (recursively) of a config section, values replaced by their type."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_dagster_yaml_matches_loopback_instance():
    from tessera_assets_tests.infra.dagster_stack import instance_yaml

    loop = yaml.safe_load(instance_yaml("postgresql://u:p@127.0.0.1:5432/d", max_concurrent_runs=4,
                                        backfill_run_limit=3, pool_limit=2,
                                        run_buffer=1))
    prod = load_yaml("dagster.yaml")
    for section in ("concurrency", "run_monitoring", "telemetry"):
        assert _shape(prod[section]) == _shape(loop[section]), section
    assert prod["run_coordinator"] == loop["run_coordinator"]  # queued, limits in concurrency
    assert set(prod["storage"]) == set(loop["storage"]) == {"postgres"}
    limits = lambda c: [{k: v for k, v in t.items() if k != "limit"}  # noqa: E731
                        for t in c["concurrency"]["runs"]["tag_concurrency_limits"]]
    assert limits(prod) == limits(loop) == [
        {"key": "dagster/backfill", "value": {"applyLimitPerUniqueValue": True}},
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}}]
    one_writer = prod["concurrency"]["runs"]["tag_concurrency_limits"][1]
    assert one_writer["limit"] == 1  # one run per tile-year partition at a time
    assert prod["run_monitoring"]["enabled"] is True


# --------------------------------------------------------------------------- Helm values


def chart_instance_sections(values: dict) -> dict:
    """The run_coordinator / concurrency / run_monitoring / telemetry sections the dagster
    chart writes into the instance ConfigMap, following its templates
    (configmap-instance.yaml, helpers/instance/_run-coordinator.tpl, _concurrency.tpl),
    including the template's refusal of limits set in two places."""
    daemon = values["dagsterDaemon"]
    out: dict[str, Any] = {}
    rc = daemon["runCoordinator"]
    qrc = rc["config"].get("queuedRunCoordinator") or {}
    if daemon.get("enabled", True) and rc["enabled"]:
        assert rc["type"] == "QueuedRunCoordinator"
        out["run_coordinator"] = {"module": "dagster._core.run_coordinator",
                                  "class": "QueuedRunCoordinator"}
        if any(v is not None for v in qrc.values()):
            out["run_coordinator"]["config"] = {
                "max_concurrent_runs": qrc.get("maxConcurrentRuns", -1),
                **({"tag_concurrency_limits": qrc["tagConcurrencyLimits"]}
                   if qrc.get("tagConcurrencyLimits") else {})}
    conc = values.get("concurrency") or {}
    if conc.get("enabled"):
        pools, runs = conc.get("pools") or {}, conc.get("runs") or {}
        if runs.get("maxConcurrentRuns") is not None and qrc.get("maxConcurrentRuns") is not None:
            raise ValueError("chart: maxConcurrentRuns set in concurrency.runs and the coordinator")
        if runs.get("tagConcurrencyLimits") and qrc.get("tagConcurrencyLimits"):
            raise ValueError("chart: tagConcurrencyLimits set in concurrency.runs and the "
                             "coordinator")
        section: dict[str, Any] = {}
        rename = {"defaultLimit": "default_limit", "granularity": "granularity",
                  "opGranularityRunBuffer": "op_granularity_run_buffer"}
        if p := {rename[k]: v for k, v in pools.items() if v is not None}:
            section["pools"] = p
        r: dict[str, Any] = {}
        if runs.get("maxConcurrentRuns") is not None:
            r["max_concurrent_runs"] = runs["maxConcurrentRuns"]
        if runs.get("tagConcurrencyLimits"):
            r["tag_concurrency_limits"] = [
                {"key": t["key"], **({"value": t["value"]} if t.get("value") else {}),
                 "limit": t["limit"]} for t in runs["tagConcurrencyLimits"]]
        if r:
            section["runs"] = r
        out["concurrency"] = section
    mon = daemon.get("runMonitoring") or {}
    if mon.get("enabled"):
        out["run_monitoring"] = {"enabled": True,
                                 "start_timeout_seconds": mon["startTimeoutSeconds"],
                                 "poll_interval_seconds": mon["pollIntervalSeconds"]}
        if mon.get("maxResumeRunAttempts"):
            out["run_monitoring"]["max_resume_run_attempts"] = mon["maxResumeRunAttempts"]
    out["telemetry"] = {"enabled": values.get("telemetry", {}).get("enabled", True)}
    return out


def test_helm_values_render_the_deploy_instance(pg_env, tmp_path):
    values = load_yaml("helm-values.yaml")
    rendered = chart_instance_sections(values)
    prod = load_yaml("dagster.yaml")
    for section in ("run_coordinator", "concurrency", "run_monitoring", "telemetry"):
        assert rendered.get(section) == prod[section], section
    # and what the chart renders is itself a valid instance
    check_instance({**prod, **rendered}, tmp_path)


def test_helm_chart_mirror_rejects_broken_values():
    values = load_yaml("helm-values.yaml")
    both = copy.deepcopy(values)
    both["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"] = {
        "maxConcurrentRuns": 10}
    with pytest.raises(ValueError, match="maxConcurrentRuns"):
        chart_instance_sections(both)
    off = copy.deepcopy(values)
    off["concurrency"]["enabled"] = False  # the chart would render no limits at all
    assert "concurrency" not in chart_instance_sections(off)


def test_helm_values_kubernetes_fragments_and_references():
    values = load_yaml("helm-values.yaml")
    (dep,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    for v in dep["volumes"]:
        k8s_validate_as(v, "volume-v1")
    for m in dep["volumeMounts"]:
        k8s_validate_as(m, "volumemount-v1")
    for ref in dep["envConfigMaps"]:
        k8s_validate_as(ref, "configmapenvsource-v1")
    for ref in dep["envSecrets"]:
        k8s_validate_as(ref, "secretenvsource-v1")
    k8s_validate_as(dep["resources"], "resourcerequirements-v1")
    k8s_validate_as(values["dagsterDaemon"]["resources"], "resourcerequirements-v1")
    run = k8s["runK8sConfig"]
    k8s_validate_as({"name": "dagster", **run["containerConfig"]}, "container-v1")
    k8s_validate_as({"containers": [{"name": "dagster"}], **run["podSpecConfig"]}, "podspec-v1")

    # the same run pods as deploy/dagster.yaml describes: environment, secrets and the
    # settings volume reach runs from the code location (includeConfigInLaunchedRuns)
    prod = load_yaml("dagster.yaml")["run_launcher"]["config"]
    assert dep["includeConfigInLaunchedRuns"]["enabled"] is True
    assert [r["name"] for r in dep["envConfigMaps"]] == prod["env_config_maps"]
    assert [r["name"] for r in dep["envSecrets"]] == prod["env_secrets"]
    assert dep["volumes"] == prod["volumes"] and dep["volumeMounts"] == prod["volume_mounts"]
    assert run["containerConfig"] == prod["run_k8s_config"]["container_config"]
    assert run["podSpecConfig"]["nodeSelector"] == \
        prod["run_k8s_config"]["pod_spec_config"]["node_selector"]
    assert values["global"]["postgresqlSecretName"] == prod["postgres_password_secret"]
    assert values["serviceAccount"]["name"] == prod["service_account_name"]
    assert values["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in values["postgresql"]  # from the Secret only

    # the code location the chart serves is the project's Definitions
    args = dep["dagsterApiGrpcArgs"]
    module, attr = args[args.index("-m") + 1], args[args.index("-a") + 1]
    # (listed, not built: `defs` is built lazily from $TESSERA_CONFIG on first access)
    assert attr in dir(importlib.import_module(module)), f"{module} has no `{attr}`"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {dep['port']}" in dockerfile
    assert f'"-m", "{module}", "-a", "{attr}"' in dockerfile


def test_fragment_check_rejects_typos():
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        k8s_validate_as({"name": "c", "configmap": {"name": "x"}}, "volume-v1")
    with pytest.raises(jsonschema.ValidationError):
        k8s_validate_as({"limits": {"memory": {"gi": 8}}}, "resourcerequirements-v1")


# --------------------------------------------------------------------------- Ray cluster

RAYCLUSTER_SPEC = {"headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
                   "autoscalerOptions", "headServiceAnnotations", "suspend", "managedBy",
                   "gcsFaultToleranceOptions", "upgradeStrategy", "authOptions"}
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template",
              "resources", "labels"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts",
                "rayStartParams", "template", "scaleStrategy", "suspend", "idleTimeoutSeconds",
                "resources", "labels"}


def check_ray_cluster(doc: dict) -> None:
    """RayCluster ray.io/v1 as the KubeRay CRD types it (field names, map[string]string
    rayStartParams, int32 replica counts) with Kubernetes-valid pod templates."""
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    k8s_validate_as(doc["metadata"], "objectmeta-meta-v1")
    spec = doc["spec"]
    assert set(spec) <= RAYCLUSTER_SPEC, set(spec) - RAYCLUSTER_SPEC
    groups = [(spec["headGroupSpec"], HEAD_GROUP, {"rayStartParams", "template"})]
    groups += [(g, WORKER_GROUP, {"groupName", "rayStartParams", "template"})
               for g in spec.get("workerGroupSpecs", [])]
    for group, allowed, required in groups:
        assert set(group) <= allowed, set(group) - allowed
        assert required <= set(group), required - set(group)
        params = group["rayStartParams"]
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()), params
        for n in ("replicas", "minReplicas", "maxReplicas"):
            assert isinstance(group.get(n, 0), int) and group.get(n, 0) >= 0, n
        k8s_validate_as(group["template"], "podtemplatespec-v1")
    names = [g["groupName"] for g in spec.get("workerGroupSpecs", [])]
    assert len(names) == len(set(names))


def _ray_doc() -> dict:
    (doc,) = load_yaml_all("ray-cluster.yaml")
    return doc


def _gpu_groups(doc: dict) -> list[tuple[dict, int]]:
    out = []
    for g in doc["spec"]["workerGroupSpecs"]:
        (c,) = [c for c in g["template"]["spec"]["containers"] if c["name"] == "ray-worker"]
        gpus = int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
        if gpus:
            out.append((g, gpus))
    return out


def test_ray_cluster_manifest():
    doc = _ray_doc()
    check_ray_cluster(doc)
    spec = doc["spec"]
    pinned = re.search(r'"ray\[default\]==([\d.]+)"', (REPO / "pyproject.toml").read_text())
    assert pinned and spec["rayVersion"] == pinned.group(1)  # Ray client needs the same version
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # no actor lands on the head
    (hc,) = head["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in hc["ports"]}
    assert ports["client"] == 10001
    # KubeRay names the head Service <cluster>-head-svc; the settings attach there
    settings = json.loads((DEPLOY / "tessera.example.json").read_text())
    assert settings["inference"]["ray_address"] == \
        f"ray://{doc['metadata']['name']}-head-svc:{ports['client']}"
    groups = _gpu_groups(doc)
    assert groups, "no GPU worker group"
    for g, _ in groups:
        (c,) = [c for c in g["template"]["spec"]["containers"] if c["name"] == "ray-worker"]
        assert g["minReplicas"] == g["replicas"] == g["maxReplicas"]  # fixed slot count
        assert {"secretRef": {"name": "tessera-secrets"}} in c["envFrom"]  # actors read S3
        assert c["image"] == hc["image"]


def test_ray_cluster_check_rejects_broken_manifests():
    for breakage in (
        lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
        lambda d: d["spec"].update(workerGroupSpec=d["spec"].pop("workerGroupSpecs")),
        lambda d: d["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
        .update(resource={}),
        lambda d: d["spec"]["headGroupSpec"].pop("template"),
    ):
        doc = _ray_doc()
        breakage(doc)
        with pytest.raises(Exception):  # noqa: B017 (AssertionError or jsonschema error)
            check_ray_cluster(doc)


# --------------------------------------------------------------------------- sizing


def test_sizing_is_consistent_across_files():
    settings = json.loads((DEPLOY / "tessera.example.json").read_text())
    inf = settings["inference"]
    doc = _ray_doc()
    per_slot = float(inf.get("slots_per_worker", 1.0))
    slots = sum(g["replicas"] * gpus for g, gpus in _gpu_groups(doc)) / per_slot
    assert inf["slot_resource"] == "GPU" and inf["num_workers"] == 0
    prod = load_yaml("dagster.yaml")["concurrency"]
    helm = load_yaml("helm-values.yaml")["concurrency"]
    # two embeddings steps per slot: the next run's strips wait while one run writes
    assert prod["pools"]["default_limit"] == helm["pools"]["defaultLimit"] == 2 * slots
    # one started run waiting per slot, so a freed slot never waits out a run's start
    assert (prod["pools"]["op_granularity_run_buffer"]
            == helm["pools"]["opGranularityRunBuffer"] == slots)
    runs = prod["runs"]["max_concurrent_runs"]
    backfill = next(t for t in prod["runs"]["tag_concurrency_limits"]
                    if t["key"] == "dagster/backfill")
    assert slots <= backfill["limit"] < runs
    for g, gpus in _gpu_groups(doc):
        (c,) = [c for c in g["template"]["spec"]["containers"] if c["name"] == "ray-worker"]
        assert float(c["resources"]["limits"]["cpu"]) >= inf["cpus_per_worker"] * gpus / per_slot


# --------------------------------------------------------------------------- config objects


def configmap_data(name: str) -> dict:
    (doc,) = [d for d in load_yaml_all("k8s-config.example.yaml")
              if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
    return doc["data"]


def test_config_example_objects():
    docs = load_yaml_all("k8s-config.example.yaml")
    for d in docs:
        k8s_validate(d)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    prod = load_yaml("dagster.yaml")["run_launcher"]["config"]
    assert {("ConfigMap", n) for n in prod["env_config_maps"]} <= names
    assert {("Secret", n) for n in prod["env_secrets"]} <= names
    assert ("Secret", prod["postgres_password_secret"]) in names
    for d in docs:
        if d["kind"] == "Secret":
            for key, value in {**d.get("stringData", {}), **d.get("data", {})}.items():
                assert re.fullmatch(r"<[^>]*>|", value), f"{key}: only placeholders here"
        else:
            for key in d.get("data", {}):
                assert not SECRET_WORDS.search(key), f"{key} belongs in a Secret"
    # the environment that deploy/dagster.yaml reads, except the password (from the Secret)
    env = configmap_data("tessera-env")
    assert {k for k in ENV if k != "DAGSTER_PG_PASSWORD"} <= set(env)


# --------------------------------------------------------------------------- settings


def _walk(value: Any, path: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def test_settings_example_holds_no_credentials():
    data = json.loads((DEPLOY / "tessera.example.json").read_text())
    assert data["storage_options"] == {}
    for path, key, value in _walk(data):
        assert not (SECRET_WORDS.search(key) and value), f"{path} looks like a credential"
        if isinstance(value, str):
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{path} embeds a password"


def test_settings_example_parses():
    from tessera_assets.config import PipelineSettings

    data = json.loads((DEPLOY / "tessera.example.json").read_text())
    settings = PipelineSettings.model_validate(data)
    assert settings.root.startswith("s3://")
    assert settings.catalog.preset == "earth-search"
    assert settings.inference.family.startswith("v2")
    assert settings.inference.ray_address == "ray://tessera-ray-head-svc:10001"
    assert settings.inference.slot_resource == "GPU"
    assert settings.inference.num_workers == 0
    assert settings.executor == "in_process"


def test_dockerfile_installs_what_the_manifests_run():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    extras = re.search(r"uv pip install --system --no-cache '\.\[([\w,]+)\]'", dockerfile)
    assert extras, "the project install line changed"
    for extra in extras.group(1).split(","):
        assert re.search(rf"^{extra} = \[", pyproject, re.M), f"no extra {extra!r}"
    assert {"inference", "aws", "k8s"} <= set(extras.group(1).split(","))
    for src in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in src.split():
            assert (REPO / path).exists(), f"COPY {path}: not in the repository"
    python = re.search(r"^FROM python:(3\.\d+)", dockerfile, re.M)
    assert python and re.search(rf'requires-python = ">={python.group(1)}', pyproject)
