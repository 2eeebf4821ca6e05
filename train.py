"""Train CE-Net: `python train.py --config configs/oct.py --workdir runs/oct`.

Rerunning the same command resumes from the newest checkpoint in the workdir that restores
(damaged ones are moved into checkpoints/damaged/); the config must keep the fields that shape
the model and its checkpoints (see cenet_jax/run_config.py). On several
hosts (TPU pod, multi-GPU cluster) run the same command on every host; see README.
"""
from __future__ import annotations

import logging

from absl import app, flags
from absl import logging as absl_logging

from cenet_jax import cli
from cenet_jax.parallel import maybe_initialize_distributed

FLAGS = flags.FLAGS
cli.define_config_file('config', None, 'Config file, e.g. configs/drive.py[:variant=backbone].')
flags.DEFINE_string('workdir', None, 'Folder for checkpoints, metrics.jsonl, TensorBoard and PNGs.')
flags.DEFINE_string('coordinator_address', None, 'Multi-host: host:port of process 0 '
                    '(not needed on TPU pods, SLURM or Open MPI, where JAX finds it).')
flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
flags.DEFINE_integer('process_id', None, 'Multi-host: this process (0..num_processes-1).')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    absl_logging.set_verbosity(absl_logging.WARNING)   # quiet library INFO logs (orbax, grain)
    logging.getLogger('cenet_jax').setLevel(logging.INFO)
    maybe_initialize_distributed(FLAGS.config.distributed, FLAGS.coordinator_address,
                                 FLAGS.num_processes, FLAGS.process_id)
    from cenet_jax.training.loop import train_and_evaluate  # after distributed init
    train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
    cli.run_absl(main)
