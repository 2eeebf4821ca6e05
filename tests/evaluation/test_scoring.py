"""Tests of cenet_jax.evaluation (tasks, records -> scores, merging, report files) and
cenet_jax.figures."""
import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from cenet_jax import evaluation, figures
from cenet_jax.evaluation.gather import result_from_bytes, result_to_bytes
from cenet_jax.evaluation.scoring import on_full_image
from cenet_jax.evaluation.tasks import OCT_MAE_KEYS


def _binary_records(count=4, size=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        label = (rng.random(size) < 0.3).astype(np.int32)
        fov = np.ones(size, bool)
        fov[:, :3] = False
        records.append({'image': rng.integers(0, 256, size + (3,), dtype=np.uint8), 'label': label,
                        'fov': fov, 'id': f'img/{index}'})
    return records


def _perfect_binary(record):
    return (record['label'] * 0.9 + 0.05)[..., None].astype(np.float32)


def _noisy_binary(record):
    rng = np.random.default_rng(abs(hash(record['id'])) % 1000)
    return np.clip(record['label'] * 0.6 + rng.random(record['label'].shape) * 0.5, 0, 1)[..., None]


def _oct_records(count=3, height=48, width=20):
    records = []
    for index in range(count):
        boundaries = np.stack([np.full(width, 4.0 * k + index) for k in range(1, 11)])
        rows = np.arange(height)[None, :, None]
        label = np.sum(rows >= boundaries[:, None, :], axis=0).astype(np.int32)
        records.append({'image': np.zeros((height, width, 3), np.uint8), 'label': label,
                        'boundaries': boundaries, 'id': f'oct{index}'})
    return records


def _one_hot_probs(record, num_classes=11):
    return np.eye(num_classes, dtype=np.float32)[record['label']]


def test_paper_numbers_are_consistent():
    vessel = evaluation.TASKS['vessel'].paper['DRIVE']['CE-Net']
    assert (vessel['sen'], vessel['acc'], vessel['auc']) == (0.8309, 0.9545, 0.9779)
    assert evaluation.TASKS['cell'].paper['ISBI2012']['CE-Net'] == {'v_rand': 0.9743, 'v_info': 0.9878}
    assert evaluation.TASKS['disc'].paper['ORIGA']['CE-Net']['E'] == (0.058, 0.032)
    for method, row in evaluation.TASKS['oct'].paper['Topcon'].items():
        boundaries = [row[key] for key in OCT_MAE_KEYS[:10] if key in row]
        if 'mae_overall' in row:  # the paper's Overall column is the mean of the 10 boundaries
            assert len(boundaries) == 10
            assert row['mae_overall'] == pytest.approx(np.mean(boundaries), abs=0.006), method


@pytest.mark.parametrize('task', ['vessel', 'disc', 'lung'])
def test_perfect_predictor_scores_perfectly_on_binary_tasks(task):
    result = evaluation.evaluate_records(_binary_records(), _perfect_binary, task=task, paper_key='')
    aggregate = result.aggregate
    assert aggregate['E'].mean == 0.0 and aggregate['acc'].mean == 1.0 and aggregate['sen'].mean == 1.0
    assert result.pooled['E'] == 0.0 and result.pooled['acc'] == 1.0
    if task == 'vessel':
        assert aggregate['auc'].mean == 1.0 and result.pooled['auc'] == 1.0
    assert len(result.rows) == 4 and result.rows[0]['id'] == 'img/0'
    assert result.paper_key == evaluation.TASKS[task].default_paper_key


def test_fov_excludes_outside_pixels():
    records = _binary_records()

    def wrong_outside(record):
        probs = _perfect_binary(record)
        probs[~record['fov']] = 1.0 - probs[~record['fov']]
        return probs

    inside = evaluation.evaluate_records(records, wrong_outside, task='vessel')
    everywhere = evaluation.evaluate_records(records, wrong_outside, task='vessel', use_fov=False)
    assert inside.aggregate['acc'].mean == 1.0 and inside.pooled['auc'] == 1.0
    assert everywhere.aggregate['acc'].mean < 1.0


def test_cell_and_oct_tasks():
    rng = np.random.default_rng(1)
    membrane = np.zeros((32, 32), np.int32)
    membrane[::8] = 1
    membrane[:, ::8] = 1
    cells = [{'image': rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), 'label': membrane,
              'id': 'slice0'}]
    cell = evaluation.evaluate_records(cells, _perfect_binary, task='cell', cell_thresholds=(0.3, 0.7))
    assert cell.aggregate['v_rand'].mean == pytest.approx(1.0)
    assert cell.aggregate['v_info'].mean == pytest.approx(1.0)
    assert evaluation.cell_threshold_sweep(cell)['v_rand'] == pytest.approx(1.0)
    raw_encoding = [dict(cells[0], label=1 - membrane)]  # the ISBI PNGs: 0 = membrane, 1 = cell
    inverted = evaluation.evaluate_records(raw_encoding, _perfect_binary, task='cell', membrane_class=0,
                                           extra_settings={'tta': 'd8'})
    assert inverted.aggregate['v_rand'].mean == pytest.approx(1.0) and inverted.settings['tta'] == 'd8'
    with pytest.raises(ValueError, match='membrane_class'):
        evaluation.evaluate_records(raw_encoding, _perfect_binary, task='cell', membrane_class=2)
    oct_result = evaluation.evaluate_records(_oct_records(), _one_hot_probs, task='oct')
    assert oct_result.aggregate['mae_overall'].mean == 0.0
    assert oct_result.pooled['mae_overall'] == 0.0


def test_oct_errors_pool_over_columns():
    records = _oct_records()

    def one_row_low(record):
        probs = _one_hot_probs(record)
        lower = np.concatenate([probs[:1], probs[:-1]])  # every boundary 1 px lower
        return lower if record['id'] == 'oct0' else probs

    result = evaluation.evaluate_records(records, one_row_low, task='oct')
    assert result.rows[0]['mae_overall'] == pytest.approx(1.0)
    assert result.aggregate['mae_overall'].mean == pytest.approx(1 / 3)
    assert result.pooled['mae_1'] == pytest.approx(1 / 3)


@pytest.mark.parametrize('task,records,predictor', [
    ('vessel', _binary_records(6, seed=3), _noisy_binary),
    ('oct', _oct_records(4), _one_hot_probs),
])
def test_split_evaluation_merges_to_the_whole(task, records, predictor):
    whole = evaluation.evaluate_records(records, predictor, task=task)
    halves = [evaluation.evaluate_records(records[:3], predictor, task=task),
              evaluation.evaluate_records(records[3:], predictor, task=task)]
    shipped = [result_from_bytes(result_to_bytes(part)) for part in halves]
    merged = evaluation.merge_results(shipped)
    assert merged.pooled == whole.pooled
    assert merged.aggregate == whole.aggregate
    assert evaluation.gather_result(whole) is whole  # one process: nothing to gather


def test_histogram_auc_option_is_close_and_bounded():
    records = _binary_records(4, seed=4)
    exact = evaluation.evaluate_records(records, _noisy_binary, task='vessel')
    binned = evaluation.evaluate_records(records, _noisy_binary, task='vessel', pooled_auc='histogram')
    assert abs(binned.pooled['auc'] - exact.pooled['auc']) <= binned.pooled['auc_histogram_max_error']


def test_table_json_and_csv(tmp_path):
    result = evaluation.evaluate_records(_binary_records(), _noisy_binary, task='vessel')
    table = evaluation.format_table(result)
    assert '| CE-Net (paper) | 0.8309 | 0.9545 | 0.9779 |' in table
    assert 'ours (per-image mean±std)' in table and 'ours (pooled)' in table
    evaluation.write_metrics_json(result, tmp_path / 'metrics.json')
    summary = json.loads((tmp_path / 'metrics.json').read_text())
    assert summary['num_images'] == 4 and summary['paper']['CE-Net']['auc'] == 0.9779
    assert summary['aggregate']['sen']['mean'] == pytest.approx(result.aggregate['sen'].mean)
    evaluation.write_per_image_csv(result, tmp_path / 'per_image.csv')
    with open(tmp_path / 'per_image.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert [row['id'] for row in rows] == ['img/0', 'img/1', 'img/2', 'img/3']
    assert float(rows[1]['auc']) == pytest.approx(result.rows[1]['auc'])


def test_nan_scores_are_written_as_null(tmp_path):
    records = [{'image': np.zeros((8, 8, 3), np.uint8), 'label': np.zeros((8, 8), np.int32), 'id': 'empty'}]
    result = evaluation.evaluate_records(records, _perfect_binary, task='lung')
    assert math.isnan(result.rows[0]['sen'])
    evaluation.write_metrics_json(result, tmp_path / 'm.json')
    assert json.loads((tmp_path / 'm.json').read_text())['aggregate']['sen']['mean'] is None


def test_bad_records_raise_clear_errors():
    records = _binary_records(1)
    bad_label = [dict(records[0], label=records[0]['label'] * 255)]
    with pytest.raises(ValueError, match="img/0.*255"):
        evaluation.evaluate_records(bad_label, _perfect_binary, task='vessel')
    with pytest.raises(ValueError, match='label size'):
        evaluation.evaluate_records(records, lambda r: np.zeros((5, 5, 1)), task='vessel')
    with pytest.raises(ValueError, match='unknown task'):
        evaluation.evaluate_records(records, _perfect_binary, task='retina')
    with pytest.raises(ValueError, match='paper numbers'):
        evaluation.evaluate_records(records, _perfect_binary, task='vessel', paper_key='STARE')


def test_prediction_figures_have_the_documented_size(tmp_path):
    records = _binary_records(2)
    evaluation.evaluate_records(records, _noisy_binary, task='vessel', figure_dir=tmp_path / 'figs')
    zoom = figures.panel_zoom(records[0]['label'].shape)
    height, width = (zoom * n for n in records[0]['label'].shape)
    with Image.open(tmp_path / 'figs' / 'img_0.png') as png:
        assert png.format == 'PNG'
        assert png.size == (5 * width + 4 * figures.PANEL_GAP, height + figures.caption_height(width))
    oct_record = _oct_records(1)[0]
    path = tmp_path / 'oct.png'
    figures.save_prediction_figure(path, oct_record['image'], oct_record['label'], oct_record['label'])
    with Image.open(path) as png:
        pixels = np.asarray(png.convert('RGB'))
        zoom = figures.panel_zoom((48, 20))
        assert zoom == 10  # 20 px wide -> enlarged to 200 px
        assert png.size == (4 * 20 * zoom + 3 * figures.PANEL_GAP, 48 * zoom + figures.caption_height(20 * zoom))
    w = 20 * zoom
    ground_truth = pixels[figures.caption_height(w):, w + figures.PANEL_GAP:2 * w + figures.PANEL_GAP]
    assert len(np.unique(ground_truth.reshape(-1, 3), axis=0)) == 11  # one palette colour per class


def _caption_text_rows(path, panel_width: int) -> int:
    """Number of pixel rows of the first panel's caption strip that hold dark (text) pixels."""
    with Image.open(path) as png:
        strip = np.asarray(png.convert('L'))[:figures.caption_height(panel_width), :panel_width]
    return int((strip < 128).any(axis=1).sum())


def test_caption_text_scales_with_the_panel(tmp_path):
    """A DRIVE-sized figure (565 px panels) gets captions several times taller than a 100 px one."""
    rows = {}
    for width in (100, 565):
        image = np.zeros((width, width), np.uint8)
        figures.save_prediction_figure(tmp_path / f'{width}.png', image, image, image)
        rows[width] = _caption_text_rows(tmp_path / f'{width}.png', width)
    assert figures.caption_font_size(565) >= 2 * figures.caption_font_size(100)
    assert rows[565] >= 2 * rows[100] > 0
    assert rows[565] >= 0.025 * 565  # at least 2.5 % of the panel width: readable when shrunk to a page


def test_curve_png(tmp_path):
    steps = np.arange(30)
    figures.save_curve_png(tmp_path / 'loss.png', steps,
                           {'train': np.exp(-steps / 10.0), 'val': (steps[::10], [0.9, 0.5, float('nan')])},
                           title='loss', log_y=True, size=(320, 200))
    with Image.open(tmp_path / 'loss.png') as png:
        assert png.format == 'PNG' and png.size == (320, 200)
        assert len(np.unique(np.asarray(png.convert('RGB')).reshape(-1, 3), axis=0)) > 3
    with pytest.raises(ValueError, match='one value per step'):
        figures.save_curve_png(tmp_path / 'bad.png', steps, {'train': [1.0, 2.0]})
    assert figures.nice_ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def _disc_cup_record(crop_box=None, cdr_experts=(0.5, 0.4, 0.45, 0.55)):
    """A 40 x 50 disc-and-cup record: disc rows 10..29 x cols 28..47 (20 rows), cup rows 15..24
    (10 rows); cut to `crop_box` (top, left, bottom, right) as the disc crop does, if given."""
    label = np.zeros((40, 50), np.int32)
    label[10:30, 28:48] = 1
    label[15:25, 33:43] = 2
    record = {'image': np.full((40, 50, 3), 90, np.uint8), 'label': label, 'id': 'drishtiGS_001',
              'fov': np.ones((40, 50), bool)}
    if cdr_experts is not None:
        record['cdr_experts'] = np.array(cdr_experts, np.float32)
    if crop_box is None:
        return record
    top, left, bottom, right = crop_box
    return {**record, 'image': record['image'][top:bottom, left:right], 'label': label[top:bottom, left:right],
            'fov': record['fov'][top:bottom, left:right], 'full_label': label.astype(np.uint8),
            'crop_box': np.array(crop_box, np.int32)}


def _one_hot_3(record):
    return np.eye(3, dtype=np.float32)[record['label']]


def test_on_full_image_pastes_the_crop_and_leaves_other_records_alone():
    whole = _disc_cup_record()
    pred, label = on_full_image(whole['label'], whole)
    assert pred is whole['label'] and label is whole['label']
    cropped = _disc_cup_record(crop_box=(5, 10, 35, 40))
    pred, label = on_full_image(cropped['label'], cropped)
    assert pred.shape == label.shape == (40, 50)
    np.testing.assert_array_equal(label, whole['label'])
    np.testing.assert_array_equal(pred[5:35, 10:40], cropped['label'])
    assert not pred[:, 40:].any() and not pred[:5].any()      # nothing predicted outside the crop


def test_disc_cup_scores_on_the_whole_image_count_a_disc_outside_the_crop_as_missed():
    """The crop (cols 10..39) cuts the disc (cols 28..47) and the cup (33..42): a perfect
    prediction on the crop still misses the disc's 8 and the cup's 3 columns outside it."""
    record = _disc_cup_record(crop_box=(5, 10, 35, 40))
    row = evaluation.evaluate_records([record], _one_hot_3, task='disc_cup').rows[0]
    disc_found, disc_all = 20 * 12, 20 * 20
    cup_found, cup_all = 10 * 7, 10 * 10
    assert row['E_disc'] == pytest.approx(1 - disc_found / disc_all)
    assert row['dice_disc'] == pytest.approx(2 * disc_found / (disc_found + disc_all))
    assert row['E_cup'] == pytest.approx(1 - cup_found / cup_all)
    assert row['dice_cup'] == pytest.approx(2 * cup_found / (cup_found + cup_all))
    assert row['cdr'] == pytest.approx(0.5) and row['cdr_from_label'] == pytest.approx(0.5)  # vertical only
    assert row['cdr_experts'] == pytest.approx(0.475, abs=1e-6) and row['cdr_error'] == pytest.approx(0.025, abs=1e-6)
    experts = [0.5, 0.4, 0.45, 0.55]
    by_hand = np.mean([abs(v - np.mean(np.delete(experts, i))) for i, v in enumerate(experts)])
    assert row['cdr_expert_spread'] == pytest.approx(by_hand, abs=1e-6)


def test_disc_cup_row_of_a_whole_image_without_expert_cdrs():
    record = _disc_cup_record(cdr_experts=None)
    probs = _one_hot_3(record)
    probs[15:25, 33:43] = np.eye(3, dtype=np.float32)[1]         # the cup predicted as rim
    result = evaluation.evaluate_records([record], lambda r: probs, task='disc_cup')
    row = result.rows[0]
    assert row['E_disc'] == 0.0 and row['dice_disc'] == 1.0 and row['dice_cup'] == 0.0 and row['E_cup'] == 1.0
    assert row['cdr'] == 0.0 and row['cdr_from_label'] == pytest.approx(0.5)
    assert all(math.isnan(row[k]) for k in ('cdr_experts', 'cdr_error', 'cdr_expert_spread'))


@pytest.mark.parametrize('channels', [1, 2, 4])
def test_disc_cup_needs_a_three_class_model(channels):
    record = _disc_cup_record()
    with pytest.raises(ValueError, match=rf"'disc_cup' task needs a softmax model .*got K = {channels}"):
        evaluation.evaluate_records([record], lambda r: np.zeros((40, 50, channels), np.float32),
                                    task='disc_cup')


def test_disc_cup_figures_outline_disc_and_cup_on_the_crop(tmp_path):
    record = _disc_cup_record(crop_box=(5, 10, 35, 40))
    evaluation.evaluate_records([record], _one_hot_3, task='disc_cup', figure_dir=tmp_path)
    zoom = figures.panel_zoom((30, 30))
    with Image.open(tmp_path / 'drishtiGS_001.png') as png:
        assert png.format == 'PNG'
        assert png.size == (30 * zoom, 30 * zoom + figures.caption_height(30 * zoom))   # one panel: the crop
        colours = {tuple(c) for c in np.asarray(png.convert('RGB')).reshape(-1, 3)}
    assert {figures.PRED_DISC_COLOUR, figures.PRED_CUP_COLOUR} <= colours
    label, pred = record['label'], np.zeros_like(record['label'])
    path = tmp_path / 'with_uncertainty.png'
    figures.save_disc_cup_figure(path, record['image'], label, pred, caption='x',
                                 uncertainty=np.full((30, 30), 0.2, np.float32))
    with Image.open(path) as png:
        assert png.size == (2 * 30 * zoom + figures.PANEL_GAP, 30 * zoom + figures.caption_height(30 * zoom))
        colours = {tuple(c) for c in np.asarray(png.convert('RGB')).reshape(-1, 3)}
    assert {figures.TRUE_DISC_COLOUR, figures.TRUE_CUP_COLOUR} <= colours
    assert figures.PRED_DISC_COLOUR not in colours                 # nothing predicted: no red outline
    with pytest.raises(ValueError, match=r'pred has shape \(40, 50\), expected the image size \(30, 30\)'):
        figures.save_disc_cup_figure(path, record['image'], label, np.zeros((40, 50), np.int32))
