"""The benchmark cases, built once for every script that times or profiles them.

A case is named `<kind>_b<batch>_<size>_<dtype>`: kind `train` (the jitted train step that
train.py runs: forward, Dice loss, backward, SGD update, BatchNorm in training mode), `fwd`
(inference forward) or `tta` (8-fold flip/rotation test-time augmentation, the eval.py
prediction); dtype `f32` or `bf16` (JAX: bf16 compute with float32 parameters, BatchNorm
statistics and loss; PyTorch: CPU/GPU autocast). The PyTorch network is the one the parity
tests use (tests/models/torch_reference.py).
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ('train', 'fwd', 'tta')
DTYPES = {'f32': 'float32', 'bf16': 'bfloat16'}


def run_worker(script: str, args: list[str], what: str) -> dict[str, Any]:
    """Run `script` (a bench file) with `args` in a fresh Python process and parse the last JSON
    line it prints; a failure stops the bench with the worker's last lines of stderr."""
    cmd = [sys.executable, str(ROOT / script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode or not lines:
        tail = '\n'.join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f'{what} failed (exit {proc.returncode}):\n{tail}')
    return json.loads(lines[-1])


def parse_case(name: str) -> tuple[str, int, int, str]:
    """'train_b8_448_f32' -> ('train', 8, 448, 'f32'), with a clear error otherwise."""
    parts = name.split('_')
    if (len(parts) != 4 or parts[0] not in KINDS or not parts[1].startswith('b')
            or parts[3] not in DTYPES):
        raise SystemExit(f'bad case {name!r}: expected <{"|".join(KINDS)}>_b<batch>_<size>_'
                         f'<{"|".join(DTYPES)}>, e.g. train_b8_448_f32')
    return parts[0], int(parts[1][1:]), int(parts[2]), parts[3]


@dataclass
class JaxCase:
    """A jitted cenet-jax case: `fn(*args)` runs it; `run()` runs it once more (a train step
    feeds its new state back) and waits for the result."""
    fn: Any
    args: list[Any]
    kind: str
    batch: int
    conv_impl: str  # the formulation the model runs ('auto' resolved)

    def run(self) -> None:
        import jax
        if self.kind == 'train':
            self.args[0], metrics = self.fn(*self.args)
            jax.block_until_ready(metrics)
        else:
            jax.block_until_ready(self.fn(*self.args))


def jax_case(case: str, impl: str) -> JaxCase:
    """The case in cenet-jax with `model.conv_impl=impl`, jitted but not yet compiled."""
    import jax
    import numpy as np

    from cenet_jax import parallel
    from cenet_jax.evaluation import make_predict_fn
    from cenet_jax.losses import segmentation_loss
    from cenet_jax.models import build_model, reference_config
    from cenet_jax.training.state import create_train_state, make_optimizer
    from cenet_jax.training.step import train_step
    from configs.default import get_config

    kind, batch, size, dtype = parse_case(case)
    cfg = reference_config('cenet')
    cfg.dtype, cfg.conv_impl = DTYPES[dtype], impl
    model = build_model(cfg)
    mesh = parallel.make_mesh()
    variables = jax.jit(functools.partial(model.init, train=False))(
        jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    if kind == 'train':
        tx = make_optimizer(get_config().optim, 1000)
        state = parallel.replicate(create_train_state(variables, tx, jax.random.key(1)), mesh)
        batch_arrays = parallel.global_batch(
            {'image': images, 'label': (rng.random((batch, size, size)) > 0.8).astype(np.int32),
             'fov': np.ones((batch, size, size), np.float32)}, mesh)
        fn = jax.jit(functools.partial(train_step, model=model, tx=tx,
                                       loss_fn=functools.partial(segmentation_loss, kind='dice')),
                     in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                     out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                     donate_argnums=0)
        return JaxCase(fn, [state, batch_arrays], kind, batch, model.conv_impl)
    variables = parallel.replicate(variables, mesh)
    x = jax.device_put(images, parallel.batch_sharding(mesh))
    apply_fn = lambda x, v: model.apply(v, x, train=False)  # noqa: E731
    if kind == 'fwd':
        return JaxCase(jax.jit(lambda v, x: apply_fn(x, v)), [variables, x], kind, batch,
                       model.conv_impl)
    predict = make_predict_fn(apply_fn, tta='d8')
    return JaxCase(jax.jit(lambda v, x: predict(x, v)), [variables, x], kind, batch,
                   model.conv_impl)


def model_flops(case: str) -> float:
    """FLOPs of one run of the case, by XLA's count of the XLA-convolution formulation (the same
    work whatever the formulation: oneDNN's custom calls are invisible to XLA's cost analysis,
    and Winograd would count fewer multiplies). TTA views mapped with lax.map count once."""
    c = jax_case(case, 'xla')
    cost = c.fn.lower(*c.args).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float((cost or {}).get('flops', 0.0))


@dataclass
class TorchCase:
    """The case in PyTorch: `run()` runs it once and waits (CUDA synchronised)."""
    run: Callable[[], None]
    batch: int
    model: Any


def torch_case(case: str, compile_model: bool = False) -> TorchCase:
    """The case with the PyTorch CE-Net (eager, or torch.compile), SGD as in the paper."""
    import torch

    from tests.models.torch_reference import TorchCENet

    kind, batch, size, dtype = parse_case(case)
    cuda = torch.cuda.is_available()
    dev = torch.device('cuda' if cuda else 'cpu')
    torch.manual_seed(0)
    model = TorchCENet('cenet').to(dev)
    step_model = torch.compile(model) if compile_model else model
    x = torch.randn(batch, 3, size, size, device=dev)
    label = (torch.rand(batch, size, size, device=dev) > 0.8).float()
    opt = torch.optim.SGD(model.parameters(), lr=4e-3, momentum=0.9, weight_decay=1e-4)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == 'bf16')

    def dice_loss(logits: torch.Tensor) -> torch.Tensor:
        with torch.profiler.record_function('loss'):
            p = torch.sigmoid(logits.float())[:, 0]
            return 1 - 2 * (p * label).sum() / ((p * p).sum() + (label * label).sum())

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = dice_loss(step_model(x))
        loss.backward()
        opt.step()

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad(), autocast:
            return step_model(inputs)

    views = [(rot, flip) for rot in (False, True) for flip in ((), (2,), (3,), (2, 3))]

    def tta() -> torch.Tensor:
        inputs = []
        for rot, flip in views:
            base = torch.rot90(x, 1, (2, 3)) if rot else x
            inputs.append(base.flip(flip) if flip else base)
        probs = torch.sigmoid(forward(torch.cat(inputs)).float()).chunk(len(views))
        out = []
        for p, (rot, flip) in zip(probs, views):
            p = p.flip(flip) if flip else p
            out.append(torch.rot90(p, -1, (2, 3)) if rot else p)
        return torch.stack(out).mean(0)

    fn = {'train': train, 'fwd': lambda: forward(x), 'tta': tta}[kind]

    def run() -> None:
        fn()
        if cuda:
            torch.cuda.synchronize()

    return TorchCase(run, batch, model)
