"""A disk that fills up (cenet_jax/disk.py, checkpoint.py, logging.py, the evaluation writers):
one DiskFullError naming the folder and the bytes needed and free (exit status 2 through the
entry points), nothing half-written left, nothing already on disk lost, and the write works
again once space is freed. On a small real tmpfs (root; skipped elsewhere) and with an injected
ENOSPC. The training loop's case (resume after freeing space) is in
tests/training/test_failure_modes.py."""
import errno
import json
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cenet_jax import cli, disk, evaluation
from cenet_jax.checkpoint import Checkpoints
from cenet_jax.errors import DiskFullError
from cenet_jax.logging import MetricsLogger, read_metrics
from tests.small_disk import fill, grow, small_disk

MiB = 1 << 20


def files(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob('*') if p.is_file()}


def test_disk_full_is_recognised_in_what_libraries_raise():
    assert disk.is_disk_full(OSError(errno.ENOSPC, 'No space left on device'))
    wrapped = ValueError('RESOURCE_EXHAUSTED: Failed to write 10133504 bytes to file 4: No space '
                         "left on device [os_error_code='28']")   # TensorStore, through orbax
    assert disk.is_disk_full(wrapped)
    try:
        try:
            raise OSError(errno.EDQUOT, 'Disk quota exceeded')
        except OSError as inner:
            raise RuntimeError('save failed') from inner
    except RuntimeError as outer:
        assert disk.is_disk_full(outer)
    assert not disk.is_disk_full(OSError(errno.EACCES, 'Permission denied'))
    assert disk.format_bytes(512) == '512 B' and disk.format_bytes(45.1 * MiB) == '45.1 MiB'


def test_a_whole_file_write_keeps_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    with small_disk(tmp_path / 'disk', 2 * MiB) as root:
        target = root / 'out' / 'metrics.json'
        disk.write_atomic(target, b'old')
        fill(root, leave=64 * 1024)
        with pytest.raises(DiskFullError) as err:   # checked before writing
            disk.write_atomic(target, b'x' * 200_000)
        message = str(err.value)
        assert f'the disk of {root / "out"} is full' in message
        assert re.search(r'it needs 195\.3 KiB but only \d+(\.\d+)? KiB are free', message), message
        assert 'No half-written file was left' in message
        assert files(root / 'out') == {'metrics.json': b'old'}
        monkeypatch.setattr(disk, 'free_bytes', lambda path: 1 << 40)   # a wrong estimate:
        with pytest.raises(DiskFullError):                                # the write itself fails
            disk.write_atomic(target, b'x' * 200_000)
        assert files(root / 'out') == {'metrics.json': b'old'}            # temporary file removed
        monkeypatch.undo()
        (root / 'filler').unlink()
        disk.write_atomic(target, b'x' * 200_000)
        assert target.read_bytes() == b'x' * 200_000


def test_a_log_line_that_does_not_fit_is_not_half_written(tmp_path, monkeypatch):
    with small_disk(tmp_path / 'disk', 2 * MiB) as root:
        log_file = root / 'metrics.jsonl'
        disk.append_line(log_file, '{"step": 1}')
        fill(root)
        monkeypatch.setattr(disk, 'free_bytes', lambda path: 1 << 40)
        with pytest.raises(DiskFullError) as err:   # a part fits into the file's last page
            disk.append_line(log_file, '{"step": 2, "pad": "' + 'x' * 20_000 + '"}')
        assert 'metrics.jsonl keeps its earlier lines (nothing half-written)' in str(err.value)
        assert log_file.read_text() == '{"step": 1}\n'


def test_metrics_logger_on_a_full_disk(tmp_path, capsys):
    with small_disk(tmp_path / 'disk', 2 * MiB) as root:
        logger = MetricsLogger(root, total_steps=10, enabled=True)
        logger.write(1, {'train_loss': 0.5})
        before = files(root)
        fill(root)
        status = cli.report_errors(lambda: logger.write(2, {'train_loss': 0.4}))
        err = capsys.readouterr().err
        assert status == 2 and err.startswith('error: logging step 2: the disk of ')
        assert 'The checkpoints are not touched' in err and 'Traceback' not in err
        assert {k: v for k, v in files(root).items() if k != 'filler'} == \
            {k: v for k, v in before.items() if k != 'filler'}
        (root / 'filler').unlink()
        logger.write(2, {'train_loss': 0.4})
        logger.close()
        assert [r['step'] for r in read_metrics(root / 'metrics.jsonl')] == [1, 2]


def _state(step):
    """A train-state-like pytree of 40 random arrays (10 MiB), as orbax saves them."""
    keys = jax.random.split(jax.random.key(step), 40)
    return {'step': jnp.int32(step), 'params': {f'w{i}': jax.random.normal(k, (256, 256))
                                               for i, k in enumerate(keys)}}


def _restored_equal(ckpt, step, expected, best=False):
    state, meta = ckpt.restore(expected, step=step, best=best)
    assert meta['step'] == step
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize('best', [False, True], ids=['latest', 'best'])
@pytest.mark.parametrize('when', ['before_writing', 'while_writing'])
def test_checkpoint_save_on_a_full_disk(tmp_path, capfd, monkeypatch, best, when):
    kind = 'best' if best else 'latest'
    with small_disk(tmp_path / 'disk', 16 * MiB) as root:
        ckpt = Checkpoints(root, keep=3, async_save=True)
        first = _state(2)
        ckpt.save(2, first, None, {'step': 2}, best=best)
        ckpt.wait()
        capfd.readouterr()
        before = files(root / 'checkpoints')
        if when == 'while_writing':   # the size check misjudges: orbax runs out of space
            monkeypatch.setattr(Checkpoints, '_expected_bytes', lambda self: None)

        def save_next():
            ckpt.save(4, _state(4), None, {'step': 4}, best=best)
            ckpt.wait()

        status = cli.report_errors(save_next)
        err = capfd.readouterr().err
        assert status == 2, err
        what = 'saving the best checkpoint (step 4)' if best else 'saving checkpoint step 4'
        assert err.startswith(f'error: {what}: the disk of {root / "checkpoints" / kind} is full: '
                              'it needs '), err
        assert re.search(r'it needs [\d.]+ MiB \((the size of the newest checkpoint|its arrays '
                         r'before compression)\) but only [\d.]+ MiB are free', err), err
        steps = '(latest: step 2; best: none)' if not best else '(latest: none; best: step 2)'
        assert f'The checkpoints already saved are intact {steps}' in err
        if when == 'while_writing':
            assert f'the half-written {kind}/4.orbax-checkpoint-tmp' in err
        assert 'Traceback' not in err and 'Event loop is closed' not in err
        assert files(root / 'checkpoints') == before            # nothing lost, nothing left over
        monkeypatch.undo()
        ckpt.close()                                             # no second report of the failure
        assert capfd.readouterr().err == ''
        grow(root, 48 * MiB)                                     # space freed: saving works again
        ckpt = Checkpoints(root, keep=3, async_save=True)
        _restored_equal(ckpt, 2, first, best=best)
        ckpt.save(4, _state(4), None, {'step': 4}, best=best)
        ckpt.wait()
        _restored_equal(ckpt, 4, _state(4), best=best)
        ckpt.close()


def test_a_failed_background_save_is_reported_by_check(tmp_path, monkeypatch):
    """Injected: orbax's background save fails with TensorStore's ENOSPC message."""
    ckpt = Checkpoints(tmp_path, async_save=True)
    ckpt.save(2, _state(2), None, {'step': 2})
    ckpt.wait()
    message = ("RESOURCE_EXHAUSTED: Error writing in OCDBT database: Failed to write 65536 bytes: "
               "No space left on device [os_error_code='28']")

    def failing():
        (tmp_path / 'checkpoints' / 'latest' / '4.orbax-checkpoint-tmp').mkdir()
        raise ValueError(message)

    monkeypatch.setattr(ckpt.latest, 'check_for_errors', failing)
    monkeypatch.setattr(ckpt.latest, 'wait_until_finished', lambda: None)
    ckpt._in_flight['latest'] = (4, 123)
    with pytest.raises(DiskFullError, match=r'saving checkpoint step 4: .* it needs .* resumes from '
                                            r'step 2\.'):
        ckpt.check()
    assert sorted(p.name for p in (tmp_path / 'checkpoints' / 'latest').iterdir()) == ['2']
    monkeypatch.undo()
    ckpt.close()


def test_orbax_disk_full_log_records_are_dropped():
    from cenet_jax.checkpoint import _QUIET
    error = ValueError("Failed to write: No space left on device [os_error_code='28']")
    record = logging.LogRecord('absl', logging.ERROR, __file__, 1, 'save failed', (),
                               (ValueError, error, None))
    assert not _QUIET.filter(record)
    other = logging.LogRecord('absl', logging.ERROR, __file__, 1, 'restore failed', (), None)
    assert _QUIET.filter(other)


def _binary_records(count=3):
    rng = np.random.default_rng(0)
    return [{'image': rng.integers(0, 256, (96, 96, 3), dtype=np.uint8),
             'label': (rng.random((96, 96)) < 0.3).astype(np.int32), 'fov': np.ones((96, 96), bool),
             'id': f'img{i}', 'probs': rng.random((96, 96, 1)).astype(np.float32)}
            for i in range(count)]


def test_eval_outputs_on_a_full_disk(tmp_path):
    with small_disk(tmp_path / 'disk', 4 * MiB) as root:
        out = root / 'eval' / 'test_tta-d8'
        first = evaluation.evaluate_records(_binary_records(1), lambda r: r['probs'], task='vessel',
                                            figure_dir=out / 'figures')
        evaluation.write_metrics_json(first, out / 'metrics.json')
        before = files(out)
        fill(root, leave=50_000)   # less room than one figure needs
        with pytest.raises(DiskFullError) as err:
            evaluation.evaluate_records(_binary_records(3), lambda r: r['probs'], task='vessel',
                                        figure_dir=out / 'figures')
        assert f'writing {out / "figures"}/img' in str(err.value)
        assert f'the disk of {out / "figures"} is full' in str(err.value)
        fill(root)
        with pytest.raises(DiskFullError, match=re.escape(f'writing {out / "metrics.json"}')):
            evaluation.write_metrics_json(first, out / 'metrics.json')
        after = files(out)
        assert {k: after[k] for k in before} == before        # what was written stays whole
        assert not [name for name in after if '.tmp-' in name]
        assert json.loads(after['metrics.json'])['num_images'] == 1
