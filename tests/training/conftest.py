"""Small training configs shared by the training tests (64 px, ResNet-18, synthetic disc)."""
import ml_collections
import pytest

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
