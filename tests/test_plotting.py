"""`mnv3_layers.plotting.plot_latency_accuracy`: the PNG, its argument checks, the extra."""

import pytest


def test_plot_latency_accuracy_writes_png(tmp_path):
    from matplotlib import image

    from mnv3_layers.plotting import plot_latency_accuracy

    series = [
        {"label": "MobileNetV3-Large", "points": [(3.1, 0.91, "1.0"), (1.9, 0.88, "0.5")]},
        {"label": "MobileNetV3-Small", "points": [(1.2, 0.83, "0.75"), (0.8, 0.8)]},
        {"label": "searched", "points": [(1.0, 0.84, "netadapt")], "kind": "points"},
    ]
    path = plot_latency_accuracy(series, tmp_path / "figure.png", note="fake data")
    assert path == str(tmp_path / "figure.png")
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] >= 300 and pixels.shape[1] >= 400
    assert pixels.std() > 0  # Not a blank image.
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # No temporary file left.


@pytest.mark.parametrize(
    "series, path, match",
    [
        ([], "f.png", "non-empty list"),
        ([{"label": "a", "points": []}], "f.png", "non-empty list of points"),
        ([{"label": "a", "points": [(-1.0, 0.5)]}], "f.png", "latency_ms.*> 0"),
        ([{"label": "a", "points": [(1.0, float("nan"))]}], "f.png", "accuracy.*finite"),
        ([{"label": "a", "points": [(1.0, 0.5)], "kind": "bars"}], "f.png", "kind"),
        ([{"points": [(1.0, 0.5)]}], "f.png", "label"),
        ([{"label": "a", "points": [(1.0, 0.5)]}], "f.jpg", "'.png'"),
    ],
)
def test_plot_latency_accuracy_bad_inputs(tmp_path, series, path, match):
    from mnv3_layers.plotting import plot_latency_accuracy

    with pytest.raises(ValueError, match=match):
        plot_latency_accuracy(series, tmp_path / path)


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    import sys

    from mnv3_layers.plotting import plot_latency_accuracy

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"mnv3-layers\[plot\]"):
        plot_latency_accuracy([{"label": "a", "points": [(1.0, 0.5)]}], tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()
