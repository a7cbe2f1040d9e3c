"""Architecture search under a latency target (paper section 4).

- `netadapt`: NetAdapt-style width search (paper section 4.2).
"""

from mnv3_layers.search.netadapt import (
    Proposal,
    SearchInterrupted,
    SearchResult,
    apply_proposal,
    architecture_from_dict,
    architecture_to_dict,
    bottleneck_groups,
    build_classifier,
    candidate_widths,
    enumerate_proposals,
    flatten_architecture,
    inherit_weights,
    load_architecture,
    minimal_architecture,
    netadapt_search,
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
