"""TTA uncertainty: the per-pixel std of the views (evaluation.predict), its per-image scores and
pooled AUC against the errors (evaluation.scoring), the figure panel, the reports and the .npy
maps. Small arrays, tiny functions: no model is compiled."""
import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from cenet_jax import evaluation, figures
from cenet_jax.evaluation.gather import result_from_bytes, result_to_bytes
from cenet_jax.evaluation.tta import tta_views, undo_tta_views
from cenet_jax.losses import probabilities
from cenet_jax.metrics import auc
from tests.evaluation.test_predict import pointwise_logits, ramp_logits


@pytest.fixture(scope='module')
def batch():
    return jnp.asarray(np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype(np.float32))


@pytest.mark.parametrize('mode', ['d8', 'flips'])
def test_std_is_the_spread_of_the_views_mapped_back(batch, mode):
    mean, std = evaluation.predict_probs(ramp_logits, batch, tta=mode, with_std=True)
    views = undo_tta_views(probabilities(jnp.stack([ramp_logits(v) for v in tta_views(batch, mode)])),
                           mode)
    np.testing.assert_allclose(np.asarray(mean), np.asarray(views).mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(std), np.asarray(views).std(0)[..., 0], rtol=1e-5,
                               atol=1e-7)
    assert std.shape == (2, 8, 8) and float(std.max()) > 0.05   # the ramp makes views disagree
    plain = evaluation.predict_probs(ramp_logits, batch, tta=mode)
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(mean))


def test_views_that_agree_have_no_uncertainty(batch):
    _, std = evaluation.predict_probs(pointwise_logits, batch, tta='d8', with_std=True)
    assert float(np.abs(np.asarray(std)).max()) < 1e-6   # softmax K = 3: the largest class std


def _records(count=3, size=(20, 24), seed=0):
    """Binary records whose 'uncertainty' is high exactly where the prediction is wrong
    (plus noise), a FOV that leaves out the first columns, and one image without errors."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        label = (rng.random(size) < 0.3).astype(np.int32)
        wrong = rng.random(size) < (0.15 if index < count - 1 else 0.0)
        probs = np.where(label ^ wrong, 0.8, 0.2).astype(np.float32)[..., None]
        std = np.where(wrong, 0.3, 0.05) + rng.random(size) * 0.2
        fov = np.ones(size, bool)
        fov[:, :4] = False
        records.append({'image': rng.integers(0, 256, size + (3,), dtype=np.uint8), 'label': label,
                        'fov': fov, 'id': f'u/{index}', 'uncertainty': std.astype(np.float32),
                        'probs': probs})
    return records


def test_per_image_and_pooled_scores(tmp_path):
    records = _records()
    result = evaluation.evaluate_records(records, lambda r: r['probs'], task='vessel',
                                         figure_dir=tmp_path / 'figures',
                                         uncertainty_dir=tmp_path / 'maps')
    for record, row in zip(records, result.rows):
        pred = (record['probs'][..., 0] > 0.5).astype(np.int32)
        wrong = pred != record['label']
        assert row['uncertainty'] == pytest.approx(record['uncertainty'][record['fov']].mean(), rel=1e-6)
        if wrong[record['fov']].any():
            assert row['uncertainty_auc'] == pytest.approx(auc(record['uncertainty'], wrong,
                                                               record['fov']))
        else:
            assert np.isnan(row['uncertainty_auc'])   # no wrong pixel: undefined
        np.testing.assert_array_equal(np.load(tmp_path / 'maps' / f'u_{record["id"][-1]}.npy'),
                                      record['uncertainty'])
    stds = np.concatenate([r['uncertainty'][r['fov']] for r in records])
    wrong = np.concatenate([((r['probs'][..., 0] > 0.5) != r['label'])[r['fov']] for r in records])
    pooled = result.uncertainty
    assert abs(pooled['pixel_auc'] - auc(stds, wrong)) <= pooled['pixel_auc_max_error'] + 1e-9
    assert pooled['pixel_auc'] > 0.9 and pooled['wrong_pixels'] == int(wrong.sum())
    assert pooled['pixels'] == stds.size
    assert pooled['mean_std_wrong'] == pytest.approx(stds[wrong].mean(), abs=1e-4)
    top = np.argsort(-stds, kind='stable')[:int(round(0.05 * stds.size))]
    assert pooled['wrong_in_top_5pct'] == pytest.approx(wrong[top].sum() / wrong.sum(), abs=0.02)
    with Image.open(tmp_path / 'figures' / 'u_0.png') as png:   # a sixth panel: the uncertainty
        zoom = figures.panel_zoom((20, 24))
        assert png.size[0] == 6 * 24 * zoom + 5 * figures.PANEL_GAP
        last = np.asarray(png.convert('RGB'))[figures.caption_height(24 * zoom):, -24 * zoom:]
    expected = figures.uncertainty_colours(records[0]['uncertainty'])
    np.testing.assert_array_equal(last[::zoom, ::zoom], expected)


def test_reports_carry_the_uncertainty(tmp_path):
    result = evaluation.evaluate_records(_records(), lambda r: r['probs'], task='vessel',
                                         extra_settings={'tta_views': 8})
    table = evaluation.format_table(result)
    assert "TTA uncertainty (per-pixel std of the 8 views' probabilities)" in table
    assert f'AUC {result.uncertainty["pixel_auc"]:.4f}' in table
    evaluation.write_per_image_csv(result, tmp_path / 'per_image.csv')
    with open(tmp_path / 'per_image.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[0]['uncertainty']) == pytest.approx(result.rows[0]['uncertainty'])
    assert rows[-1]['uncertainty_auc'] == ''   # NaN written empty
    evaluation.write_metrics_json(result, tmp_path / 'metrics.json')
    summary = json.loads((tmp_path / 'metrics.json').read_text())
    assert summary['uncertainty']['pixel_auc'] == pytest.approx(result.uncertainty['pixel_auc'])
    assert summary['aggregate']['uncertainty_auc']['n'] == 2
    merged = result_from_bytes(result_to_bytes(result))   # several hosts: the histogram travels
    assert merged.uncertainty == result.uncertainty


def test_records_without_uncertainty_score_as_before():
    records = _records()
    for record in records:
        del record['uncertainty']
    result = evaluation.evaluate_records(records, lambda r: r['probs'], task='vessel')
    assert 'uncertainty' not in result.metric_names and result.uncertainty == {}
    assert 'TTA uncertainty' not in evaluation.format_table(result)
