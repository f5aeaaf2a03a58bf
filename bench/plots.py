"""PNG plots for docs/benchmarks.md from the JSON the benchmarks wrote in docs/bench/.

    python -m bench.plots
"""

from __future__ import annotations

import json

from bench.common import BENCH_DIR


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
        fig, axes = plt.subplots(1, 4, figsize=(17, 3.6), constrained_layout=True)
        for ax, metric, label in ((axes[0], "psnr", "PSNR dB"), (axes[1], "ms_ssim", "MS-SSIM (crops >= 161 px)")):
            for codec, style in (("aec", "r*-"), ("jpeg", "o-"), ("webp", "s-")):
                pts = [p[codec] for p in rd["image"]["points"] if metric in p[codec]]
                ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], style, label=codec)
            ax.set(xlabel="bits per pixel", ylabel=label, title="images")
            ax.legend()
        ax = axes[2]
        for codec, style in (("aec", "r*-"), ("opus", "o-")):
            pts = [p[codec] for p in rd["audio"]["points"]]
            ax.plot([p["kbps"] for p in pts], [p["snr"] for p in pts], style, label=codec)
        ax.set(xlabel="kbit/s", ylabel="SNR dB", title="audio (16 kHz)")
        ax.legend()
        ax = axes[3]
        bpb = rd["text"]["bits_per_byte"]
        ax.barh(list(bpb), list(bpb.values()), color=["tab:red"] + ["tab:gray"] * (len(bpb) - 1))
        ax.set(xlabel="bits per byte (lossless, lower is better)", title="text")
        fig.savefig(BENCH_DIR / "rd_classic.png", dpi=90)
        written.append("rd_classic.png")
    if (ll := _load("lossless")) is not None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 2.8), constrained_layout=True)
        for ax, (modality, unit) in zip(axes, (("image", "bpp"), ("audio", "bits_per_sample"))):
            sizes = ll[modality][unit]
            ax.barh(list(sizes), list(sizes.values()), color=["tab:red"] + ["tab:gray"] * (len(sizes) - 1))
            ax.set(xlabel=f"{unit.replace('_', ' ')} (lossless, lower is better)", title=f"{modality}: byte-identical restore")
        fig.savefig(BENCH_DIR / "lossless.png", dpi=90)
        written.append("lossless.png")
    print("wrote", ", ".join(written) or "nothing (run the benchmarks first)")


if __name__ == "__main__":
    main()
