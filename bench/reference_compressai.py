"""aec's hyperprior against CompressAI's reference ``mbt2018-mean`` at an equal budget.

Both models at the zoo's size (N=96, M=128), one rate point (λ = 0.0067, CompressAI's quality 3),
no checkerboard, trained the same number of steps on the same crops (the zoo's photos, the same
seeded draws of 128-px crops, batch 8, Adam 1e-4), then measured with real bitstreams on the
same 16 held-out 256-px crops. CompressAI pins numpy<2, so it runs in its own virtual
environment (``--compressai-python``; make it with
``python3.11 -m venv /tmp/cai && /tmp/cai/bin/pip install torch==2.13.0 'numpy<2' compressai``).

    python -m bench.reference_compressai --steps 1500 --compressai-python /tmp/cai/bin/python
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
from compressai.models import MeanScaleHyperprior
data, steps, lmbda = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.manual_seed(0)
torch.set_num_threads(2)
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


def ours(data: Path, steps: int) -> dict[str, float]:
    import io
    import time

    from aecore import build_model, dump_bundle, load_bundle
    from aecore.regularizers import build_objective

    ns: dict = {}
    exec(_SHARED, ns)  # the same crops and held-out set as the reference
    torch.manual_seed(0)
    torch.set_num_threads(2)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/images"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--compressai-python", default="/tmp/cai/bin/python")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "reference_compressai.json")
    args = parser.parse_args()
    ref = json.loads(subprocess.run([args.compressai_python, "-c", _COMPRESSAI, str(args.data), str(args.steps), str(LMBDA)],
                                    capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    mine = ours(args.data, args.steps)
    result = {"steps": args.steps, "lmbda": LMBDA, "aec": mine, "compressai mbt2018-mean": ref, "machine": machine(),
              "command": "python -m bench.reference_compressai " + " ".join(sys.argv[1:])}
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
