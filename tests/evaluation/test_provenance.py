"""Reports say what was scored (dataset, split source and size, FOV), and prediction figures show
the field of view, saying when it was derived from the image. No model: records and
probabilities are made by hand."""
import json

import numpy as np
from PIL import Image

from cenet_jax import evaluation, figures
from cenet_jax.data import build_eval_records, data_config_for
from cenet_jax.evaluation.run import provenance_lines


def _disc_records(tmp_path, count=2, size=64):
    """A folder dataset of bright discs on black (fundus-like), 64 x 64, fov derived."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.4 * size) ** 2
    for index in range(count):
        image = np.zeros((size, size, 3), np.uint8)
        image[disc] = (200, 90, 40)
        label = np.zeros((size, size), np.uint8)
        label[size // 2, 10:size - 10] = 255
        for folder, array in (('images', image), ('masks', label)):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(array).save(tmp_path / folder / f'd{index}.png')
    return build_eval_records(data_config_for('folder', str(tmp_path), fov='auto', cross_dataset=True,
                                              image_size=(64, 64)), 'test'), disc


def test_report_starts_with_what_was_scored(tmp_path):
    records, _ = _disc_records(tmp_path)
    provenance = provenance_lines(records.info)
    result = evaluation.evaluate_records(
        records, lambda r: (r['label'] * 0.9)[..., None].astype(np.float32), task='vessel',
        extra_settings={'provenance': provenance, **records.info.as_dict()})
    table = evaluation.format_table(result).splitlines()
    assert table[1] == f'dataset: folder at {tmp_path} (cross-dataset: the model was trained on another dataset)'
    assert table[2] == f'test: 2 images, the whole set ({tmp_path / "images"}): scored cross-dataset, so ' \
                       f'nothing is held out (no {tmp_path / "test.txt"})'
    assert table[3].startswith('FOV: derived from each image (data.fov=auto')
    assert table[4] == '' and table[5].startswith('| Method |')
    evaluation.write_metrics_json(result, tmp_path / 'metrics.json')
    settings = json.loads((tmp_path / 'metrics.json').read_text())['settings']
    assert settings['split_source'] == table[2] and settings['cross_dataset'] is True
    assert settings['num_images'] == 2 and settings['fov_source'].startswith('derived')


def test_figure_outlines_a_derived_fov_and_says_so(tmp_path):
    records, disc = _disc_records(tmp_path, count=1)
    record = records[0]
    assert record['fov_source'] == 'derived'
    outline = figures.fov_outline(record['fov'])
    assert outline.any() and not outline[0, 0] and not outline[32, 32]   # the edge only
    evaluation.evaluate_records([record], lambda r: np.zeros(r['label'].shape + (1,), np.float32),
                                task='vessel', figure_dir=tmp_path / 'figures')
    panel = np.asarray(Image.open(tmp_path / 'figures' / 'd0.png').convert('RGB'))
    zoom = figures.panel_zoom((64, 64))
    top = figures.caption_height(64 * zoom)
    row, col = np.argwhere(outline)[0]
    assert tuple(panel[top + row * zoom, col * zoom]) == figures.FOV_OUTLINE_COLOUR
    # the same figure without a FOV has no outline colour anywhere in the image panel
    figures.save_prediction_figure(tmp_path / 'plain.png', record['image'], record['label'],
                                   record['label'], fov=None)
    plain = np.asarray(Image.open(tmp_path / 'plain.png').convert('RGB'))[top:, :64 * zoom]
    assert not (plain == figures.FOV_OUTLINE_COLOUR).all(axis=-1).any()
