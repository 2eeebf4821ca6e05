"""Export a trained model for deployment: `python -m cenet_jax.export --workdir RUN --out model.jax`.

Takes the weights of the workdir's best checkpoint (or --checkpoint latest|STEP; the EMA weights
when the run kept them, --noema for the trained ones) or of a converted --weights FILE (with
--config), and writes `model.jax` (the inference function serialized with jax.export, symbolic
batch size, TTA per --tta) and `model.json` (input size, channel order, normalisation, classes,
threshold). See cenet_jax/exported.py for the format; `eval.py --exported model.jax --input DIR
--output DIR` predicts a folder with it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from cenet_jax import cli, run_config

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line (defined only when this module is the program)."""
    cli.define_config_file(
        'config', str(Path(__file__).resolve().parents[1] / 'configs' / 'default.py'),
        'Config file (default: the --workdir\'s config.json); needed with --weights.')
    flags.DEFINE_string('workdir', None, 'Training workdir whose checkpoint to export.')
    flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a step number.")
    flags.DEFINE_string('weights', None, 'Converted weights file instead of a workdir checkpoint.')
    flags.DEFINE_bool('ema', None, 'Export the EMA weights (default when the run kept them).')
    flags.DEFINE_enum('tta', 'none', ['d8', 'flips', 'none'], 'Test-time augmentation baked in '
                      '(less the views the run\'s training never applied; see model.json).')
    flags.DEFINE_string('out', None, 'The artefact to write (model.json is written beside it).')
    flags.DEFINE_list('platforms', ['cpu', 'cuda', 'tpu'], 'Platforms to lower for.')
    flags.mark_flag_as_required('out')


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger('cenet_jax').setLevel(logging.INFO)
    given = FLAGS.config if FLAGS['config'].present else None
    config = run_config.resolve_inference_config(
        FLAGS.workdir, FLAGS.weights, given, config_flags.get_override_values(FLAGS['config']))
    from cenet_jax import exported, parallel
    from cenet_jax.evaluation.run import load_variables_for_eval

    _, variables, source = load_variables_for_eval(
        config, parallel.make_mesh(), workdir=FLAGS.workdir, checkpoint=FLAGS.checkpoint,
        weights=FLAGS.weights, ema=FLAGS.ema)
    artefact, meta = exported.export_model(config, variables, tta=FLAGS.tta,
                                           platforms=FLAGS.platforms, source=source)
    model_path, meta_path = exported.save_exported(artefact, meta, FLAGS.out)
    print(f'wrote {model_path} ({len(artefact) / 2**20:.1f} MiB) and {meta_path} (model: {source}, '
          f'TTA {meta["tta_run"]}, input {meta["input"]["shape"]}, platforms {meta["platforms"]})')


if __name__ == '__main__':
    define_flags()
    cli.run_absl(main)
