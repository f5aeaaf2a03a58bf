"""deploy/ validates: Kubernetes kinds against Kubernetes' own schemas (kubernetes-validate),
KubeRay kinds against the KubeRay CRD schema (and their pod templates against Kubernetes'),
the Prometheus configs with promtool, and the Grafana dashboard against the metric list."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cluster.metrics import METRICS, exposed_name, grafana_dashboard
from tests.deploy.kuberay_schema import SCHEMAS, pod_templates

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.33"
MANIFESTS = sorted((DEPLOY / "kuberay").glob("*.yaml"))


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def validate(doc: dict) -> None:
    """Raise on the first schema violation of one manifest."""
    if doc["apiVersion"].startswith("ray.io/"):
        jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        for where, template in pod_templates(doc):
            try:
                kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                              "template": template}, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{doc['kind']} {where}: {exc.message}") from None
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_manifest_validates() -> None:
    kinds = set()
    for path in MANIFESTS:
        for doc in _docs(path):
            validate(doc)
            kinds.add(doc["kind"])
    assert {"RayCluster", "RayJob", "RayCronJob", "CronJob", "ConfigMap", "Secret", "Service"} <= kinds


def test_cluster_has_cpu_and_gpu_groups_gpu_from_zero() -> None:
    (cluster,) = _docs(DEPLOY / "kuberay" / "raycluster.yaml")
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert cluster["spec"]["enableInTreeAutoscaling"] and cluster["spec"]["authOptions"]["mode"] == "token"
    assert groups["gpu"]["minReplicas"] == 0
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == 1


def test_workers_scale_within_limits_and_drain_before_they_go() -> None:
    """What the multi-node tests show a cluster needs: workers may come and go (autoscaling
    limits; a lost node's work is retried), and a worker asked to go drains first."""
    (cluster,) = _docs(DEPLOY / "kuberay" / "raycluster.yaml")
    assert cluster["spec"]["autoscalerOptions"]["version"] == "v2"
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # drivers stay on the head; workers hold the actors
    for group in cluster["spec"]["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
        pod = group["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 30 + 15  # Ray's drain, then `ray stop` itself
        assert pod["restartPolicy"] == "Never"
        (container,) = pod["containers"]
        assert "ray stop" in " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "gcsFaultToleranceOptions" not in cluster["spec"]  # deploy/README.md: why not for batch jobs


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d["spec"].__setitem__("workerGroupSpec", []), "Additional properties"),  # typo'd KubeRay field
    (lambda d: d["spec"]["authOptions"].__setitem__("mode", "password"), "is not one of"),
    (lambda d: d["spec"]["workerGroupSpecs"][0].pop("groupName"), "groupName"),
    (lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].__setitem__("imagee", "x"), "imagee"),
    (lambda d: d["spec"]["workerGroupSpecs"][1]["template"]["spec"].__setitem__("containers", "ray"),
     "is not of type 'array'"),
])
def test_broken_raycluster_is_rejected(mutate, expect) -> None:
    (cluster,) = _docs(DEPLOY / "kuberay" / "raycluster.yaml")
    broken = copy.deepcopy(cluster)
    mutate(broken)
    with pytest.raises((jsonschema.ValidationError, AssertionError)) as err:
        validate(broken)
    assert expect in str(err.value)


def test_broken_cronjob_is_rejected() -> None:
    (cron,) = _docs(DEPLOY / "kuberay" / "cronjob-retrain.yaml")
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = ["Never"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(cron)
    del cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"]
    cron["spec"]["concurrencyPolicyy"] = "Forbid"  # a typo strict validation must catch
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(cron)


def test_raycronjob_submits_the_train_spec_nightly() -> None:
    (cron,) = _docs(DEPLOY / "kuberay" / "raycronjob-retrain.yaml")
    assert cron["spec"]["schedule"] == "0 2 * * *"
    assert cron["spec"]["jobTemplate"]["entrypoint"].startswith("python -m jobs.run train ")
    specs = _docs(DEPLOY / "kuberay" / "specs-configmap.yaml")[0]["data"]
    from jobs.spec import parse_spec

    for name, text in specs.items():  # the specs the cluster runs are valid aec specs
        parse_spec(yaml.safe_load(text), source=name)


def test_prometheus_configs_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: the test set-up installs Debian's prometheus package (make setup)"
    for config in sorted((DEPLOY / "prometheus").glob("*.yml")):
        out = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_grafana_dashboard_is_generated_from_the_metric_list() -> None:
    shipped = json.loads((DEPLOY / "grafana" / "aec-dashboard.json").read_text())
    assert shipped == grafana_dashboard(), "regenerate: python -m cluster.metrics > deploy/grafana/aec-dashboard.json"
    exprs = " ".join(t["expr"] for p in shipped["panels"] for t in p["targets"])
    for m in METRICS:
        assert exposed_name(m) in exprs, m.name
