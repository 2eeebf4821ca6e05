"""Two processes on localhost (jax.distributed with a local coordinator, gloo collectives)
train a few steps together and end with the same parameters."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('localhost', 0))
        return s.getsockname()[1]


def test_two_processes_train_and_agree_when_one_starts_and_compiles_late(tmp_path):
    """Process 1 starts training 35 s after process 0 and compiles the train step 35 s later, as
    a slow host does: gloo gives a peer 30 s to reach a program's first collective (orbax's
    checkpoint manager creation is one), so the hosts meet at barriers of the distributed runtime
    before it (Checkpoints) and after compiling the step (parallel.compile_on_every_process)."""
    port = _free_port()
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    env.pop('XLA_FLAGS', None)
    outs = [tmp_path / f'params{i}.npz' for i in range(2)]
    procs = [subprocess.Popen(
        [sys.executable, '-m', 'tests.training.multihost_worker', str(port), str(i),
         str(tmp_path / 'workdir'), str(outs[i]), 'start=35,compile=35' if i else ''],
        cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=600)[0])
        finally:
            p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    a, b = (np.load(o) for o in outs)
    assert int(a['step']) == int(b['step']) == 3
    assert len(a.files) == len(b.files) > 10
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert (tmp_path / 'workdir' / 'checkpoints' / 'latest' / '3').is_dir()
    assert '"val_dice"' in (tmp_path / 'workdir' / 'metrics.jsonl').read_text()   # validated
