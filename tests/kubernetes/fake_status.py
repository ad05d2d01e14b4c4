"""Status subresources the fake cluster's controllers compute: pods and Deployments.

Used by `tests.kubernetes.fake_cluster`. A pod's status follows from the
waiting reason a test gave its image (none: running and ready); a Deployment's
status, conditions included, follows from its pods the way the deployment
controller reports them.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

CREATED = "2024-05-01T12:00:00Z"


def is_ready(pod: Obj) -> bool:
    return all(c["ready"] for c in pod["status"].get("containerStatuses", []))


def pod_status(pod: Obj, waiting: str | None, init_waiting: str | None = None) -> Obj:
    """The kubelet's status: init containers first, which hold the others in PodInitializing."""
    inits = [_init_status(c, init_waiting) for c in pod["spec"].get("initContainers", [])]
    if init_waiting is not None:
        waiting = "PodInitializing"
    statuses = []
    for container in pod["spec"]["containers"]:
        state: Obj = {"running": {"startedAt": CREATED}}
        if waiting is not None:
            state = {"waiting": {"reason": waiting, "message": f"container {waiting}"}}
        statuses.append(
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": waiting is None,
                "started": waiting is None,
                "restartCount": 7 if waiting == "CrashLoopBackOff" else 0,
                "state": state,
            }
        )
    ready = "True" if waiting is None else "False"
    status: Obj = {
        "phase": "Pending" if waiting and ("Image" in waiting or init_waiting) else "Running",
        "conditions": [{"type": "Ready", "status": ready}],
        "containerStatuses": statuses,
    }
    if inits:
        status["initContainerStatuses"] = inits
    return status


def _init_status(container: Obj, waiting: str | None) -> Obj:
    state: Obj = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    if waiting is not None:
        state = {"waiting": {"reason": waiting, "message": f"init container {waiting}"}}
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": waiting is None,
        "started": False,
        "restartCount": 7 if waiting == "CrashLoopBackOff" else 0,
        "state": state,
    }


def deployment_status(
    *,
    desired: int,
    generation: int,
    pods: list[Obj],
    updated: list[Obj],
    deadline_exceeded: bool,
    previous: Obj | None = None,
) -> Obj:
    """The status the deployment controller would write for these pods, after ``previous``.

    As the controller's ``syncRolloutStatus``: a rollout that completed
    (``NewReplicaSetAvailable``) and has no old pods left is not estimated again,
    so its Progressing condition stays even when its pods stop being ready.
    """
    conditions = (previous or {}).get("conditions") or []
    before = next((c.get("reason") for c in conditions if c.get("type") == "Progressing"), None)
    available = sum(1 for pod in pods if is_ready(pod))
    new_available = sum(1 for pod in updated if is_ready(pod))
    max_unavailable = desired // 4  # the default 25% maxUnavailable, rounded down
    available_cond = (
        ("True", "MinimumReplicasAvailable")
        if available >= desired - max_unavailable
        else ("False", "MinimumReplicasUnavailable")
    )
    if deadline_exceeded:
        progressing = ("False", "ProgressDeadlineExceeded")
    elif len(pods) == len(updated) and (
        new_available >= desired or before == "NewReplicaSetAvailable"
    ):
        progressing = ("True", "NewReplicaSetAvailable")
    else:
        progressing = ("True", "ReplicaSetUpdated")
    return {
        "observedGeneration": generation,
        "replicas": len(pods),
        "updatedReplicas": len(updated),
        "readyReplicas": available,
        "availableReplicas": available,
        "unavailableReplicas": max(0, desired - available),
        "conditions": [
            {"type": "Available", "status": available_cond[0], "reason": available_cond[1]},
            {"type": "Progressing", "status": progressing[0], "reason": progressing[1]},
        ],
    }
