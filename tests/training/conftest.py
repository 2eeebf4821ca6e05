"""Small training configs shared by the training tests (64 px, ResNet-18, synthetic disc), and a
one-device mesh for the tests that check the loop rather than the sharding."""
import contextlib
from collections.abc import Iterator

import jax
import ml_collections
import pytest

from cenet_jax import parallel
from cenet_jax.config_utils import update_fields
from configs import demo


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """The demo config shrunk for tests: ResNet-18 backbone + DAC, no validation by default."""
    config = demo.get_config()
    config.model.encoder_depth = 18
    config.model.context = ('dac',)
    config.batch_size = 4
    config.num_train_steps = 6
    config.log_every_steps = 1
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 3
    config.async_checkpoints = True
    config.num_sample_images = 1
    config.data.synthetic.num_train = 32
    config.data.synthetic.num_val = 4
    config.data.synthetic.num_test = 4
    config.optim.warmup_steps = 0
    return update_fields(config, overrides)


@pytest.fixture
def make_config():
    return tiny_config


@contextlib.contextmanager
def one_device_mesh() -> Iterator[None]:
    """`parallel.make_mesh()` over the first device only, while inside.

    The test session has 4 CPU devices on CI's 2 cores; a step sharded over 4 of them compiles
    and runs about 1.5x slower than on one. Tests of the loop itself (resume, signals, errors,
    validation metrics) train on one device; the 4-device loop is covered by test_loop's demo
    run, test_parallel, tests/ops/test_onednn_mesh.py and the two-process test."""
    real = parallel.make_mesh
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, 'make_mesh', lambda devices=None: real(devices or jax.devices()[:1]))
        yield


@pytest.fixture
def one_device() -> Iterator[None]:
    """The test trains on one device (see `one_device_mesh`)."""
    with one_device_mesh():
        yield


@pytest.fixture(scope='module')
def one_device_module() -> Iterator[None]:
    """Every test of the module trains on one device, its module-scoped runs included (use with
    `pytestmark = pytest.mark.usefixtures('one_device_module')`)."""
    with one_device_mesh():
        yield
