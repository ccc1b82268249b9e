"""The echo throughput as a bar chart (PNG), drawn without a display."""

from __future__ import annotations

__all__ = ["plot_throughput"]

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display is needed, or wanted, to draw a file

import matplotlib.pyplot as plt
from matplotlib.ticker import StrMethodFormatter

from bench.record import Document
from bench.scenarios import size_label


def plot_throughput(document: Document, path: Path) -> None:
    """Messages/s per contender, one panel per message size, a bar group per connection count.

    Failed scenarios have no bar. Sizes get their own panels because their scales differ by an
    order of magnitude.
    """
    echo = [s for s in document["scenarios"] if s["kind"] == "echo"]
    sizes = sorted({s["size"] for s in echo})
    contenders = document["contenders"]
    figure, axes = plt.subplots(
        1, len(sizes), figsize=(6.5 * len(sizes), 4.8), squeeze=False, layout="constrained"
    )
    width = 0.8 / max(1, len(contenders))
    # Eleven contenders and more: tab10 alone would give the first and the eleventh one colour.
    colors = [plt.get_cmap("tab10")(i) for i in range(10)]
    colors += [plt.get_cmap("Dark2")(i) for i in range(8)]
    for axis, size in zip(axes[0], sizes, strict=True):
        scenarios = [s for s in echo if s["size"] == size]
        for index, contender in enumerate(contenders):
            results = document["results"][contender["key"]]
            heights = [results.get(s["key"], {}).get("messages_per_s") or 0.0 for s in scenarios]
            positions = [
                group + (index - (len(contenders) - 1) / 2) * width
                for group in range(len(scenarios))
            ]
            axis.bar(
                positions,
                heights,
                width,
                label=contender["label"],
                color=colors[index % len(colors)],
            )
        axis.set_xticks(range(len(scenarios)))
        axis.set_xticklabels(
            [
                f"{s['connections']} connection{'s' if s['connections'] > 1 else ''}"
                for s in scenarios
            ]
        )
        axis.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        axis.set_title(f"echo of {size_label(size)} messages")
        axis.set_ylabel("messages/s")
        axis.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    machine = document["machine"]
    figure.suptitle(
        f"Echo throughput, one message in flight per connection "
        f"({machine['cores']} cores, Python {machine['python']}, {document['date'][:10]})"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
