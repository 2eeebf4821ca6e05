"""Evaluate CE-Net: `python eval.py --workdir runs/drive [--config.data.root=/data/DRIVE]`.

Restores the weights of the workdir's best checkpoint (or --checkpoint latest|STEP, or converted
--weights FILE with --config), scores the test split with test-time augmentation, prints the
paper-style table and writes metrics.json, per_image.csv, one PNG per image (with the TTA
uncertainty: the per-pixel std of the views) and index.html (a page to browse them); the log and the
table say which dataset, which images (split list, folder or holdout, and how many) and which
field of view were scored. `--config.data.name` other than the run's scores the model on another
dataset, with that dataset's split names, label conventions and FOV setting (see
run_config.switch_dataset); `--split=all` scores every image of it. With --input DIR
--output DIR it predicts mask PNGs for a folder of new images instead (also with --exported
model.jax, a model written by `python -m cenet_jax.export`). --ema/--noema choose the EMA or the
trained weights of a run that kept an EMA (default: the EMA). The model, the input
geometry and the training augmentation come from the workdir's config.json; `--config.*`
overrides win. TTA runs only the views training applied (an OCT run, trained with horizontal
flips only, runs identity + hflip); the log and the report name the views dropped and why.
"""
from __future__ import annotations

import logging
from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from cenet_jax import cli, run_config
from cenet_jax.parallel import maybe_initialize_distributed

FLAGS = flags.FLAGS
# Without --config, `--config.*` overrides apply to the workdir's config.json (parsed with the
# field types of the default recipe).
cli.define_config_file(
    'config', str(Path(__file__).resolve().parent / 'configs' / 'default.py'),
    'Config file (default: the --workdir\'s config.json); its model must be the run\'s.')
flags.DEFINE_string('workdir', None, 'Training workdir whose checkpoints to evaluate.')
flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a step number.")
flags.DEFINE_string('weights', None, 'Converted weights file (python -m cenet_jax.convert ...) '
                    'instead of a workdir checkpoint.')
flags.DEFINE_string('split', None, "Split to score: train, val, test, or all (every image of the "
                    "dataset, e.g. a folder the model never saw) (default: config.eval.split).")
flags.DEFINE_enum('tta', None, ['d8', 'flips', 'none'], 'Test-time augmentation '
                  '(default: config.eval.tta), less the views the run\'s training never applied '
                  '(data.augment; --config.eval.tta_unseen=keep runs them, with a warning).')
flags.DEFINE_string('output_dir', None, 'Where results go (default: <workdir>/eval/<split>_tta-<mode>).')
flags.DEFINE_bool('ema', None, 'Evaluate the EMA weights (--ema) or the trained ones (--noema); '
                  'default: the EMA when the run kept one (config.ema_decay > 0).')
flags.DEFINE_string('exported', None, 'With --input/--output: predict with a model written by '
                    'python -m cenet_jax.export (no --workdir or --config needed).')
flags.DEFINE_string('input', None, 'Predict masks for the images of this folder (no labels).')
flags.DEFINE_string('output', None, 'With --input: folder for the predicted mask PNGs.')


def resolve_config():
    """The evaluation config: the workdir's config.json and the command line (see run_config)."""
    given = FLAGS.config if FLAGS['config'].present else None
    return run_config.resolve_inference_config(
        FLAGS.workdir, FLAGS.weights, given, config_flags.get_override_values(FLAGS['config']))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    absl_logging.set_verbosity(absl_logging.WARNING)   # quiet library INFO logs (orbax, grain)
    logging.getLogger('cenet_jax').setLevel(logging.INFO)
    if FLAGS.exported:
        if not (FLAGS.input and FLAGS.output):
            raise app.UsageError('--exported predicts a folder: pass --input DIR --output DIR')
        from cenet_jax.evaluation.run import predict_folder_exported
        written, meta = predict_folder_exported(FLAGS.exported, FLAGS.input, FLAGS.output)
        print(f'wrote {len(written)} masks to {FLAGS.output} (exported model {FLAGS.exported}, '
              f'TTA {meta["tta_run"]})')
        return
    config = resolve_config()
    maybe_initialize_distributed(config.distributed)
    from cenet_jax import parallel
    from cenet_jax.evaluation import run

    if bool(FLAGS.input) != bool(FLAGS.output):
        raise app.UsageError('--input and --output go together')
    mesh = parallel.make_mesh()
    model, variables, source = run.load_variables_for_eval(
        config, mesh, workdir=FLAGS.workdir, checkpoint=FLAGS.checkpoint, weights=FLAGS.weights,
        ema=FLAGS.ema)
    tta = FLAGS.tta or config.eval.tta
    if FLAGS.input:
        written = run.predict_folder(config, model, variables, mesh, FLAGS.input, FLAGS.output,
                                     tta=tta)
        print(f'wrote {len(written)} masks to {FLAGS.output} (model: {source}, TTA {tta})')
        return
    split = FLAGS.split or config.eval.split
    out_dir = FLAGS.output_dir or run.default_output_dir(FLAGS.workdir, FLAGS.weights, split, tta)
    table = run.evaluate_split(config, model, variables, mesh, out_dir, split=split, tta=tta,
                               source=source, workdir=FLAGS.workdir)
    print(f'model: {source}\nsplit: {split}, TTA: {tta}\n{table}\nresults in {out_dir} '
          f'(browse {Path(out_dir) / "index.html"})')


if __name__ == '__main__':
    cli.run_absl(main)
