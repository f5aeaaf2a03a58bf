"""aec's hyperprior against CompressAI's reference ``mbt2018-mean`` at an equal budget.

Both models at the zoo's size (N=96, M=128), one rate point (λ = 0.0067, CompressAI's quality 3),
no checkerboard, trained the same number of steps on the same crops (the zoo's photos, the same
seeded draws of 128-px crops, batch 8, Adam 1e-4), then measured with real bitstreams on the
same 16 held-out 256-px crops. The two trainings run side by side, one thread each.

CompressAI pins numpy<2, so it runs in its own virtual environment (``--compressai-python``).
Make it with torch pinned and CompressAI's dependencies named, never resolved (an unpinned
resolve pulls a CUDA torch and torchvision, gigabytes)::

    python3.11 -m venv /tmp/cai
    /tmp/cai/bin/pip install torch==2.13.0 'numpy<2' 'pandas<2.3' pillow scipy einops pytorch-msssim
    /tmp/cai/bin/pip install --no-deps compressai==1.2.8 torch_geometric xxhash psutil tqdm requests urllib3 idna certifi

    python -m bench.reference_compressai --steps 2500 --compressai-python /tmp/cai/bin/python   # ~45 min

CompressAI imports torchvision only to list its transforms by name (``compressai.registry``); the
PyPI torchvision is a CUDA build that does not load beside a CPU torch, so without a working one
the script gives CompressAI an empty ``torchvision.transforms`` (nothing here uses a transform).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.common import BENCH_DIR, machine

__all__ = ["main"]

LMBDA = 0.0067

_SHARED = r'''
import io, math, sys, json, time
from pathlib import Path
import numpy as np, torch
from PIL import Image

def images(folder):
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(folder).glob("*.png"))]

def batches(imgs, steps, seed=0, size=128, batch=8):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        out = np.empty((batch, size, size, 3), np.uint8)
        for i in range(batch):
            a = imgs[int(rng.integers(len(imgs)))]
            t, l = int(rng.integers(a.shape[0] - size + 1)), int(rng.integers(a.shape[1] - size + 1))
            out[i] = a[t:t + size, l:l + size]
        yield torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255

def heldout(folder, n=16):
    return [np.ascontiguousarray(a[:256, :256]) for a in images(folder)[:n]]

def psnr(a, b):
    return 10 * math.log10(255 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
'''

_COMPRESSAI = _SHARED + r'''
import types
try:
    import torchvision.transforms
except Exception:  # a CUDA-only torchvision beside a CPU torch: compressai lists its transforms only
    for name in [m for m in sys.modules if m.startswith("torchvision")]:
        del sys.modules[name]
    sys.modules["torchvision"] = types.ModuleType("torchvision")
    sys.modules["torchvision.transforms"] = sys.modules["torchvision"].transforms = types.ModuleType("torchvision.transforms")
from compressai.models import MeanScaleHyperprior
data, steps, lmbda, threads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
torch.set_num_threads(threads)
net = MeanScaleHyperprior(96, 128)
params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
opt, aux_opt = torch.optim.Adam(params, 1e-4), torch.optim.Adam(aux, 1e-3)
t0 = time.time()
for x in batches(images(Path(data) / "train"), steps):
    out = net(x)
    bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2) * x.shape[0] * x.shape[2] * x.shape[3])
    loss = lmbda * 255 ** 2 * torch.mean((out["x_hat"] - x) ** 2) + bpp
    opt.zero_grad(); aux_opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
    net.aux_loss().backward(); aux_opt.step()
train_s = time.time() - t0
net.eval(); net.update(force=True)
rows = []
with torch.no_grad():
    for a in heldout(Path(data) / "heldout"):
        x = torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255
        enc = net.compress(x)
        nbytes = sum(len(s[0]) for s in enc["strings"])
        rec = net.decompress(enc["strings"], enc["shape"])["x_hat"].clamp(0, 1)
        dec = (rec[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        rows.append({"bpp": 8 * nbytes / (256 * 256), "psnr": psnr(a, dec)})
print(json.dumps({"bpp": float(np.mean([r["bpp"] for r in rows])), "psnr": float(np.mean([r["psnr"] for r in rows])),
                  "train_seconds": train_s}))
'''


def ours(data: Path, steps: int, threads: int) -> dict[str, float]:
    import io
    import time

    from aecore import build_model, dump_bundle, load_bundle
    from aecore.regularizers import build_objective

    ns: dict = {}
    exec(_SHARED, ns)  # the same crops and held-out set as the reference
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    net = build_model("image-hyperprior", channels=96, latent_channels=128, hyper_channels=96, checkerboard=False,
                      lambdas=(LMBDA,))
    objective = build_objective({"plain": None}, lmbda=1.0)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    t0 = time.time()
    for x in ns["batches"](ns["images"](data / "train"), steps):
        loss = objective(net, x)["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    train_s = time.time() - t0
    net.eval()
    net.update_tables()
    comp = load_bundle(dump_bundle(net, "image-hyperprior", "image"))
    rows = []
    for a in ns["heldout"](data / "heldout"):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG")
        payload = comp.encode([comp.load(buf.getvalue())])[0].payload
        restored = np.asarray(Image.open(io.BytesIO(comp.decode(payload)[0])).convert("RGB"))
        rows.append({"bpp": 8 * len(payload) / (256 * 256), "psnr": ns["psnr"](a, restored)})
    return {"bpp": float(np.mean([r["bpp"] for r in rows])), "psnr": float(np.mean([r["psnr"] for r in rows])),
            "train_seconds": train_s}


def rd_cost(result: dict[str, float]) -> float:
    """The objective both trainings minimize, λ·MSE (0-255 pixels) + bpp, from the mean PSNR: the
    comparison of two models that land at different rates."""
    return LMBDA * 255**2 * 10 ** (-result["psnr"] / 10) + result["bpp"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/images"))
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--compressai-python", default="/tmp/cai/bin/python")
    parser.add_argument("--threads", type=int, default=1, help="threads of each training (they run side by side)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "reference_compressai.json")
    args = parser.parse_args()
    ref_proc = subprocess.Popen([args.compressai_python, "-c", _COMPRESSAI, str(args.data), str(args.steps), str(LMBDA),
                                 str(args.threads)], stdout=subprocess.PIPE, text=True)
    mine = ours(args.data, args.steps, args.threads)
    out, _ = ref_proc.communicate()
    if ref_proc.returncode:
        raise SystemExit(f"the CompressAI reference failed (exit {ref_proc.returncode}); see its error above")
    ref = json.loads(out.strip().splitlines()[-1])
    for r in (mine, ref):
        r["rd_cost"] = rd_cost(r)
    result = {"steps": args.steps, "lmbda": LMBDA, "aec": mine, "compressai mbt2018-mean": ref, "machine": machine(),
              "command": "python -m bench.reference_compressai " + " ".join(sys.argv[1:])}
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
