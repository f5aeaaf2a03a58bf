"""PNG plots for docs/benchmarks.md from the JSON the benchmarks wrote in docs/bench/.

    python -m tests.bench.plots
"""

from __future__ import annotations

import json

from tests.bench.common import BENCH_DIR


def _load(name: str) -> dict | None:
    path = BENCH_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if (tp := _load("throughput-base-256")) is not None:
        fig, ax = plt.subplots(figsize=(8, 3.2), constrained_layout=True)
        names = list(tp["results"])
        ax.barh(names, [tp["results"][n]["items_per_s"] for n in names], color=["tab:gray", "tab:gray", "tab:red", "tab:red"])
        ax.set_xlabel("files/s (higher is better)")
        ax.set_title(f"compress throughput, {tp['files']} photo crops, {tp['machine']['cpus']} cores")
        fig.savefig(BENCH_DIR / "throughput.png", dpi=90)
        written.append("throughput.png")
    if (mem := _load("memory")) is not None:
        fig, ax = plt.subplots(figsize=(8, 3.2), constrained_layout=True)
        for n, series in mem["timeline_mib"].items():
            ax.plot([t for t, _ in series], [m for _, m in series], label=f"{n} inputs")
        ax.set_xlabel("seconds")
        ax.set_ylabel("PSS of all job processes (MiB)")
        ax.set_title(f"memory of a compress job: 10N/N peak = {mem['ratio_10n_over_n']:.2f}x")
        ax.legend()
        fig.savefig(BENCH_DIR / "memory.png", dpi=90)
        written.append("memory.png")
    if (tr := _load("training")) is not None:
        fig, ax = plt.subplots(figsize=(8, 2.8), constrained_layout=True)
        names = list(tr["results"])
        ax.barh(names, [tr["results"][n]["samples_per_s"] for n in names])
        ax.set_xlabel("training samples/s (steady state)")
        ax.set_title("training throughput")
        fig.savefig(BENCH_DIR / "training.png", dpi=90)
        written.append("training.png")
    if (rd := _load("rd_classic")) is not None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
        ax = axes[0]
        for codec, style in (("aec", "r*-"), ("jpeg", "o-"), ("webp", "s-")):
            pts = [p[codec] for p in rd["image"]["points"]]
            ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], style, label=codec)
        ax.set(xlabel="bits per pixel", ylabel="PSNR dB", title="images")
        ax.legend()
        ax = axes[1]
        for codec, style in (("aec", "r*-"), ("opus", "o-")):
            pts = [p[codec] for p in rd["audio"]["points"]]
            ax.plot([p["kbps"] for p in pts], [p["snr"] for p in pts], style, label=codec)
        ax.set(xlabel="kbit/s", ylabel="SNR dB", title="audio (16 kHz)")
        ax.legend()
        ax = axes[2]
        bpb = rd["text"]["bits_per_byte"]
        ax.barh(list(bpb), list(bpb.values()), color=["tab:red"] + ["tab:gray"] * (len(bpb) - 1))
        ax.set(xlabel="bits per byte (lossless, lower is better)", title="text")
        fig.savefig(BENCH_DIR / "rd_classic.png", dpi=90)
        written.append("rd_classic.png")
    print("wrote", ", ".join(written) or "nothing (run the benchmarks first)")


if __name__ == "__main__":
    main()
