"""Safe rollout of hook changes: the candidate's shadow runs on live logins, one judged run of any hook
(shared by the console's dry run and ``hookjail replay``), and their start in the proxy's lifespan."""

from __future__ import annotations

from ._evaluate import Evaluation as Evaluation
from ._evaluate import evaluate as evaluate
from ._lifespan import CandidateUnusable as CandidateUnusable
from ._lifespan import purge_expired_inputs as purge_expired_inputs
from ._lifespan import start_rollout as start_rollout
from ._shadow import Shadow as Shadow
from ._shadow import compare as compare

__all__ = (
    "CandidateUnusable",
    "Evaluation",
    "Shadow",
    "compare",
    "evaluate",
    "purge_expired_inputs",
    "start_rollout",
)
