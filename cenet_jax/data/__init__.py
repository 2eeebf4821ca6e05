"""Datasets, augmentation and grain input pipelines for CE-Net.

Public entry points: `default_data_config` / `data_config_for` (config), `build_source`
(records of one split), `build_train_iterator` / `build_eval_records` / `model_input` /
`num_train_examples` (pipelines), and `DataError`, the one exception raised for bad input.
"""
from cenet_jax.data.config import DATASETS, data_config_for, default_data_config
from cenet_jax.data.errors import DataError
from cenet_jax.data.pipeline import build_eval_records, build_train_iterator, model_input, num_train_examples
from cenet_jax.data.sources import build_source

__all__ = ['DATASETS', 'DataError', 'build_eval_records', 'build_source', 'build_train_iterator',
           'data_config_for', 'default_data_config', 'model_input', 'num_train_examples']
