"""WGAN-GP's gradient penalty in bf16 autocast against fp32, on the same critic and the same batches.

The penalty E[(||grad_x D(x_hat)||_2 - 1)^2] is a double backward; the players compute it in fp32 whatever autocast
is on (gan/players.py). This prints, over a few batches of a critic trained for some steps, how far the penalty and
D's gradients from it move when the whole penalty runs inside bf16 autocast instead (the way it was computed
before): relative error of the penalty, relative error and cosine of D's gradients. On the CPU the CPU's bf16
autocast stands for the GPU's; with CUDA, `--device cuda` measures the GPU's own.

    PYTHONPATH=platform python benchmarks/bench_gp_precision.py [--device cpu] [--batches 8] [--train-steps 50]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from gansweep.config.loading import load_config
from gansweep.gan.build import build_gan
from gansweep.nets.losses import gradient_penalty


def penalty_and_grads(players, real, fake, device_type: str, bf16: bool, seed: int):
    players.penalty_rng.manual_seed(seed)
    players.D.zero_grad(set_to_none=True)
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        if bf16:  # the whole penalty inside autocast
            value = players.gp_weight * gradient_penalty(players.D, real, fake, players.penalty_rng).float()
        else:
            value = players.gradient_penalty(real, fake, None)
    value.backward()
    grads = torch.cat([p.grad.flatten() for p in players.D.parameters() if p.grad is not None])
    return float(value.detach()), grads.double()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=50, help="GAN steps before measuring (a used critic)")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = load_config(None, ["train.loss=wgan_gp", "model.d_norm=layer", "train.d_steps=1"])
    gan = build_gan(cfg, (1, 28, 28), device)
    torch.manual_seed(0)
    data = torch.rand(args.batch_size * 4, 1, 28, 28, device=device) ** 3  # dark images, some structure
    for step in range(args.train_steps):
        gan.step([data[torch.randint(len(data), (args.batch_size,), device=device)]])
    players = gan.players

    rows = []
    for batch in range(args.batches):
        real = data[torch.randint(len(data), (args.batch_size,), device=device)]
        with torch.no_grad():
            fake = gan.fake(args.batch_size)[0]
        fp32_value, fp32_grads = penalty_and_grads(players, real, fake, device.type, False, batch)
        bf16_value, bf16_grads = penalty_and_grads(players, real, fake, device.type, True, batch)
        rows.append({
            "penalty_fp32": fp32_value, "penalty_bf16": bf16_value,
            "penalty_rel_err": abs(bf16_value - fp32_value) / abs(fp32_value),
            "grad_rel_err": float((bf16_grads - fp32_grads).norm() / fp32_grads.norm()),
            "grad_cosine": float(torch.nn.functional.cosine_similarity(bf16_grads, fp32_grads, dim=0)),
        })
        print(" ".join(f"{k}={v:.4g}" for k, v in rows[-1].items()), flush=True)
    for key in ("penalty_rel_err", "grad_rel_err", "grad_cosine"):
        values = [row[key] for row in rows]
        print(f"{key}: median {statistics.median(values):.4g}, max {max(values):.4g}, min {min(values):.4g}")


if __name__ == "__main__":
    main()
