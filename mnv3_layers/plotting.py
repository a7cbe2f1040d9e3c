"""Latency-vs-accuracy plots in the style of the paper's Figure 1 (matplotlib, extra `plot`)."""

import math
import numbers
import os

from mnv3_layers import files

PLOT_INSTALL_HINT = 'pip install "mnv3-layers[plot]"'
KINDS = ("line", "points")


def _import_pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(
            f"Plotting needs matplotlib. Install it with: {PLOT_INSTALL_HINT}"
        ) from e
    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot

    return pyplot


def _check_series(series):
    if isinstance(series, dict) or not isinstance(series, (list, tuple)) or not series:
        raise ValueError(
            "`series` must be a non-empty list of dicts with 'label' and 'points'. "
            f"Received: series={series!r}"
        )
    checked = []
    for item in series:
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise ValueError(
                "Each entry of `series` must be a dict with a string 'label'. "
                f"Received: {item!r}"
            )
        kind = item.get("kind", "line")
        if kind not in KINDS:
            raise ValueError(
                f"`kind` of series {item['label']!r} must be one of {KINDS}. "
                f"Received: kind={kind!r}"
            )
        points = item.get("points")
        if not isinstance(points, (list, tuple)) or not points:
            raise ValueError(
                f"Series {item['label']!r} needs a non-empty list of points "
                f"(latency_ms, accuracy[, annotation]). Received: points={points!r}"
            )
        rows = []
        for point in points:
            if not isinstance(point, (list, tuple)) or len(point) not in (2, 3):
                raise ValueError(
                    f"A point of series {item['label']!r} must be (latency_ms, accuracy) "
                    f"or (latency_ms, accuracy, annotation). Received: {point!r}"
                )
            latency, accuracy = point[0], point[1]
            for name, value in (("latency_ms", latency), ("accuracy", accuracy)):
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                    math.isfinite(value)
                ):
                    raise ValueError(
                        f"`{name}` of a point of series {item['label']!r} must be a finite "
                        f"number. Received: {name}={value!r}"
                    )
            if latency <= 0:
                raise ValueError(
                    f"`latency_ms` of a point of series {item['label']!r} must be > 0. "
                    f"Received: latency_ms={latency!r}"
                )
            rows.append((float(latency), float(accuracy),
                         None if len(point) == 2 else str(point[2])))
        if kind == "line":
            rows.sort()
        checked.append({"label": item["label"], "kind": kind, "points": rows})
    return checked


def plot_latency_accuracy(
    series,
    path,
    title="Accuracy vs latency",
    xlabel="Latency (ms)",
    ylabel="Accuracy",
    note=None,
    dpi=120,
):
    """Writes a latency-vs-accuracy PNG (paper Figure 1 style).

    Args:
        series: list of dicts `{"label": str, "points": [(latency_ms,
            accuracy[, annotation]), ...], "kind": "line" | "points"}`;
            `"line"` (default) joins the points, `"points"` draws stars.
        path: output `.png` file, written atomically.
        title: figure title. Defaults to `"Accuracy vs latency"`.
        xlabel: x-axis label. Defaults to `"Latency (ms)"`.
        ylabel: y-axis label. Defaults to `"Accuracy"`.
        note: small text under the plot. Defaults to `None`.
        dpi: resolution. Defaults to `120`.

    Returns:
        `path`.

    Raises:
        ValueError: malformed `series` or a `path` not ending in `.png`.
        ImportError: matplotlib is missing (extra `plot`).

    Example:

    >>> import os, tempfile
    >>> from mnv3_layers.plotting import plot_latency_accuracy
    >>> path = os.path.join(tempfile.mkdtemp(), "figure1.png")
    >>> plot_latency_accuracy(
    ...     [{"label": "MobileNetV3-Small", "points": [(1.0, 0.61, "0.5"), (1.6, 0.67, "1.0")]},
    ...      {"label": "searched", "points": [(1.3, 0.66)], "kind": "points"}],
    ...     path) == path
    True
    >>> open(path, "rb").read(8) == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    series = _check_series(series)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).lower().endswith(".png"):
        raise ValueError(f"`path` must be a file path ending in '.png'. Received: path={path!r}")
    path = os.fspath(path)
    pyplot = _import_pyplot()
    figure, axes = pyplot.subplots(figsize=(7.0, 5.0))
    try:
        for item in series:
            xs = [p[0] for p in item["points"]]
            ys = [p[1] for p in item["points"]]
            if item["kind"] == "line":
                axes.plot(xs, ys, marker="o", linewidth=1.8, markersize=5, label=item["label"])
            else:
                axes.scatter(xs, ys, marker="*", s=160, zorder=3, label=item["label"])
            for x, y, text in item["points"]:
                if text:
                    axes.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4),
                                  fontsize=8)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="lower right", fontsize=9)
        if note:
            figure.text(0.01, 0.01, note, fontsize=7, ha="left", va="bottom", wrap=True)
            figure.tight_layout(rect=(0, 0.06, 1, 1))
        else:
            figure.tight_layout()
        files.atomic_write(
            path, lambda temp: figure.savefig(temp, dpi=dpi, format="png"), makedirs=True)
    finally:
        pyplot.close(figure)
    return path
