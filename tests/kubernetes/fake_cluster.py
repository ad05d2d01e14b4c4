"""The object store and controllers behind the fake Kubernetes API server.

`tests.kubernetes.fake_apiserver` turns HTTP requests into calls on a
`FakeCluster`; tests arrange the world through its hooks (`add_deployment`,
`add_hpa`, `crash_pods`, `fail_image`, `exceed_progress_deadline`,
`interfere`). Writes bump a cluster-wide ``resourceVersion``; a write that
carries a stale one is a 409. After every write the deployment controller
runs synchronously, as the real one would eventually: a changed pod template
makes (or reuses) a ReplicaSet with the next ``deployment.kubernetes.io/revision``,
pods are created for it, old ReplicaSets are scaled down once the new one is
available, and the Deployment's status and conditions are recomputed. An
autoscaling/v2 HPA clamps its target's replicas to its min/max, except a target
at 0 replicas (with a min above 0), which it leaves alone with ``ScalingActive``
False, reason ``ScalingDisabled``: Kubernetes' implicit maintenance mode; and
two HPAs on one target both leave it alone (``AmbiguousSelector``, Kubernetes
1.26+).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
import uuid
from collections import Counter
from typing import Any

from tests.kubernetes.fake_patch import PatchError, apply_patch, selector_matches
from tests.kubernetes.fake_status import CREATED, deployment_status, is_ready, pod_status

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
MANAGED_LABELS = {"jarvis.io/managed": "true"}

KINDS = {
    "deployments": ("apps/v1", "Deployment", "apps"),
    "replicasets": ("apps/v1", "ReplicaSet", "apps"),
    "pods": ("v1", "Pod", ""),
    "horizontalpodautoscalers": ("autoscaling/v2", "HorizontalPodAutoscaler", "autoscaling"),
}


class ApiError(Exception):
    """An error the API server answers with a `Status` object."""

    def __init__(self, code: int, reason: str, message: str, *, name: str = "", kind: str = ""):
        super().__init__(message)
        self.code, self.reason, self.message, self.name, self.kind = (
            code,
            reason,
            message,
            name,
            kind,
        )


def _labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels


def _owned_by(obj: Obj, owner: Obj) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def _template_hash(template: Obj) -> str:
    # Like the controller's FNV hash of the template: same template, same hash.
    blob = json.dumps(template, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


class FakeCluster:
    """Deployments, ReplicaSets, Pods and HPAs, with their controllers. Thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._rv = itertools.count(1000)
        self._pod_ids = itertools.count(1)
        self._bad_images: dict[str, str] = {}
        self._deadline_exceeded: set[tuple[str, str]] = set()
        self._interfere: Counter[tuple[str, str, str]] = Counter()
        self._lag = 0
        self._lagging: dict[tuple[str, str], int] = {}
        self._delete_on_get: set[tuple[str, str]] = set()

    # -- hooks for tests -------------------------------------------------------

    def add_deployment(
        self,
        namespace: str,
        name: str,
        *,
        image: str = "registry.local/app:v1",
        replicas: int = 2,
        labels: dict[str, str] | None = None,
    ) -> Obj:
        """Create a Deployment (managed by Jarvis unless ``labels`` say otherwise)."""
        pod_labels = {"app": name}
        deployment: Obj = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {**MANAGED_LABELS, "app": name} if labels is None else labels,
                "annotations": {},
                "generation": 1,
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(pod_labels)},
                "template": {
                    "metadata": {"labels": dict(pod_labels)},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
                "strategy": {"type": "RollingUpdate"},
                "progressDeadlineSeconds": 600,
            },
        }
        with self.lock:
            self._create("deployments", namespace, deployment)
            if self._lag:
                self._lagging[(namespace, name)] = self._lag
                return self._public("deployments", deployment)
            self._reconcile(namespace, name)
            return self.get("deployments", namespace, name)

    def delete_deployment(self, namespace: str, name: str) -> None:
        """``kubectl delete deployment`` once the garbage collector is done: the Deployment,
        its ReplicaSets and their pods are gone (an HPA targeting it stays, as it would)."""
        with self.lock:
            deployment = self._stored("deployments", namespace, name)
            owned = [k for k, o in self._objects.items() if _owned_by(o, deployment)]
            pods = [
                k
                for k, o in self._objects.items()
                if any(_owned_by(o, self._objects[rs]) for rs in owned)
            ]
            for key in [*pods, *owned, ("deployments", namespace, name)]:
                del self._objects[key]

    def delete_before_get(self, namespace: str, name: str) -> None:
        """The Deployment is deleted (`delete_deployment`) just before the next GET of it by
        name: a human's ``kubectl delete`` landing after a list and before a read."""
        with self.lock:
            self._delete_on_get.add((namespace, name))

    def add_hpa(
        self,
        namespace: str,
        name: str,
        *,
        target: str,
        min_replicas: int,
        max_replicas: int,
        cpu_utilization: int | None = None,
    ) -> Obj:
        """Create an autoscaling/v2 HPA on Deployment ``target``."""
        hpa: Obj = {
            "metadata": {"name": name, "namespace": namespace, "labels": {}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
            "status": {"desiredReplicas": 0, "currentReplicas": 0},
            "_cpu": cpu_utilization,
        }
        with self.lock:
            self._create("horizontalpodautoscalers", namespace, hpa)
            self._autoscale(namespace, target)
            return self.get("horizontalpodautoscalers", namespace, name)

    def fail_image(self, image: str, reason: str = "CrashLoopBackOff") -> None:
        """Pods created from ``image`` (in a container or an init container) from now on wait
        with ``reason``."""
        with self.lock:
            self._bad_images[image] = reason

    def crash_pods(
        self,
        namespace: str,
        deployment: str,
        reason: str = "CrashLoopBackOff",
        *,
        count: int | None = None,
    ) -> None:
        """Make the Deployment's current pods (the first ``count``, default all) wait with
        ``reason`` (new pods start healthy)."""
        with self.lock:
            for pod in self.pods_of(namespace, deployment)[:count]:
                pod["status"] = pod_status(pod, reason)
                self._bump(pod)
            self._update_status(namespace, deployment)

    def exceed_progress_deadline(self, namespace: str, deployment: str) -> None:
        """Mark the current rollout as past its deadline, until the template changes."""
        with self.lock:
            self._deadline_exceeded.add((namespace, deployment))
            self._update_status(namespace, deployment)

    def annotate(self, resource: str, namespace: str, name: str, key: str, value: str) -> None:
        """Set an annotation as an operator's ``kubectl annotate --overwrite`` does (any string
        the API server accepts), with no controller reacting to it."""
        with self.lock:
            obj = self._stored(resource, namespace, name)
            obj["metadata"].setdefault("annotations", {})[key] = value
            self._bump(obj)

    def set_field(self, resource: str, namespace: str, name: str, path: str, value: Any) -> None:
        """Write ``value`` at the dotted ``path`` (list indexes as digits) of a stored object,
        unvalidated: a field of a type or form the client refuses, as an API server of
        another version or a buggy admission webhook may return."""
        with self.lock:
            *parents, last = path.split(".")
            node: Any = self._stored(resource, namespace, name)
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            if isinstance(node, list):
                node[int(last)] = value
            else:
                node[last] = value
            self._bump(self._objects[(resource, namespace, name)])

    def lag_controller(self, reads: int = 1) -> None:
        """From now on the deployment controller reacts to a new Deployment or a spec change
        only after ``reads`` GETs of it have seen it unobserved (no status, or
        ``observedGeneration`` behind and the old revision), as a real one is a few
        milliseconds behind every write. Lists do not wait for it."""
        with self.lock:
            self._lag = reads

    def interfere(self, resource: str, namespace: str, name: str, times: int = 1) -> None:
        """Another writer touches the object just before each of our next ``times`` writes."""
        with self.lock:
            self._interfere[(resource, namespace, name)] += times

    # -- reads -----------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        with self.lock:
            if resource == "deployments" and (namespace, name) in self._delete_on_get:
                self._delete_on_get.discard((namespace, name))
                self.delete_deployment(namespace, name)
            if resource == "deployments" and (namespace, name) in self._lagging:
                self._catch_up(namespace, name)
            obj = self._objects.get((resource, namespace, name))
            if obj is None:
                group = KINDS.get(resource, ("", "", ""))[2]
                qualified = f"{resource}.{group}" if group else resource
                raise ApiError(
                    404, "NotFound", f'{qualified} "{name}" not found', name=name, kind=resource
                )
            return self._public(resource, obj)

    def list_objects(self, resource: str, namespace: str, selector: str | None) -> list[Obj]:
        with self.lock:
            try:
                return [
                    self._public(resource, obj, in_list=True)
                    for (res, ns, _), obj in sorted(self._objects.items())
                    if res == resource
                    and ns == namespace
                    and selector_matches(selector, _labels(obj))
                ]
            except PatchError as exc:
                raise ApiError(400, "BadRequest", str(exc)) from exc

    def resource_version(self) -> str:
        with self.lock:
            return str(next(self._rv))

    def deployment_spec(self, namespace: str, name: str) -> Obj:
        """The stored spec (a copy), for assertions."""
        return copy.deepcopy(self.get("deployments", namespace, name)["spec"])

    def pods_of(self, namespace: str, deployment: str) -> list[Obj]:
        d = self._objects[("deployments", namespace, deployment)]
        sets = [rs for rs in self._all("replicasets", namespace) if _owned_by(rs, d)]
        return [p for p in self._all("pods", namespace) if any(_owned_by(p, rs) for rs in sets)]

    # -- writes ----------------------------------------------------------------

    def patch(self, resource: str, namespace: str, name: str, body: Any, content_type: str) -> Obj:
        with self.lock:
            key = (resource, namespace, name)
            current = self._stored(resource, namespace, name)
            if self._interfere[key] > 0:
                self._interfere[key] -= 1
                self._bump(current)
            visible = self._public(resource, current)
            try:
                patched = apply_patch(visible, body, content_type)
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc), name=name, kind=resource) from exc
            self._check_rv(resource, current, patched)
            self._validate(resource, name, patched)
            spec_changed = patched.get("spec") != visible.get("spec")
            current["metadata"] = {**patched["metadata"], "uid": current["metadata"]["uid"]}
            current["spec"] = patched.get("spec")
            if resource == "deployments" and spec_changed:
                current["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            self._bump(current)
            if resource == "deployments" and spec_changed and self._lag:
                self._lagging[(namespace, name)] = self._lag
                return self._public(resource, current)
            self._after_write(resource, namespace, name)
            return self.get(resource, namespace, name)

    def get_scale(self, namespace: str, name: str) -> Obj:
        with self.lock:
            d = self.get("deployments", namespace, name)
            labels = d["spec"]["selector"].get("matchLabels") or {}
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    key: d["metadata"][key]
                    for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                },
                "spec": {"replicas": d["spec"]["replicas"]},
                "status": {
                    "replicas": d.get("status", {}).get("replicas", 0),
                    "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                },
            }

    def patch_scale(self, namespace: str, name: str, body: Any, content_type: str) -> Obj:
        with self.lock:
            key = ("deployments", namespace, name)
            current = self._stored("deployments", namespace, name)
            if self._interfere[key] > 0:
                self._interfere[key] -= 1
                self._bump(current)
            try:
                scale = apply_patch(self.get_scale(namespace, name), body, content_type)
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc), name=name, kind="deployments") from exc
            self._check_rv("deployments", current, scale)
            replicas = scale.get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(
                    422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}", name=name
                )
            if replicas != current["spec"]["replicas"]:
                current["spec"]["replicas"] = replicas
                current["metadata"]["generation"] += 1
            self._bump(current)
            self._after_write("deployments", namespace, name)
            return self.get_scale(namespace, name)

    # -- internals -------------------------------------------------------------

    def _all(self, resource: str, namespace: str) -> list[Obj]:
        return [
            o
            for (r, ns, _), o in sorted(self._objects.items())
            if r == resource and ns == namespace
        ]

    def _stored(self, resource: str, namespace: str, name: str) -> Obj:
        self.get(resource, namespace, name)  # raises the 404
        return self._objects[(resource, namespace, name)]

    def _public(self, resource: str, obj: Obj, *, in_list: bool = False) -> Obj:
        out = {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}
        if not in_list:  # list items carry no kind/apiVersion, as on a real server
            api_version, kind, _ = KINDS[resource]
            out = {"apiVersion": api_version, "kind": kind, **out}
        return out

    def _bump(self, obj: Obj) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def _create(self, resource: str, namespace: str, obj: Obj) -> Obj:
        name = obj["metadata"]["name"]
        if (resource, namespace, name) in self._objects:
            raise ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists', name=name)
        obj["metadata"].setdefault("uid", str(uuid.uuid4()))
        obj["metadata"].setdefault("creationTimestamp", CREATED)
        obj["metadata"]["namespace"] = namespace
        self._bump(obj)
        self._objects[(resource, namespace, name)] = obj
        return obj

    @staticmethod
    def _check_rv(resource: str, current: Obj, patched: Obj) -> None:
        sent = patched.get("metadata", {}).get("resourceVersion")
        if sent is not None and sent != current["metadata"]["resourceVersion"]:
            group = KINDS[resource][2]
            name = current["metadata"]["name"]
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource}.{group} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
                name=name,
                kind=resource,
            )

    @staticmethod
    def _validate(resource: str, name: str, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if resource == "deployments":
            replicas = spec.get("replicas")
            containers = (spec.get("template") or {}).get("spec", {}).get("containers")
            if not isinstance(replicas, int) or replicas < 0 or not containers:
                raise ApiError(422, "Invalid", f'Deployment.apps "{name}" is invalid', name=name)
        if resource == "horizontalpodautoscalers":
            low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
            if not isinstance(high, int) or not isinstance(low, int) or not 1 <= low <= high:
                raise ApiError(
                    422,
                    "Invalid",
                    f'HorizontalPodAutoscaler.autoscaling "{name}" is invalid: '
                    f"minReplicas {low!r} must be between 1 and maxReplicas {high!r}",
                    name=name,
                )

    def _catch_up(self, namespace: str, name: str) -> None:
        """One GET of a lagging Deployment: the controller reacts once enough have seen it."""
        left = self._lagging[(namespace, name)]
        if left > 0:
            self._lagging[(namespace, name)] = left - 1
            return
        del self._lagging[(namespace, name)]
        self._after_write("deployments", namespace, name)

    def _after_write(self, resource: str, namespace: str, name: str) -> None:
        if resource == "deployments":
            self._reconcile(namespace, name)
            self._autoscale(namespace, name)
        elif resource == "horizontalpodautoscalers":
            hpa = self._objects[(resource, namespace, name)]
            self._autoscale(namespace, hpa["spec"]["scaleTargetRef"]["name"])

    def _autoscale(self, namespace: str, deployment: str) -> None:
        d = self._objects.get(("deployments", namespace, deployment))
        if d is None:
            return
        hpas = [
            hpa
            for hpa in self._all("horizontalpodautoscalers", namespace)
            if hpa["spec"]["scaleTargetRef"]["name"] == deployment
        ]
        for hpa in hpas:
            low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
            inactive: tuple[str, str] | None = None
            if len(hpas) > 1:
                # Kubernetes 1.26+: HPAs whose pods overlap all stand down.
                names = " ".join(f"{namespace}/{h['metadata']['name']}" for h in hpas)
                inactive = ("AmbiguousSelector", f"pods are controlled by multiple HPAs: [{names}]")
            elif d["spec"]["replicas"] == 0 and low != 0:
                inactive = (
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero",
                )
            wanted = (
                d["spec"]["replicas"] if inactive else min(max(d["spec"]["replicas"], low), high)
            )
            if wanted != d["spec"]["replicas"]:
                d["spec"]["replicas"] = wanted
                d["metadata"]["generation"] += 1
                self._bump(d)
                self._reconcile(namespace, deployment)
            status: Obj = {"currentReplicas": d["status"]["replicas"], "desiredReplicas": wanted}
            if inactive:
                reason, message = inactive
                status["conditions"] = [
                    {
                        "type": "ScalingActive",
                        "status": "False",
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": CREATED,
                    }
                ]
            if hpa.get("_cpu") is not None:
                status["currentMetrics"] = [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "current": {"averageUtilization": hpa["_cpu"]}},
                    }
                ]
            if hpa.get("status") != status:
                hpa["status"] = status
                self._bump(hpa)

    def _reconcile(self, namespace: str, name: str) -> None:
        d = self._objects[("deployments", namespace, name)]
        template = d["spec"]["template"]
        template_hash = _template_hash(template)
        owned = [rs for rs in self._all("replicasets", namespace) if _owned_by(rs, d)]
        top = max((int(rs["metadata"]["annotations"][REVISION]) for rs in owned), default=0)
        new = next((rs for rs in owned if _labels(rs).get(HASH_LABEL) == template_hash), None)
        if new is None:
            new = self._new_replicaset(d, template_hash, top + 1)
            self._deadline_exceeded.discard((namespace, name))
        elif int(new["metadata"]["annotations"][REVISION]) != top:
            # Rolling back to an old template re-uses its ReplicaSet under the next revision.
            new["metadata"]["annotations"][REVISION] = str(top + 1)
            self._deadline_exceeded.discard((namespace, name))
            self._bump(new)
        d["metadata"].setdefault("annotations", {})[REVISION] = new["metadata"]["annotations"][
            REVISION
        ]
        self._scale_rs(new, d["spec"]["replicas"])
        new_ready = sum(1 for p in self._pods(new) if is_ready(p))
        for rs in owned:
            if rs is not new:
                keep = 0 if new_ready >= d["spec"]["replicas"] else rs["spec"]["replicas"]
                self._scale_rs(rs, min(keep, d["spec"]["replicas"]))
        self._update_status(namespace, name)

    def _new_replicaset(self, d: Obj, template_hash: str, revision: int) -> Obj:
        template = copy.deepcopy(d["spec"]["template"])
        template["metadata"].setdefault("labels", {})[HASH_LABEL] = template_hash
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
        rs: Obj = {
            "metadata": {
                "name": f"{d['metadata']['name']}-{template_hash}",
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [self._owner_ref(d, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        return self._create("replicasets", d["metadata"]["namespace"], rs)

    @staticmethod
    def _owner_ref(owner: Obj, api_version: str, kind: str) -> Obj:
        return {
            "apiVersion": api_version,
            "kind": kind,
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _pods(self, rs: Obj) -> list[Obj]:
        return [p for p in self._all("pods", rs["metadata"]["namespace"]) if _owned_by(p, rs)]

    def _scale_rs(self, rs: Obj, replicas: int) -> None:
        namespace = rs["metadata"]["namespace"]
        pods = self._pods(rs)
        for pod in pods[replicas:]:
            del self._objects[("pods", namespace, pod["metadata"]["name"])]
        for _ in range(replicas - len(pods)):
            new_pod: Obj = {
                "metadata": {
                    "name": f"{rs['metadata']['name']}-{next(self._pod_ids):05x}",
                    "labels": dict(rs["spec"]["template"]["metadata"]["labels"]),
                    "ownerReferences": [self._owner_ref(rs, "apps/v1", "ReplicaSet")],
                },
                "spec": copy.deepcopy(rs["spec"]["template"]["spec"]),
            }
            images = [c["image"] for c in new_pod["spec"]["containers"]]
            reason = next((self._bad_images[i] for i in images if i in self._bad_images), None)
            inits = [c["image"] for c in new_pod["spec"].get("initContainers", [])]
            init_reason = next((self._bad_images[i] for i in inits if i in self._bad_images), None)
            new_pod["status"] = pod_status(new_pod, reason, init_reason)
            self._create("pods", namespace, new_pod)
        status = {
            "replicas": replicas,
            "readyReplicas": sum(1 for p in self._pods(rs) if is_ready(p)),
        }
        if rs["spec"]["replicas"] != replicas or rs.get("status") != status:
            rs["spec"]["replicas"] = replicas
            rs["status"] = status
            self._bump(rs)

    def _update_status(self, namespace: str, name: str) -> None:
        d = self._objects[("deployments", namespace, name)]
        revision = d["metadata"]["annotations"][REVISION]
        owned = [rs for rs in self._all("replicasets", namespace) if _owned_by(rs, d)]
        new = next(rs for rs in owned if rs["metadata"]["annotations"][REVISION] == revision)
        pods = [p for rs in owned for p in self._pods(rs)]
        updated = self._pods(new)
        status = deployment_status(
            desired=d["spec"]["replicas"],
            generation=d["metadata"]["generation"],
            pods=pods,
            updated=updated,
            deadline_exceeded=(namespace, name) in self._deadline_exceeded,
            previous=d.get("status"),
        )
        if d.get("status") != status:
            d["status"] = status
            self._bump(d)
