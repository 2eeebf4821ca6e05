"""The CPU recipes (configs/*_cpu.py) and the results runner (experiments/results.py) without
training: what the configs set, and the commands, workdirs and report the runner builds."""
import ast
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

from cenet_jax.data import config as data_config
from cenet_jax.data import pipeline
from cenet_jax.data.errors import NoValidationSplit
from configs import drive_cpu, isbi_cpu
from tests.data.fakes import make_drive

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'experiments'))
import cross_dataset  # noqa: E402
import fov_agreement  # noqa: E402
import per_image  # noqa: E402
import provenance  # noqa: E402
import results  # noqa: E402
import runner_common  # noqa: E402
import seed_stats  # noqa: E402
import threshold  # noqa: E402


@pytest.mark.parametrize('module', [drive_cpu, isbi_cpu])
def test_cpu_recipes_train_on_patches_without_looking_at_the_test_split(module):
    config = module.get_config()
    crop = data_config.crop_hw(config.data)
    assert crop is not None and all(c % 32 == 0 and c >= 192 for c in crop)  # RMP's 6x6 pool fits
    assert all(s % 32 == 0 for s in config.data.image_size)
    assert config.eval_every_steps == 0 and config.data.val_fraction == 0.0
    assert config.optim.name == 'adam' and config.loss.kind == 'dice_ce'
    assert not config.model.pretrained
    unet = module.get_config('variant=unet')
    assert unet.model.architecture == 'unet' and unet.data.crop_size == config.data.crop_size


def test_identical_runs_share_a_workdir_and_repeats_do_not():
    ablation, repro, precision = results.TABLES['ablation'], results.TABLES['repro'], results.TABLES['precision']
    cenet = next(r for r in ablation.runs if r.variant == 'cenet' and r.seed == 0)
    assert (results.workdir_name(ablation, cenet, ablation.steps)               # the bf16 run of the
            == results.workdir_name(precision, precision.runs[1], precision.steps))   # precision table
    assert (results.workdir_name(repro, repro.runs[0], repro.steps)
            != results.workdir_name(repro, repro.runs[1], repro.steps))
    names = {results.workdir_name(t, r, t.steps) for t in results.TABLES.values() for r in t.runs}
    assert len(names) == len({(t.config, r.variant, r.seed, results.run_steps(t, r), r.overrides, r.repeat)
                              for t in results.TABLES.values() for r in t.runs})


def test_paper_level_scores_the_ablations_runs_at_a_threshold_chosen_on_training_images():
    ablation, paper_level, levers = (results.TABLES[n] for n in ('ablation', 'paper_level', 'levers'))
    ablation_names = {results.workdir_name(ablation, r, ablation.steps) for r in ablation.runs}
    reused, chosen = paper_level.runs[:2], paper_level.runs[2:]
    assert {results.workdir_name(paper_level, r, paper_level.steps) for r in reused} <= ablation_names
    # the CE-Net recipe of the levers chosen on the held-out images, now on all training images
    combined = levers.runs[-1]
    assert [(r.variant, r.overrides, r.steps) for r in chosen] == [
        (combined.variant, results.BF16 + results.CHOSEN_LEVERS, combined.steps)]
    assert combined.overrides == results.LEVER_BASE + results.CHOSEN_LEVERS
    assert paper_level.split == 'test' and paper_level.threshold_split == 'train'
    # the architecture is one of the levers, chosen on held-out training images
    assert any(r.variant == 'unet' and r.overrides == results.LEVER_BASE for r in levers.runs)
    assert levers.split == 'val'


def test_a_run_of_its_own_budget_trains_that_long_in_its_own_workdir(tmp_path):
    levers = results.TABLES['levers']
    base, longer = levers.runs[0], next(r for r in levers.runs if r.steps)
    assert longer.overrides == base.overrides and longer.steps == 3000
    assert '--config.num_train_steps=3000' in results.train_command(levers, longer, tmp_path, 'D', levers.steps)
    assert not any('num_train_steps' in c for c in results.train_command(levers, base, tmp_path, 'D', levers.steps))
    assert '3000steps' in results.workdir_name(levers, longer, levers.steps)
    assert results.workdir_name(levers, longer, 500) == results.workdir_name(levers, longer, 0)


def test_ablation_runs_every_variant_at_three_seeds_seed_by_seed_then_unet_at_equal_wall_time():
    ablation = results.TABLES['ablation']
    assert [r.seed for r in ablation.runs[:5]] == [0] * 5
    full = [r for r in ablation.runs if not r.steps]
    assert {(r.variant, r.seed) for r in full} == {
        (v, s) for _, v in results.ABLATION_VARIANTS for s in (0, 1, 2)}
    assert ablation.runs[:len(full)] == tuple(full)          # the equal-wall-time runs come last
    equal = ablation.runs[len(full):]
    assert [(r.variant, r.seed, r.steps) for r in equal] == [
        ('unet', s, results.UNET_EQUAL_WALL_STEPS) for s in (0, 1, 2)]
    assert 0 < results.UNET_EQUAL_WALL_STEPS < 1000
    assert all(r.overrides == results.BF16 for r in ablation.runs)
    names = {results.workdir_name(ablation, r, ablation.steps) for r in ablation.runs}
    assert len(names) == len(ablation.runs)                   # every run its own workdir


def test_variants_with_the_same_seed_see_the_same_batches(tmp_path):
    """config.seed drives the order and the augmentation of the training batches, and the model
    variant does not touch them: two variants at one seed train on identical batches."""
    make_drive(tmp_path, count=4, size=(40, 48))

    def batches(variant, seed, count=3):
        config = drive_cpu.get_config(f'variant={variant}')
        config.data.root, config.data.image_size, config.data.crop_size = str(tmp_path), (64, 64), (32, 32)
        config.data.num_workers = 0
        iterator = pipeline.build_train_iterator(config.data, global_batch_size=2, seed=seed)
        return [next(iterator) for _ in range(count)]

    cenet, unet, backbone = batches('cenet', 0), batches('unet', 0), batches('backbone', 0)
    for a, b, c in zip(cenet, unet, backbone):
        for key in ('image', 'label'):
            np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_array_equal(a[key], c[key])
    other = batches('cenet', 1)
    assert any(not np.array_equal(a['image'], b['image']) for a, b in zip(cenet, other))


def test_commands_score_the_last_checkpoint_with_the_run_settings(tmp_path):
    table = results.TABLES['levers']
    run = next(r for r in table.runs if 'loss.kind=dice' in r.overrides)
    train = results.train_command(table, run, tmp_path, '/data/DRIVE', 300)
    assert train[1:3] == ['train.py', '--config=configs/drive_cpu.py:variant=cenet']
    assert '--config.num_train_steps=300' in train and train[-1] == '--config.loss.kind=dice'
    assert '--config.data.root=/data/DRIVE' in train and '--config.seed=0' in train
    assert '--config.model.dtype=bfloat16' in train and '--config.data.val_fraction=0.2' in train
    evaluate = results.eval_command(tmp_path, 'none')
    assert '--checkpoint=latest' in evaluate and '--tta=none' in evaluate
    assert '--config.eval.figures=False' in evaluate and not any(c.startswith('--split') for c in evaluate)
    assert '--config.eval.figures=False' not in results.eval_command(tmp_path, 'd8')
    at = results.eval_command(tmp_path, 'd8', 'val', 0.57)
    assert '--split=val' in at and '--config.eval.threshold=0.57' in at
    assert f'--output_dir={tmp_path / "eval" / "val_d8_t0.57"}' in at
    assert results.threshold_command(tmp_path, 'train', 'd8')[1:] == [
        'experiments/threshold.py', f'--workdir={tmp_path}', '--split=train', '--tta=d8']


def fake_row(label, auc, seed=0):
    scores = {'sen': {'mean': 0.7, 'std': 0.05}, 'acc': {'mean': 0.95, 'std': 0.01},
              'auc': {'mean': auc, 'std': 0.01}}
    paper = {'CE-Net': {'sen': 0.8309, 'acc': 0.9545, 'auc': 0.9779}}
    scored = {'scores': scores, 'pooled': {'auc': auc + 0.001}, 'paper': paper, 'num_images': 20}
    return {'label': label, 'variant': 'cenet', 'seed': seed, 'train_seconds': 600.0, 'config': {'steps': 300},
            'evals': {'d8': scored, 'none': scored}, 'workdir': '/tmp/x'}


def test_markdown_report_has_provenance_our_rows_and_the_paper_rows():
    table = results.TABLES['drive']
    result = {'command': 'python experiments/results.py drive --data D', 'git_commit': 'abc123',
              'finished': '2026-11-30 10:00 UTC', 'wall_minutes': 12.5, 'figures': ['drive_curves.png'],
              'hardware': {'cpu': 'Test CPU', 'cores': 2, 'memory_gb': 23.4, 'jax': '0.1', 'flax': '0.2'},
              'rows': [fake_row('CE-Net', 0.9712)]}
    text = results.markdown('drive', table, result)
    assert '`python experiments/results.py drive --data D`' in text and '`abc123`' in text
    assert 'Test CPU, 2 cores' in text and 'this invocation: 12.5 min; training of its 1 runs: 10.0 min' in text
    reused = {**result, 'wall_minutes': 0.0, 'rows': [{**fake_row('CE-Net', 0.9712), 'reused': True}]}
    assert '0.0 min; training of its 1 runs: 10.0 min (1 trained by an earlier invocation and reused)' \
        in results.markdown('drive', table, reused)
    assert '| CE-Net | 0 | d8 | 0.7000 ± 0.0500 | 0.9500 ± 0.0100 | 0.9712 ± 0.0100 | 0.9722 | 10.0 |' in text
    assert '| CE-Net | 0 | none |' in text
    assert '| paper: CE-Net |  |  | 0.8309 | 0.9545 | 0.9779 |' in text
    assert 'random weights' in text and '![drive_curves.png](drive_curves.png)' in text
    json.dumps(result)   # the .json beside it is plain JSON


def fake_training(monkeypatch) -> list[str]:
    """Replace training and scoring with a fixed row; the list of the labels run, in order."""
    done: list[str] = []

    def fake_train_and_score(table, run, workdir, data, fresh, known_seconds=None):
        done.append(run.label)
        return fake_row(run.label, 0.97)
    monkeypatch.setattr(results, 'train_and_score', fake_train_and_score)
    return done


def test_a_partial_report_is_written_after_each_run(tmp_path, monkeypatch):
    """Every finished run is on disk at once; the PNGs and the repro verdict wait for the whole table."""
    done = fake_training(monkeypatch)
    reports = []
    original = results.write_report
    monkeypatch.setattr(results, 'write_report', lambda *a, **k: reports.append(k.get('partial', ''))
                        or original(*a, **k))
    monkeypatch.setattr(results, 'save_loss_curves', lambda rows, path: None)
    result = results.run_table('repro', '/data', tmp_path, tmp_path / 'runs', False, None, (), ['x'])
    assert done == ['CE-Net, first run', 'CE-Net, second run']
    assert reports == ['1 of 2 runs', ''] and result['identical'] is True
    assert 'Partial' not in (tmp_path / 'repro.md').read_text()
    assert 'identical scores: **True**' in (tmp_path / 'repro.md').read_text()


def test_first_runs_only_a_table_s_first_runs_and_stays_partial(tmp_path, monkeypatch):
    done = fake_training(monkeypatch)
    monkeypatch.setattr(results, 'save_loss_curves', lambda rows, path: None)
    result = results.run_table('levers', '/data', tmp_path, tmp_path / 'runs', False, None, (), ['x'], first=2)
    levers = results.TABLES['levers']
    assert done == [r.label for r in levers.runs[:2]]
    assert result['partial'] == f'2 of {len(levers.runs)} runs (--first 2)'
    assert 'Partial' in (tmp_path / 'levers.md').read_text()


def test_train_only_trains_one_run_and_finished_only_scores_the_finished_ones(tmp_path, monkeypatch):
    """Runs trained side by side (--train-only INDEX, no scoring) are scored later by --finished-only,
    which trains nothing and leaves the unfinished runs out of a partial report."""
    calls = fake_commands(monkeypatch)
    monkeypatch.setattr(results, 'save_loss_curves', lambda rows, path: None)
    args = ['disc_levers', '--data', str(tmp_path), '--runs', str(tmp_path / 'runs'), '--out', str(tmp_path / 'out')]
    results.main(args + ['--train-only', '2'])
    table = results.TABLES['disc_levers']
    assert [c[1] for c in calls] == ['train.py'] and '--config.loss.kind=dice' in calls[0]
    workdir = tmp_path / 'runs' / results.workdir_name(table, table.runs[2], table.steps)
    assert json.loads((workdir / 'results_train.json').read_text()) == {
        'train_seconds': 42.0, 'segments': [{'from_step': 0, 'to_step': 625, 'seconds': 42.0}]}
    assert provenance.trained_at(workdir)[0]['command'].endswith('--config.loss.kind=dice')
    results.main(args + ['--train-only', '0'])
    calls.clear()
    results.main(args + ['--finished-only'])
    assert [c[1] for c in calls] == ['eval.py', 'eval.py']   # scores runs 0 and 2, trains none
    report = json.loads((tmp_path / 'out' / 'disc_levers.json').read_text())
    assert [r['label'] for r in report['rows']] == [table.runs[0].label, table.runs[2].label]
    assert report['partial'] == f'2 of {len(table.runs)} runs (the finished ones, --finished-only)'
    with pytest.raises(SystemExit, match='run index 0..4'):
        results.main(args + ['--train-only', '9'])


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match='is not a folder'):
        results.main(['drive', '--data', str(tmp_path / 'nowhere')])


def test_folds_run_every_fold_and_add_the_mean_over_folds():
    runs = results.fold_runs(results.TABLES['isbi'].runs, 3)
    assert [r.overrides[-1] for r in runs] == ['data.fold=0', 'data.fold=1', 'data.fold=2']
    assert all('data.num_folds=3' in r.overrides for r in runs)
    table = results.TABLES['isbi']
    assert len({results.workdir_name(table, r, 0) for r in runs}) == 3
    rows = [fake_row(f'fold {k}', auc) for k, auc in enumerate((0.96, 0.97, 0.98))]
    rows[1]['evals']['d8'] = {**rows[1]['evals']['d8'], 'sweep': {'v_rand': 0.9}}
    mean = results.mean_row(rows, 'mean')
    assert mean['evals']['d8']['scores']['auc']['mean'] == pytest.approx(0.97)
    assert mean['evals']['d8']['scores']['auc']['std'] == pytest.approx(0.01)   # sample std over folds
    assert mean['evals']['d8']['sweep'] == {}   # a best-threshold score missing in one fold: no mean
    assert mean['evals']['d8']['pooled']['auc'] == pytest.approx(0.971)
    assert mean['evals']['d8']['num_images'] == 60 and mean['train_seconds'] == 1800.0
    with pytest.raises(SystemExit, match='at least 2'):
        results.fold_runs(runs, 1)


def test_pooled_fold_row_scores_every_image_and_picks_one_threshold_for_all(tmp_path):
    """Fold 1 is best at t=0.1 and fold 2 at t=0.3; over both folds' images t=0.3 wins, so the
    pooled best-threshold score is below the mean of the per-fold bests."""
    per_fold = [{'0': (0.80, 0.90, 0.70), '1': (0.90, 0.92, 0.72)},          # id: (v_rand, @0.1, @0.3)
                {'2': (0.60, 0.50, 0.95), '3': (0.70, 0.60, 0.97)}]
    rows = []
    for fold, images in enumerate(per_fold):
        workdir = tmp_path / f'fold{fold}'
        row = {**fake_row(f'fold {fold}', 0.9), 'workdir': str(workdir)}
        row['evals'] = {'d8': row['evals']['d8']}
        folder = workdir / 'eval' / 'test_d8'
        folder.mkdir(parents=True)
        lines = ['id,v_rand,v_rand@0.1,v_rand@0.3'] + [f'{i},{a},{b},{c}' for i, (a, b, c) in images.items()]
        (folder / 'per_image.csv').write_text('\n'.join(lines) + '\n')
        rows.append(row)
    pooled = per_image.pooled_row(rows, 'test', 'pooled', ['v_rand', 'auc'])['evals']['d8']
    assert pooled['num_images'] == 4
    assert pooled['scores']['v_rand']['mean'] == pytest.approx(0.75)
    assert pooled['scores']['v_rand']['std'] == pytest.approx(np.std([0.8, 0.9, 0.6, 0.7], ddof=1))
    assert pooled['sweep'] == {'v_rand': pytest.approx((0.70 + 0.72 + 0.95 + 0.97) / 4), 'v_rand_threshold': 0.3}
    worst, best = per_image.extreme_figures(rows, 'test', 'd8')   # by v_rand, the first metric column
    assert worst == tmp_path / 'fold1' / 'eval' / 'test_d8' / 'figures' / '2.png'
    assert best == tmp_path / 'fold0' / 'eval' / 'test_d8' / 'figures' / '1.png'


def test_report_only_rewrites_the_markdown_from_the_json(tmp_path, capsys):
    result = {'command': 'python experiments/results.py ablation --data D --steps 40', 'git_commit': 'c',
              'finished': 'now', 'wall_minutes': 1.0, 'figures': [],
              'hardware': {'cpu': 'CPU', 'cores': 2, 'memory_gb': 1.0, 'jax': '1', 'flax': '1'},
              'rows': [fake_row('CE-Net', 0.95), fake_row('Backbone', 0.94)]}
    (tmp_path / 'ablation.json').write_text(json.dumps(result))
    results.main(['ablation', '--data', 'unused', '--out', str(tmp_path), '--report-only'])
    text = (tmp_path / 'ablation.md').read_text()
    assert 'with 40 steps' in text and '| Backbone | 0 | d8 |' in text
    # Table VI rows (mean ± std) come from the paper's ablation table
    assert '| paper: Backbone + DAC with atrous |  |  | n/a | 0.9530 ± 0.0040 | 0.9770 ± 0.0060 |' in text
    with pytest.raises(SystemExit, match='run the table first'):
        results.main(['drive', '--data', 'unused', '--out', str(tmp_path), '--report-only'])


def test_spread_seeds_repeat_the_chosen_variants(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(results, 'train_and_score',
                        lambda table, run, workdir, *a: seen.append((run.label, run.seed, workdir.name))
                        or fake_row(run.label, 0.9, run.seed))
    monkeypatch.setattr(results, 'save_loss_curves', lambda rows, path: None)
    results.run_table('ablation', '/data', tmp_path, tmp_path / 'runs', False, None, (2, 3), ['x'],
                      spread_variants=('cenet', 'backbone'))
    extra = seen[len(results.TABLES['ablation'].runs):]
    # seed 2 is one of the table's own seeds: not run twice
    assert [(label, seed) for label, seed, _ in extra] == [('CE-Net', 3), ('Backbone', 3)]
    assert len({name for _, _, name in seen}) == len(seen)


def run_config_json(steps, seed=0, architecture='cenet'):
    """A run's config.json with the fields the runner reads."""
    return json.dumps({'num_train_steps': steps, 'batch_size': 8, 'seed': seed,
                       'data': {'image_size': [576, 576], 'crop_size': [192, 192]},
                       'optim': {'name': 'adam', 'lr': 1e-3, 'schedule': 'poly', 'warmup_steps': 50},
                       'loss': {'kind': 'dice_ce'}, 'model': {'architecture': architecture}})


def fake_commands(monkeypatch) -> list[list[str]]:
    """Replace the runner's processes by what they leave behind: train.py the run's last checkpoint,
    config.json and training log (42 s), eval.py a metrics.json with TTA uncertainty in its
    --output_dir, threshold.py its choice (7 s each); the commands, in order."""
    calls: list[list[str]] = []

    def fake_run_logged(command, log_path):
        calls.append(command)
        given = dict(c[2:].split('=', 1) for c in command if c.startswith('--') and '=' in c)
        workdir = Path(given['workdir'])
        if command[1] == 'train.py':
            steps = int(given.get('config.num_train_steps', 300))
            (workdir / 'checkpoints' / 'latest' / str(steps)).mkdir(parents=True, exist_ok=True)
            (workdir / 'config.json').write_text(run_config_json(steps, int(given['config.seed'])))
            (workdir / 'metrics.jsonl').write_text(''.join(
                json.dumps({'step': step, 'train_loss': 0.5, 'images_per_sec': rate}) + '\n'
                for step, rate in ((25, 24.0), (steps, 12.5))))
            return 42.0
        if command[1] == 'experiments/threshold.py':
            summary = threshold.curve_summary(threshold.accuracy_curve(
                [(np.array([[0.7, 0.3, 0.65]]), np.array([[1, 0, 0]]), None)]), split=given['split'], tta='d8')
            (workdir / 'eval' / f'threshold_{given["split"]}_d8.json').write_text(json.dumps(summary))
        else:
            fake_metrics(Path(given['output_dir']) / 'metrics.json', 0.97, uncertainty=True)
        return 7.0
    monkeypatch.setattr(results, 'run_logged', fake_run_logged)
    return calls


def test_a_finished_run_is_neither_retrained_nor_rescored(tmp_path, monkeypatch):
    """The second call finds the final checkpoint and the scores: eval.py is not run again and the
    training time is the one recorded the first time."""
    table = results.TABLES['repro']
    workdir = tmp_path / 'run'
    calls = fake_commands(monkeypatch)
    first = results.train_and_score(table, table.runs[0], workdir, '/data', False)
    second = results.train_and_score(table, table.runs[0], workdir, '/data', False)
    assert [c[1] for c in calls] == ['train.py', 'eval.py']         # finished: train.py is not even started
    assert first['train_seconds'] == second['train_seconds'] == 42.0
    assert not first['reused'] and second['reused'] and second['evals'] == first['evals']


def fake_metrics(path, auc, provenance=(), uncertainty=False):
    """A metrics.json as eval.py writes it (the fields the results runner reads; with
    `uncertainty`, the TTA uncertainty of a d8 scoring)."""
    scored = fake_row('x', auc)['evals']['d8']
    summary = {'aggregate': dict(scored['scores']), 'pooled': scored['pooled'], 'paper': {},
               'num_images': 28, 'settings': {'provenance': list(provenance)}, 'std_ddof': 1}
    if uncertainty:
        summary['aggregate'].update({'uncertainty': {'mean': 0.0328, 'std': 0.0106, 'n': 28},
                                     'uncertainty_auc': {'mean': 0.8729, 'std': 0.0294, 'n': 28}})
        summary['uncertainty'] = {'pixel_auc': 0.8718, 'pixel_auc_max_error': 1e-5, 'mean_std_wrong': 0.0964,
                                  'mean_std_right': 0.0283, 'wrong_in_top_5pct': 0.237,
                                  'wrong_pixels': 297981, 'pixels': 4538143}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))


def test_cross_dataset_eval_command_switches_the_dataset(tmp_path):
    table = cross_dataset.CROSS_TABLES['drive_on_stare']
    command = cross_dataset.eval_command(tmp_path, table, '/data/STARE', 'none', annotator=2)
    assert command[1] == 'eval.py' and '--checkpoint=latest' in command
    assert '--config.data.name=stare' in command and '--config.data.root=/data/STARE' in command
    assert '--config.data.annotator=2' in command and '--config.eval.figures=False' in command
    assert f'--output_dir={tmp_path / "eval" / "stare_annotator2_none"}' in command
    disc = cross_dataset.eval_command(tmp_path, cross_dataset.CROSS_TABLES['drishti_on_folder'], '/onh', 'd8',
                                      class_values=(255, 128, 0))
    assert '--config.data.name=folder' in disc and '--config.data.class_values=(255, 128, 0)' in disc
    assert '--config.eval.figures=False' not in disc


@pytest.mark.parametrize('name, source', [('drive_on_chase_db1', 'ablation'), ('drive_on_stare', 'ablation'),
                                          ('drishti_on_folder', 'drishti')])
def test_cross_dataset_tables_score_the_source_tables_cenet_at_three_seeds(tmp_path, name, source):
    table = results.TABLES[source]
    expected = [tmp_path / results.workdir_name(table, run, table.steps) for run in table.runs
                if run.variant == 'cenet' and run.label == 'CE-Net']
    assert results.default_cross_runs(cross_dataset.CROSS_TABLES[name], tmp_path) == expected
    assert [f'-s{seed}-' in path.name for seed, path in enumerate(expected)] == [True] * 3


def finished_runs(root: Path, seeds=(0, 1, 2), own=None) -> list[Path]:
    """Finished workdirs (last checkpoint, config.json) of the given seeds; `own(path, seed)` writes
    each run's own test scores."""
    runs = []
    for seed in seeds:
        run = root / f'run_s{seed}'
        (run / 'checkpoints' / 'latest' / '1000').mkdir(parents=True)
        (run / 'config.json').write_text(run_config_json(1000, seed))
        if own:
            own(run / 'eval' / 'test_d8' / 'metrics.json', seed)
        runs.append(run)
    return runs


def fake_cross_eval(monkeypatch, write) -> list[list[str]]:
    """Replace eval.py by `write(metrics_path, seed of the run)`; the commands, in order."""
    calls = []

    def fake_run_logged(command, log_path):
        calls.append(command)
        given = dict(c[2:].split('=', 1) for c in command if c.startswith('--') and '=' in c)
        seed = json.loads((Path(given['workdir']) / 'config.json').read_text())['seed']
        write(Path(given['output_dir']) / 'metrics.json', seed)
        return 5.0
    monkeypatch.setattr(runner_common, 'run_logged', fake_run_logged)
    return calls


def test_cross_dataset_table_scores_each_seed_once_and_reports_the_mean_and_std_over_seeds(tmp_path, monkeypatch):
    out, data = tmp_path / 'docs', tmp_path / 'CHASE'
    data.mkdir()
    runs = finished_runs(tmp_path, own=lambda path, seed: fake_metrics(path, 0.97 + 0.002 * seed))
    provenance = [f'dataset: chase_db1 at {data} (cross-dataset: ...)',
                  f'test: 28 images, the whole set ({data}): scored cross-dataset',
                  'FOV: derived from each image (data.fov=auto ...)']
    calls = fake_cross_eval(monkeypatch, lambda path, seed: fake_metrics(path, 0.90 + 0.01 * seed, provenance))
    argv = ['drive_on_chase_db1', '--data', str(data), '--out', str(out)]
    for run in runs:
        argv += ['--run', str(run)]
    results.main(argv)
    assert [c[1] for c in calls] == ['eval.py'] * 6                    # 3 seeds, with and without TTA
    assert all(f'--config.data.root={data}' in c and '--config.data.name=chase_db1' in c for c in calls)
    text = (out / 'drive_on_chase_db1.md').read_text()
    assert '### DRIVE CE-Net on CHASE_DB1 (cross-dataset), 3 seeds' in text
    assert all(f'- {line}' in text for line in provenance)
    # AUC 0.90, 0.91, 0.92 over the seeds: mean 0.91, sample std 0.01 (population std would be 0.0082)
    assert ('| CHASE_DB1 | d8 | 0,1,2 | 28 | 0.7000 ± 0.0000 | 0.9500 ± 0.0000 | 0.9100 ± 0.0100 '
            '| 0.9110 ± 0.0100 |') in text
    assert '| CHASE_DB1 | none | 0,1,2 | 28 |' in text
    assert ('| DRIVE test (ablation table) | d8 | 0,1,2 | 28 | 0.7000 ± 0.0000 | 0.9500 ± 0.0000 '
            '| 0.9720 ± 0.0020 |') in text
    assert '| 1 | CHASE_DB1 | d8 | 28 | 0.7000 ± 0.0500 | 0.9500 ± 0.0100 | 0.9100 ± 0.0100 | 0.9110 |' in text
    assert 'Mean ± sample std (n - 1) over seeds' in text and 'no CHASE_DB1 or STARE numbers' in text
    assert text.count('trained at: not recorded') == 3 and text.count('  - eval (none): `') == 3
    report = json.loads((out / 'drive_on_chase_db1.json').read_text())
    assert report['over_seeds']['d8']['metrics']['auc']['values'] == pytest.approx([0.90, 0.91, 0.92])
    assert [row['seed'] for row in report['rows']] == [0, 1, 2]
    results.main(argv)                                                  # scored already: not again
    assert len(calls) == 6
    results.main(argv + ['--report-only'])
    assert (out / 'drive_on_chase_db1.md').read_text() == text
    with pytest.raises(SystemExit, match=r'error: \S+/none holds no finished run; train the CE-Net runs first '
                                         r'with `python experiments/results.py ablation'):
        results.main(['drive_on_stare', '--data', str(data), '--run', str(runs[0]), '--run', str(tmp_path / 'none'),
                      '--out', str(out)])
    with pytest.raises(SystemExit, match=r'drive_cpu-cenet-s0-\S+, \S+-s1-\S+, \S+-s2-\S+ hold no finished run'):
        results.main(['drive_on_stare', '--data', str(data), '--runs', str(tmp_path / 'empty'), '--out', str(out)])


def fake_disc_metrics(path, dice_cup, provenance=()):
    """A metrics.json of eval.py's 'disc_cup' task (no experts' CDRs: those scores are undefined)."""
    aggregate = {'E_disc': {'mean': 0.1, 'std': 0.02}, 'dice_disc': {'mean': 0.95, 'std': 0.01},
                 'E_cup': {'mean': 0.3, 'std': 0.05}, 'dice_cup': {'mean': dice_cup, 'std': 0.03},
                 'cdr_error': {'mean': None, 'std': None}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'aggregate': aggregate, 'pooled': {}, 'paper': {}, 'num_images': 12,
                                'settings': {'provenance': list(provenance)}, 'std_ddof': 1}))


def test_disc_counterpart_scores_the_drishti_seeds_on_a_folder_of_disc_crops(tmp_path, monkeypatch):
    out, data = tmp_path / 'docs', tmp_path / 'ONH'
    data.mkdir()
    runs = finished_runs(tmp_path, own=lambda path, seed: fake_disc_metrics(path, 0.85))
    provenance = [f'dataset: folder at {data} (cross-dataset: ...)',
                  'disc crop: none (data.disc_crop_size=0): the images are taken as already cropped around the '
                  'optic disc, and scored as they are']
    calls = fake_cross_eval(monkeypatch, lambda path, seed: fake_disc_metrics(path, 0.80 + 0.02 * seed, provenance))
    argv = ['drishti_on_folder', '--data', str(data), '--out', str(out), '--class-values', '255,128,0']
    for run in runs:
        argv += ['--run', str(run)]
    results.main(argv)
    assert len(calls) == 6 and all('--config.data.class_values=(255, 128, 0)' in c for c in calls)
    text = (out / 'drishti_on_folder.md').read_text()
    assert '| scored on | TTA | seeds | images | disc E | disc Dice | cup E | cup Dice |' in text
    assert ('| ONH crops | d8 | 0,1,2 | 12 | 0.1000 ± 0.0000 | 0.9500 ± 0.0000 | 0.3000 ± 0.0000 '
            '| 0.8200 ± 0.0200 |') in text
    assert '| Drishti-GS1 test (drishti table) | d8 | 0,1,2 | 12 |' in text
    assert f'- {provenance[1]}' in text and 'AUC' not in text
    with pytest.raises(SystemExit):
        results.main(argv[:-2] + ['--class-values', 'rim'])


def test_threshold_counts_match_thresholding_each_pixel():
    rng = np.random.default_rng(0)
    prob = rng.random((30, 40)).astype(np.float32)
    prob[0, :5] = [0.05, 0.5, 0.95, 0.0, 1.0]          # on and beyond the grid's ends
    label = rng.random((30, 40)) < 0.3
    fov = np.zeros((30, 40), bool)
    fov[2:28, 3:35] = True
    correct, pixels = threshold.correct_counts(prob, label, fov)
    assert pixels == fov.sum()
    expected = [((prob > t) == label)[fov].sum() for t in threshold.THRESHOLDS]
    np.testing.assert_array_equal(correct, expected)
    everything, all_pixels = threshold.correct_counts(prob, label.astype(np.uint8) * 255, None)
    assert all_pixels == prob.size and everything[45] == ((prob > threshold.THRESHOLDS[45]) == label).sum()


def test_threshold_is_the_best_per_image_mean_accuracy_nearest_half_on_ties():
    # vessels have p 0.7, background 0.3 and 0.65: any t in [0.65, 0.7) classifies every pixel
    label = np.array([[1, 1, 0, 0, 0]])
    prob = np.array([[0.7, 0.7, 0.3, 0.3, 0.65]])
    curve = threshold.accuracy_curve([(prob, label, None), (prob, label, None)])
    assert curve.best() == pytest.approx(0.65)
    assert curve.accuracy_at(0.65) == 1.0 and curve.accuracy_at(0.5) == pytest.approx(0.8)
    flat = threshold.accuracy_curve([(np.array([[0.9, 0.1]]), np.array([[1, 0]]), None)])
    assert flat.best() == 0.5                      # every t in 0.1..0.9 is perfect: 0.5 kept
    summary = threshold.curve_summary(curve, split='train')
    assert summary['chosen_threshold'] == pytest.approx(0.65) and summary['num_images'] == 2
    assert summary['mean_acc_at_0.5'] == pytest.approx(0.8) and len(summary['mean_acc']) == len(summary['thresholds'])
    json.dumps(summary)
    with pytest.raises(ValueError, match='no images'):
        threshold.accuracy_curve([])


def seed_row(label, seed, auc, acc=0.95, minutes=6.0):
    row = fake_row(label, auc, seed)
    row['evals'] = {'d8': {**row['evals']['d8'], 'scores': {
        'auc': {'mean': auc, 'std': 0.01}, 'acc': {'mean': acc, 'std': 0.01}}}}
    row['train_seconds'] = minutes * 60
    return row


def test_seed_summary_and_paired_differences():
    rows = [seed_row('CE-Net', 0, 0.970), seed_row('U-Net', 0, 0.972, minutes=18.0),
            seed_row('CE-Net', 1, 0.968), seed_row('U-Net', 1, 0.965, minutes=18.0),
            seed_row('CE-Net', 2, 0.969), seed_row('U-Net', 2, 0.966, minutes=18.0),
            {**seed_row('mean', 0, 0.9), 'workdir': ''}]
    assert seed_stats.has_seed_repeats(rows) and not seed_stats.has_seed_repeats(rows[:2])
    summary = {e['label']: e for e in seed_stats.seed_summary(rows, 'd8', ['auc', 'acc'])}
    assert set(summary) == {'CE-Net', 'U-Net'} and summary['U-Net']['seeds'] == [0, 1, 2]
    assert summary['CE-Net']['metrics']['auc']['mean'] == pytest.approx(0.969)
    assert summary['CE-Net']['metrics']['auc']['std'] == pytest.approx(statistics.stdev([0.970, 0.968, 0.969]))
    assert summary['U-Net']['train_minutes'] == pytest.approx(18.0)
    (pair,) = seed_stats.paired(rows, 'CE-Net', 'd8', 'auc')
    assert pair['other'] == 'U-Net' and pair['n'] == 3 and pair['wins'] == 2
    assert pair['per_seed'] == pytest.approx({0: -0.002, 1: 0.003, 2: 0.003})
    diffs = [-0.002, 0.003, 0.003]
    half = 4.302652729911275 * statistics.stdev(diffs) / 3 ** 0.5     # t(0.975, 2 dof)
    assert pair['mean'] == pytest.approx(statistics.fmean(diffs))
    assert pair['ci95'] == pytest.approx((pair['mean'] - half, pair['mean'] + half))
    # a variant that shares no seed with the reference is not paired
    assert seed_stats.paired(rows + [seed_row('Backbone', 7, 0.9)], 'CE-Net', 'd8', 'auc')[-1]['other'] == 'U-Net'
    lines = '\n'.join(seed_stats.markdown(rows, 'd8', ['auc', 'acc'], results.METRIC_NAMES, 'CE-Net'))
    assert '| CE-Net | 300 | 0,1,2 | 0.9690 ± 0.0010 | 0.9500 ± 0.0000 | 6.0 |' in lines
    assert '| AUC | U-Net | 0: -0.0020, 1: +0.0030, 2: +0.0030 | +0.0013 ± 0.0029 |' in lines
    assert '| 2 of 3 |' in lines



def test_paired_counts_a_lower_error_as_ahead_and_leaves_the_experts_spread_out():
    """disc E and the CDR error are better when smaller; the experts' spread describes the test
    images (the same for every run) and is not compared."""
    def disc_row(label, seed, e_disc, spread=0.063):
        row = fake_row(label, 0.9, seed)
        row['evals'] = {'d8': {**row['evals']['d8'], 'scores': {
            'E_disc': {'mean': e_disc, 'std': 0.02}, 'cdr_expert_spread': {'mean': spread, 'std': 0.03}}}}
        return row
    rows = [disc_row('CE-Net', 0, 0.048), disc_row('U-Net', 0, 0.061),
            disc_row('CE-Net', 1, 0.047), disc_row('U-Net', 1, 0.046),
            disc_row('CE-Net', 2, 0.050), disc_row('U-Net', 2, 0.070)]
    (pair,) = seed_stats.paired(rows, 'CE-Net', 'd8', 'E_disc', lower_is_better=True)
    assert pair['per_seed'] == pytest.approx({0: -0.013, 1: 0.001, 2: -0.020}) and pair['wins'] == 2
    assert seed_stats.paired(rows, 'CE-Net', 'd8', 'E_disc')[0]['wins'] == 1   # higher is better: seed 1
    lines = '\n'.join(seed_stats.markdown(rows, 'd8', ['E_disc', 'cdr_expert_spread'], results.METRIC_NAMES,
                                          'CE-Net', lower_is_better=results.LOWER_IS_BETTER,
                                          not_compared=results.DATA_COLUMNS))
    assert "| experts' CDR spread | U-Net |" not in lines and "0.0630 ± 0.0000" in lines
    assert '| disc E | U-Net | 0: -0.0130, 1: +0.0010, 2: -0.0200 |' in lines and '| 2 of 3 |' in lines
    assert 'disc E: lower is better, so a negative difference is CE-Net ahead.' in lines

def test_ablation_report_adds_the_seed_statistics(tmp_path):
    result = {'command': 'python experiments/results.py ablation --data D', 'git_commit': 'c',
              'finished': 'now', 'wall_minutes': 1.0, 'figures': [],
              'hardware': {'cpu': 'CPU', 'cores': 2, 'memory_gb': 1.0, 'jax': '1', 'flax': '1'},
              'rows': [seed_row('CE-Net', 0, 0.97), seed_row('Backbone', 0, 0.96),
                       seed_row('CE-Net', 1, 0.968), seed_row('Backbone', 1, 0.962)]}
    text = results.markdown('ablation', results.TABLES['ablation'], result)
    assert '| CE-Net | 1 | d8 |' in text and 'Mean ± std over seeds' in text
    assert '| AUC | Backbone | 0: +0.0100, 1: +0.0060 |' in text
    single = results.markdown('ablation', results.TABLES['ablation'], {**result, 'rows': result['rows'][:2]})
    assert 'Mean ± std over seeds' not in single


def test_a_threshold_table_scores_again_at_the_threshold_chosen_on_training_images(tmp_path, monkeypatch):
    table = results.TABLES['levers']
    workdir = tmp_path / 'run'
    commands = fake_commands(monkeypatch)
    row = results.train_and_score(table, table.runs[0], workdir, '/data', False)
    calls = [c[1:2] + [a for a in c if a.startswith(('--split', '--config.eval.threshold'))] for c in commands]
    assert calls == [['train.py'], ['eval.py', '--split=val'], ['experiments/threshold.py', '--split=train'],
                     ['eval.py', '--split=val', '--config.eval.threshold=0.65']]
    assert list(row['evals']) == ['d8', 'd8, t=0.65 (chosen on train)']
    assert row['threshold']['chosen_threshold'] == pytest.approx(0.65)
    again = results.train_and_score(table, table.runs[0], workdir, '/data', False)
    assert len(commands) == 4 and again['evals'] == row['evals']      # finished and scored: nothing runs
    result = {'command': 'c', 'git_commit': 'c', 'finished': 'now', 'wall_minutes': 1.0, 'figures': [],
              'hardware': {'cpu': 'CPU', 'cores': 2, 'memory_gb': 1.0, 'jax': '1', 'flax': '1'}, 'rows': [row]}
    text = results.markdown('levers', table, result)
    assert '| d8, t=0.65 (chosen on train) |' in text and 'on the 28 val images' in text
    assert 't = 0.65 on 1 train images (d8)' in text


def test_only_a_run_at_its_last_step_counts_as_finished(tmp_path):
    workdir = tmp_path / 'w'
    (workdir / 'checkpoints' / 'latest' / '600').mkdir(parents=True)
    (workdir / 'config.json').write_text(json.dumps({'num_train_steps': 1000}))
    assert not results.finished_training(workdir)          # interrupted: train.py resumes it
    (workdir / 'checkpoints' / 'latest' / '1000').mkdir()
    assert results.finished_training(workdir)
    assert not results.finished_training(tmp_path / 'nothing')


@pytest.mark.parametrize('architecture, expected', [('cenet', {'context': ['dac'], 'dac_atrous': True}),
                                                    ('unet', {})])
def test_recipe_summary_lists_context_fields_only_for_cenet(tmp_path, architecture, expected):
    """U-Net has no context extractor, so its recipe line does not list the unused CE-Net fields."""
    (tmp_path / 'config.json').write_text(json.dumps({
        'num_train_steps': 10, 'batch_size': 8, 'seed': 1,
        'data': {'image_size': [64, 64], 'crop_size': None},
        'optim': {'name': 'adam', 'lr': 1e-3, 'schedule': 'poly', 'warmup_steps': 0},
        'loss': {'kind': 'dice'},
        'model': {'architecture': architecture, 'context': ['dac'], 'dac_atrous': True}}))
    summary = results.run_config_summary(tmp_path)
    assert summary['architecture'] == architecture and summary['variant_fields'] == expected


def test_per_image_changes_show_whether_a_gain_holds_on_every_image(tmp_path):
    """Run b gains on one image only; the report says so (1 of 2) beside the changes."""
    per_run = {'a': {'21': (0.95, 0.94), '34': (0.90, 0.93)}, 'b': {'21': (0.94, 0.95), '34': (0.93, 0.93)}}
    rows = []
    for label, images in per_run.items():
        row = {**fake_row(label, 0.9), 'workdir': str(tmp_path / label)}
        out = tmp_path / label / 'eval' / 'val_d8'
        out.mkdir(parents=True)
        (out / 'per_image.csv').write_text('id,auc,acc\n' + ''.join(f'{k},{a},{c}\n' for k, (a, c) in images.items()))
        rows.append(row)
    lines = per_image.changes_against_first(rows, 'val', 'd8', ['auc', 'acc'], results.METRIC_NAMES)
    assert 'images 21, 34' in lines[0]
    assert lines[-1] == '| b | -0.0100, +0.0300 | +0.0100, +0.0000 | 1 of 2 | 1 of 2 |'
    table = results.TABLES['levers']
    result = {'command': 'c', 'git_commit': 'g', 'finished': 'now', 'wall_minutes': 1.0, 'figures': [],
              'hardware': {'cpu': 'C', 'cores': 2, 'memory_gb': 1, 'jax': '0', 'flax': '0'}, 'rows': rows}
    assert lines[-1] in results.markdown('levers', table, result)
    gone = rows + [{**fake_row('c', 0.9), 'workdir': str(tmp_path / 'elsewhere')}]   # --report-only elsewhere
    assert 'not shown, 1 per-image tables are not on this machine' in \
        per_image.changes_against_first(gone, 'val', 'd8', ['auc'], results.METRIC_NAMES)[0]


def test_experiments_import_each_other_without_a_cycle():
    """results.py imports cross_dataset.py; what both need lives in modules below them."""
    folder = Path(results.__file__).parent
    names = {path.stem for path in folder.glob('*.py')}
    graph = {}
    for path in folder.glob('*.py'):
        tree = ast.parse(path.read_text())
        found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        found |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        graph[path.stem] = found & names
    assert 'cross_dataset' in graph['results'] and 'results' not in graph['cross_dataset']
    done, visiting = set(), []

    def visit(name):
        assert name not in visiting, f'import cycle: {" -> ".join(visiting + [name])}'
        if name not in done:
            visiting.append(name)
            for other in sorted(graph[name]):
                visit(other)
            visiting.pop()
            done.add(name)
    for name in sorted(graph):
        visit(name)


def test_paper_level_seeds_runs_the_chosen_cenet_recipe_at_three_seeds_reusing_seed_0():
    seeds, paper_level = results.TABLES['paper_level_seeds'], results.TABLES['paper_level']
    assert [r.seed for r in seeds.runs] == [0, 1, 2] and len({r.label for r in seeds.runs}) == 1
    assert {(r.variant, r.overrides, r.steps) for r in seeds.runs} == {
        ('cenet', results.BF16 + results.CHOSEN_LEVERS, results.CHOSEN_STEPS)}
    # seed 0 is paper_level's run: the workdir name it was trained under is unchanged
    name = 'drive_cpu-cenet-s0-3000steps-model.dtype-bfloat16-optim.lr-0.002-data.image-size-768-768'
    assert results.workdir_name(seeds, seeds.runs[0], seeds.steps) == name
    assert results.workdir_name(paper_level, paper_level.runs[2], paper_level.steps) == name
    assert results.workdir_name(seeds, seeds.runs[2], seeds.steps) == name.replace('-s0-', '-s2-')
    assert seeds.split == 'test' and seeds.threshold_split == 'train' and seeds.versus_paper == 'CE-Net'
    train = results.train_command(seeds, seeds.runs[1], Path('W'), 'D', seeds.steps)
    assert '--config.seed=1' in train and '--config.optim.lr=0.002' in train
    assert '--config.num_train_steps=3000' in train and '--config.data.image_size=(768, 768)' in train


def test_tables_that_score_or_choose_on_val_hold_out_validation_images():
    """'val' is never the test split: a table using it must train with data.val_fraction > 0."""
    for name, table in results.TABLES.items():
        if 'val' in (table.split, table.threshold_split):
            for run in table.runs:
                fraction = [float(o.split('=')[1]) for o in run.overrides if o.startswith('data.val_fraction=')]
                assert fraction and fraction[-1] > 0, (name, run.label)


def test_threshold_on_val_without_validation_images_is_an_error_before_any_model_loads(tmp_path):
    make_drive(tmp_path / 'DRIVE', count=2)
    config = drive_cpu.get_config()
    config.data.root = str(tmp_path / 'DRIVE')
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'config.json').write_text(config.to_json_best_effort())   # no checkpoint at all
    with pytest.raises(NoValidationSplit, match='data.val_fraction is 0.*--split=train chooses on the images'):
        threshold.main(['--workdir', str(tmp_path / 'run'), '--split', 'val'])


def test_a_report_records_each_runs_training_commit_diff_commands_and_facts(tmp_path, monkeypatch):
    """paper_level_seeds end to end with the processes faked: seed 0 was trained by an earlier
    paper_level invocation (its commit comes from that report), seeds 1 and 2 train now at a
    dirty tree (the diff is saved in the workdir and beside the report)."""
    table = results.TABLES['paper_level_seeds']
    out, runs = tmp_path / 'docs', tmp_path / 'runs'
    calls = fake_commands(monkeypatch)
    monkeypatch.setattr(provenance, 'git_commit', lambda: 'old0')
    seed0 = runs / results.workdir_name(table, table.runs[0], table.steps)
    earlier = results.train_and_score(table, table.runs[0], seed0, '/data', False)
    (seed0 / provenance.TRAINED_AT).unlink()                  # trained before the runner recorded it
    out.mkdir()
    (out / 'paper_level.json').write_text(json.dumps({'git_commit': 'old0+dirty', 'finished': 'then', 'rows': [
        {**earlier, 'trained_at': [], 'reused': False}]}))
    del calls[:]
    edits = 'diff --git a/cenet_jax/x.py b/cenet_jax/x.py\n+an edit\n'
    monkeypatch.setattr(provenance, 'git_commit', lambda: 'new1+dirty')
    monkeypatch.setattr(provenance, 'git_diff', lambda: edits)
    monkeypatch.setenv('CENET_JAX_ONEDNN_THREADS', '3')         # part of the arithmetic: recorded
    monkeypatch.setattr(results, 'save_loss_curves', lambda rows, path: None)
    result = results.run_table('paper_level_seeds', '/data', out, runs, False, None, (), ['experiments/results.py'])
    trained = [next(a for a in c if a.startswith('--config.seed=')) for c in calls if c[1] == 'train.py']
    assert trained == ['--config.seed=1', '--config.seed=2']           # seed 0 is finished: reused
    first, second = result['rows'][:2]
    assert first['trained_at'][0]['commit'] == 'old0+dirty' and 'paper_level.json' in first['trained_at'][0]['source']
    (entry,) = second['trained_at']
    assert entry['commit'] == 'new1+dirty' and entry['from_step'] == 0 and 'train.py' in entry['command']
    assert entry['onednn_threads'] == 3
    assert (Path(second['workdir']) / entry['diff']).read_text() == edits == (out / entry['diff']).read_text()
    assert result['git_diff'] == entry['diff']                # the invocation's edits: the same file
    assert set(second['eval_commands']) == {'d8', 'd8, t=0.65 (chosen on train)'}
    assert 'experiments/threshold.py' in second['threshold_command']
    assert second['speed']['last'] == {'step': 3000, 'images_per_sec': 12.5}
    text = (out / 'paper_level_seeds.md').read_text()
    assert f'uncommitted edits: [{entry["diff"]}]({entry["diff"]})' in text
    assert 'trained at: `old0+dirty` (from paper_level.json: its invocation, finished then, trained' in text
    assert f'trained at: `new1+dirty` (uncommitted edits: [{entry["diff"]}]({entry["diff"]})) from step 0 on ' \
           f'{entry["started"]}, oneDNN: 3 threads\n' in text
    assert '  - eval (d8, t=0.65 (chosen on train)): `' in text and '  - threshold: `' in text
    assert 'per-image mean ± sample std (n - 1)' in text
    assert "#### Mean ± std over seeds (d8, each run's threshold chosen on train)" in text
    assert '| CE-Net, the chosen levers: lr 2e-3, 768 px, 3000 steps: mean ± std over seeds | 0,1,2 | d8 | ' \
           '-0.1309 ± 0.0000 | -0.0045 ± 0.0000 | -0.0079 ± 0.0000 |' in text
    assert '| Sen (paper 0.8309) | Acc (paper 0.9545) | AUC (paper 0.9779) |' in text
    assert '| 0.8718 (±0.00001) | 0.8729 ± 0.0294 | 0.0328 ± 0.0106 | 0.0964 / 0.0283 | 23.7 % | ' \
           '297,981 / 4,538,143 |' in text
    assert '| 571.4 | 24.0 (step 25) | 12.5 (step 3000) |' in text
    assert '#### Paired per seed' not in text                # one label: nothing to pair


def test_reports_say_which_std_their_runs_were_scored_with():
    old = fake_row('CE-Net', 0.97)['evals']['d8']                        # eval.py before std_ddof
    new = {**old, 'std_ddof': 1}
    assert runner_common.std_words([new, new]) == 'sample std (n - 1)'
    assert runner_common.std_words([old]).startswith('population std (n)')
    assert runner_common.std_words([old, new]).startswith('sample std (n - 1), except')
    assert runner_common.format_value(0.5, float('nan')) == '0.5000' == runner_common.format_value(0.5)
    lines = seed_stats.markdown([seed_row('CE-Net', 0, 0.97)], 'd8', ['auc'], results.METRIC_NAMES, 'CE-Net')
    assert '| CE-Net | 300 | 0 | 0.9700 (1 seed) | 6.0 |' in lines


def test_fov_agreement_report_scores_each_split_of_drive(tmp_path):
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[:, :2] = True
    assert fov_agreement.agreement(a, a) == {'iou': 1.0, 'dice': 1.0}
    assert fov_agreement.agreement(a, b) == pytest.approx({'iou': 4 / 12, 'dice': 0.5})
    make_drive(tmp_path / 'DRIVE', count=3)
    result = fov_agreement.main(['--data', str(tmp_path / 'DRIVE'), '--out', str(tmp_path / 'out')])
    assert set(result['splits']) == {'test', 'train'} and result['splits']['test']['images'] == 3
    assert [r['id'] for r in result['per_image']['train']] == ['21_training', '22_training', '23_training']
    text = (tmp_path / 'out' / 'fov_drive.md').read_text()
    assert '| test | 3 |' in text and 'fov_agreement.py --data' in text
    assert json.loads((tmp_path / 'out' / 'fov_drive.json').read_text())['splits'] == result['splits']


def test_a_resumed_run_s_training_time_is_an_estimate_from_its_timed_steps_and_says_so(tmp_path):
    """A run whose first invocation was cut off (no time recorded) and then resumed at step 600 of
    1250 gets the resumed part's seconds scaled to all its steps, flagged; a run timed from step 0
    gets the plain sum."""
    (tmp_path / 'config.json').write_text(json.dumps({'num_train_steps': 1250}))
    recorded = results.record_train_segment(tmp_path, 600, 650.0)
    assert recorded['train_seconds'] == pytest.approx(1250.0) and recorded['train_seconds_estimated']
    row = {'train_seconds': recorded['train_seconds'], 'train_seconds_estimated': True}
    assert results.train_minutes_cell(row) == '≈20.8'
    whole = tmp_path / 'whole'
    whole.mkdir()
    (whole / 'config.json').write_text(json.dumps({'num_train_steps': 1250}))
    assert results.record_train_segment(whole, 0, 1500.0) == {
        'train_seconds': 1500.0, 'segments': [{'from_step': 0, 'to_step': 1250, 'seconds': 1500.0}]}
    assert results.train_minutes_cell({'train_seconds': 1500.0}) == '25.0'
