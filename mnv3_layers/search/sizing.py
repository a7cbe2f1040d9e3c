"""Latency side of the search: calibrated table predictions and proposal sizing."""

from mnv3_layers.latency.components import model_configs
from mnv3_layers.latency.measure import batch_one, measure_tflite
from mnv3_layers.latency.tflite import TFLiteTimer, convert_float_tflite, time_runners
from mnv3_layers.search.space import proposal_width, candidate_widths


class CalibratedLatency:
    """Calibrated table predictions of `build_classifier` models."""

    def __init__(self, table, input_shape, num_classes, scale=1.0):
        self.table = table
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.scale = scale

    def raw(self, spec):
        configs = model_configs(spec, 1.0, False, self.input_shape, "dense", self.num_classes)
        return self.table.predict_configs(configs).total_ms

    def __call__(self, spec):
        return self.raw(spec) * self.scale

    def measure(self, model):
        stats = measure_tflite(
            model, warmup=self.table.warmup, runs=self.table.runs,
            num_threads=self.table.num_threads,
        )
        return float(stats[self._stat_key])

    @property
    def _stat_key(self):
        prefix = "cpu_" if self.table.clock == "cpu" else ""
        return f"{prefix}{self.table.statistic}_ms"

    def measure_pair(self, reference, model):
        """Both models' latency, timed interleaved (one run each per round)."""
        timers = [TFLiteTimer(convert_float_tflite(batch_one(m)), self.table.num_threads)
                  for m in (reference, model)]
        stats = time_runners(timers, self.table.warmup, self.table.runs,
                             rounds=self.table.runs)
        return float(stats[0][self._stat_key]), float(stats[1][self._stat_key])


def size_proposal(spec, proposal, latency, current_ms, required_ms, structure):
    """Largest candidate width cutting >= `required_ms`: `(width, spec, ms, tried)` or None."""
    candidates = candidate_widths(spec, proposal, structure)
    if not candidates:
        return None, 0
    tried = {}

    def predicted(i):
        if i not in tried:
            tried[i] = latency(candidates[i][1])
        return tried[i]

    last = len(candidates) - 1
    max_cut = current_ms - predicted(last)
    if max_cut < required_ms:
        return None, len(tried)
    # Latency is roughly linear in one width: start from the interpolated guess.
    current_width = proposal_width(spec, proposal)
    span = current_width - candidates[last][0]
    guess_width = current_width - span * required_ms / max_cut
    i = min(range(len(candidates)), key=lambda j: abs(candidates[j][0] - guess_width))
    if current_ms - predicted(i) >= required_ms:
        while i > 0 and current_ms - predicted(i - 1) >= required_ms:
            i -= 1
    else:
        while current_ms - predicted(i) < required_ms:
            i += 1  # Ends at `last` at the latest.
    width, new_spec = candidates[i]
    return (width, new_spec, predicted(i)), len(tried)
