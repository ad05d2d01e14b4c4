"""The shared vocabulary of Jarvis: what is observed, proposed, decided and recorded.

Every layer speaks these types: actuators produce `ResourceState`s (typed facts
in `facets`), the loop bundles them into a `Snapshot`, policies turn a snapshot
into `Action`s, the guard answers each with a `Verdict`, actuators answer
applied actions with an `Outcome`, and everything becomes an `Event`. The
package imports nothing else of Jarvis and does no I/O; every type is frozen.
Import from here: the submodules (`resources`, `actions`, `records`, `facets`)
only keep each part a readable size.
"""

from jarvis.model.actions import (
    WEIGHT_TOLERANCE,
    Action,
    ActionKind,
    ActionParams,
    BlockReason,
    Deploy,
    ErrorKind,
    Outcome,
    OutcomeStatus,
    Restart,
    Rollback,
    Scale,
    SetWeights,
    Start,
    Stop,
    Verdict,
)
from jarvis.model.customers import (
    CUSTOMER_KIND,
    CUSTOMER_SCHEME,
    CreateBillingCustomer,
    CreateDiscount,
    Customer,
    GrantAccess,
    SendEmail,
)
from jarvis.model.facets import (
    CloudSpend,
    LlmUsage,
    Metric,
    ModelPerformance,
    ModelSpend,
    Rollout,
    RolloutState,
    RouteUsage,
    RouteWeights,
    Versions,
    month_bounds,
)
from jarvis.model.records import (
    Clock,
    Event,
    EventHistory,
    EventKind,
    History,
    KillSwitchState,
    RetryState,
)
from jarvis.model.resources import (
    JSON,
    Health,
    Replicas,
    ResourceRef,
    ResourceState,
    Snapshot,
)

__all__ = [
    "CUSTOMER_KIND",
    "CUSTOMER_SCHEME",
    "JSON",
    "WEIGHT_TOLERANCE",
    "Action",
    "ActionKind",
    "ActionParams",
    "BlockReason",
    "Clock",
    "CloudSpend",
    "CreateBillingCustomer",
    "CreateDiscount",
    "Customer",
    "Deploy",
    "ErrorKind",
    "Event",
    "EventHistory",
    "EventKind",
    "GrantAccess",
    "Health",
    "History",
    "KillSwitchState",
    "LlmUsage",
    "Metric",
    "ModelPerformance",
    "ModelSpend",
    "Outcome",
    "OutcomeStatus",
    "Replicas",
    "ResourceRef",
    "ResourceState",
    "Restart",
    "RetryState",
    "Rollback",
    "Rollout",
    "RolloutState",
    "RouteUsage",
    "RouteWeights",
    "Scale",
    "SendEmail",
    "SetWeights",
    "Snapshot",
    "Start",
    "Stop",
    "Verdict",
    "Versions",
    "month_bounds",
]
