"""Architecture search under a latency target (paper section 4).

- `netadapt`: NetAdapt-style width search (paper section 4.2), driven by
  `NetAdaptRun`; its search space (`space`), weight inheritance (`inherit`),
  latency sizing (`sizing`) and results (`results`).
"""

from mnv3_layers.search.inherit import inherit_weights
from mnv3_layers.search.netadapt import SearchInterrupted, build_classifier, netadapt_search
from mnv3_layers.search.results import SearchResult
from mnv3_layers.search.space import (
    Proposal,
    apply_proposal,
    architecture_from_dict,
    architecture_to_dict,
    bottleneck_groups,
    candidate_widths,
    enumerate_proposals,
    flatten_architecture,
    load_architecture,
    minimal_architecture,
)

__all__ = [
    "Proposal",
    "SearchInterrupted",
    "SearchResult",
    "apply_proposal",
    "architecture_from_dict",
    "architecture_to_dict",
    "bottleneck_groups",
    "build_classifier",
    "candidate_widths",
    "enumerate_proposals",
    "flatten_architecture",
    "inherit_weights",
    "load_architecture",
    "minimal_architecture",
    "netadapt_search",
]
