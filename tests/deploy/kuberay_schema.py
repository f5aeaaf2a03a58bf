"""The KubeRay v1 custom resources aec ships (RayCluster, RayJob, RayCronJob), as JSON Schema.

Transcribed from the ``openAPIV3Schema`` of KubeRay's CRDs (``ray.io_rayclusters.yaml``,
``ray.io_rayjobs.yaml``, ``ray.io_raycronjobs.yaml``, ray.io/v1) for the fields KubeRay itself
defines: names, types, enums, required keys. Unknown keys are rejected, as the API server's
structural-schema pruning would silently drop them. Pod templates inside these resources are
``core/v1 PodTemplateSpec``s; the tests validate them with kubernetes-validate against the
Kubernetes schema itself, so they are left open here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMAS", "pod_templates"]

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_POD_TEMPLATE = {"type": "object"}  # core/v1 PodTemplateSpec: checked by kubernetes-validate
_QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
_RESOURCES = {"type": "object", "additionalProperties": False, "properties": {
    "limits": {"type": "object", "additionalProperties": _QUANTITY},
    "requests": {"type": "object", "additionalProperties": _QUANTITY},
    "claims": {"type": "array"}}}


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}


# What the head group and every worker group both have (a pod template and its Ray start flags).
_GROUP = {"rayStartParams": _STR_MAP, "template": _POD_TEMPLATE, "resources": _STR_MAP, "labels": _STR_MAP}

_HEAD_GROUP = _closed({
    **_GROUP,
    "serviceType": {"type": "string"},
    "headService": {"type": "object"},
    "enableIngress": {"type": "boolean"},
}, ("template",))

_WORKER_GROUP = _closed({
    **_GROUP,
    "groupName": {"type": "string"},
    "replicas": {"type": "integer", "minimum": 0},
    "minReplicas": {"type": "integer", "minimum": 0},
    "maxReplicas": {"type": "integer", "minimum": 0},
    "idleTimeoutSeconds": {"type": "integer"},
    "numOfHosts": {"type": "integer"},
    "scaleStrategy": {"type": "object"},
    "suspend": {"type": "boolean"},
}, ("groupName", "template"))

_RAY_CLUSTER_SPEC = _closed({
    "rayVersion": {"type": "string"},
    "enableInTreeAutoscaling": {"type": "boolean"},
    "authOptions": _closed({"mode": {"enum": ["disabled", "token"]}}),
    "autoscalerOptions": _closed({
        "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
        "idleTimeoutSeconds": {"type": "integer"},
        "image": {"type": "string"},
        "imagePullPolicy": {"type": "string"},
        "resources": _RESOURCES,
        "env": {"type": "array"},
        "envFrom": {"type": "array"},
        "securityContext": {"type": "object"},
        "volumeMounts": {"type": "array"},
        "version": {"enum": ["v1", "v2"]},
    }),
    "headGroupSpec": _HEAD_GROUP,
    "workerGroupSpecs": {"type": "array", "items": _WORKER_GROUP},
    "headServiceAnnotations": _STR_MAP,
    "suspend": {"type": "boolean"},
    "managedBy": {"type": "string"},
    "gcsFaultToleranceOptions": {"type": "object"},
}, ("headGroupSpec",))

_RAY_JOB_SPEC = _closed({
    "entrypoint": {"type": "string"},
    "runtimeEnvYAML": {"type": "string"},
    "jobId": {"type": "string"},
    "metadata": _STR_MAP,
    "clusterSelector": _STR_MAP,
    "rayClusterSpec": _RAY_CLUSTER_SPEC,
    "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
    "submitterPodTemplate": _POD_TEMPLATE,
    "submitterConfig": {"type": "object"},
    "shutdownAfterJobFinishes": {"type": "boolean"},
    "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
    "activeDeadlineSeconds": {"type": "integer", "minimum": 0},
    "backoffLimit": {"type": "integer", "minimum": 0},
    "entrypointNumCpus": {"type": "number"},
    "entrypointNumGpus": {"type": "number"},
    "entrypointResources": {"type": "string"},
    "suspend": {"type": "boolean"},
    "managedBy": {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]},
    "deletionStrategy": {"type": "object"},
})


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed({
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": kind},
        "metadata": {"type": "object", "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}]},
        "spec": spec,
    }, ("apiVersion", "kind", "metadata", "spec"))


SCHEMAS: dict[str, dict[str, Any]] = {
    "RayCluster": _resource("RayCluster", _RAY_CLUSTER_SPEC),
    "RayJob": _resource("RayJob", {**_RAY_JOB_SPEC, "required": ["entrypoint"]}),
    "RayCronJob": _resource("RayCronJob", _closed({"schedule": {"type": "string"}, "jobTemplate": _RAY_JOB_SPEC},
                                                  ("jobTemplate", "schedule"))),
}


def pod_templates(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, PodTemplateSpec) of every pod template inside a KubeRay resource."""
    spec = doc.get("spec", {})
    found = []

    def cluster(where: str, c: dict[str, Any]) -> None:
        if "template" in c.get("headGroupSpec", {}):
            found.append((f"{where}.headGroupSpec.template", c["headGroupSpec"]["template"]))
        for i, g in enumerate(c.get("workerGroupSpecs", [])):
            found.append((f"{where}.workerGroupSpecs[{i}].template", g["template"]))

    def job(where: str, j: dict[str, Any]) -> None:
        if "rayClusterSpec" in j:
            cluster(f"{where}.rayClusterSpec", j["rayClusterSpec"])
        if "submitterPodTemplate" in j:
            found.append((f"{where}.submitterPodTemplate", j["submitterPodTemplate"]))

    {"RayCluster": lambda: cluster("spec", spec), "RayJob": lambda: job("spec", spec),
     "RayCronJob": lambda: job("spec.jobTemplate", spec.get("jobTemplate", {}))}[doc["kind"]]()
    return found
