"""What a search writes and returns: the JSON-lines log and `SearchResult`."""

import dataclasses
import json
import os

import numpy as np

from mnv3_layers.files import atomic_write
from mnv3_layers.search.space import architecture_to_dict


def json_default(value):
    """`json.dump` fallback: numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Not JSON-serializable: {type(value).__name__}")


class SearchLog:
    """Append-only JSON-lines log; opening it cuts the file back to `committed` lines."""

    def __init__(self, path, committed):
        self.path = path
        lines = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()[:committed]
        content = "".join(line + "\n" for line in lines)

        def write(temp):
            with open(temp, "w", encoding="utf-8") as f:
                f.write(content)

        atomic_write(path, write)
        self.count = len(lines)
        self.records = [json.loads(line) for line in lines]

    def write(self, record):
        line = json.dumps(record, default=json_default, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        self.count += 1
        self.records.append(record)


@dataclasses.dataclass
class SearchResult:
    """What `netadapt_search` returns (also written to `result.json`).

    Attributes:
        spec: the searched `ArchitectureSpec`.
        model: the fine-tuned classifier (`keras.Model`).
        output_dir: the output folder; `architecture_path`, `model_path`,
            `log_path` are files in it.
        target_ms: the latency target (table clock; measured ms if calibrated).
        floor_ms: predicted latency of the smallest reachable table.
        start_latency_ms, final_latency_ms: measured end to end (`None` when
            `calibrate=False`; with `target_ratio`, `final_latency_ms` is
            `start_latency_ms x` the ratio of the two timed interleaved).
        start_predicted_ms, final_predicted_ms: calibrated table predictions.
        start_accuracy, search_accuracy, final_accuracy: validation accuracy
            of the starting model, before and after the final fine-tune.
        iterations: number of search iterations done.
        history: one dict per iteration (chosen proposal, latency, accuracy).
        reached: whether the target was met.
    """

    spec: object
    model: object
    output_dir: str
    architecture_path: str
    model_path: str
    log_path: str
    target_ms: float
    floor_ms: float
    start_latency_ms: object
    final_latency_ms: object
    start_predicted_ms: float
    final_predicted_ms: float
    start_accuracy: float
    search_accuracy: float
    final_accuracy: float
    iterations: int
    history: list
    reached: bool

    def summary(self):
        """The JSON-serializable fields; `architecture` (a dict) replaces `spec` and `model`."""
        fields = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.name not in ("spec", "model")
        }
        fields["architecture"] = architecture_to_dict(self.spec)
        return fields

    def __str__(self):
        def ms(v):
            return "n/a" if v is None else f"{v:.3f} ms"

        return (
            f"NetAdapt search ({self.iterations} iterations, target {self.target_ms:.3f} ms, "
            f"{'reached' if self.reached else 'NOT reached'}): latency "
            f"{ms(self.start_latency_ms)} -> {ms(self.final_latency_ms)} measured "
            f"({self.start_predicted_ms:.3f} -> {self.final_predicted_ms:.3f} ms predicted), "
            f"accuracy {self.start_accuracy:.4f} -> {self.final_accuracy:.4f} "
            f"(after the final fine-tune; {self.search_accuracy:.4f} before). "
            f"Architecture: {self.architecture_path}"
        )
