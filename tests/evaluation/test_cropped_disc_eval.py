"""Issue 26 item 4 end to end: a disc-and-cup model trained on a Drishti-GS1-layout set (with the
disc crop) scored by eval.py on a folder of images that are already cropped around the optic
disc: the dataset switch skips the crop, and the log and every report say so."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cenet_jax.data.config import apply_preset
from cenet_jax.figures import caption_height, panel_zoom
from cenet_jax.training import loop
from tests.data.fakes import DRISHTI_CUP_RADII, DRISHTI_DISC_RADII, fundus_with_disc, make_drishti, save
from tests.training.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
NO_CROP = 'disc crop: none (data.disc_crop_size=0): the images are taken as already cropped around the optic disc'


@pytest.fixture(scope='module')
def disc_cup_run(tmp_path_factory):
    """2 training steps of a small U-Net (64 px, softmax over background / rim / cup) on a fake
    Drishti-GS1 set, its 96 x 112 images cut to an 80 px disc crop."""
    root = tmp_path_factory.mktemp('drishti')
    make_drishti(root, counts=(4, 2))
    config = tiny_config(num_train_steps=2, checkpoint_every_steps=2, batch_size=4)
    apply_preset(config.data, 'drishti_gs1')
    config.data.root, config.data.num_classes, config.data.disc_crop_size = str(root), 3, 80
    config.data.val_fraction = 0.0
    config.model.architecture, config.model.unet_width, config.model.num_classes = 'unet', 8, 3
    config.eval.task, config.eval.paper_key = 'disc_cup', 'ORIGA'
    workdir = tmp_path_factory.mktemp('disc_cup_run')
    loop.train_and_evaluate(config, workdir)
    return workdir


def make_onh_folder(root: Path, count: int = 3, size: tuple[int, int] = (96, 120)) -> None:
    """images/ of optic-nerve-head crops with masks/ storing background 255, rim 128 and cup 0
    (REFUGE's convention)."""
    yy, xx = np.mgrid[:size[0], :size[1]]
    for index in range(count):
        centre = (size[0] // 2 + index, size[1] // 2 - index)
        distance = np.hypot(yy - centre[0], xx - centre[1])
        mask = np.where(distance <= DRISHTI_CUP_RADII[2], 0, np.where(distance <= DRISHTI_DISC_RADII[2], 128, 255))
        save(root / 'images' / f'onh{index}.png', fundus_with_disc(size, centre, DRISHTI_DISC_RADII[2], seed=index))
        save(root / 'masks' / f'onh{index}.png', mask.astype(np.uint8))


def test_eval_on_a_folder_of_disc_crops_skips_the_crop_and_says_so(disc_cup_run, tmp_path):
    folder, out = tmp_path / 'onh', tmp_path / 'eval'
    make_onh_folder(folder)
    run = subprocess.run([sys.executable, 'eval.py', f'--workdir={disc_cup_run}', '--checkpoint=latest',
                          '--tta=none', f'--output_dir={out}', '--config.data.name=folder',
                          f'--config.data.root={folder}', '--config.data.class_values=(255, 128, 0)'],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert NO_CROP in log and "the run was trained on 'drishti_gs1', scoring 'folder'" in log
    assert 'data.disc_crop_size=0 (the run had 80)' in log and 'data.num_classes=3' in log
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['num_images'] == 3 and any(line.startswith(NO_CROP) for line in summary['settings']['provenance'])
    assert NO_CROP in (out / 'table.txt').read_text() and NO_CROP in (out / 'index.html').read_text()
    header = (out / 'per_image.csv').read_text().splitlines()[0].split(',')
    assert {'E_disc', 'dice_disc', 'E_cup', 'dice_cup', 'cdr'} <= set(header)
    assert '| n/a | n/a |' in (out / 'table.txt').read_text()   # no experts' CDRs: no CDR error
    pngs = sorted((out / 'figures').glob('*.png'))
    assert [p.name for p in pngs] == ['onh0.png', 'onh1.png', 'onh2.png']
    zoom = panel_zoom((96, 120))
    with Image.open(pngs[0]) as png:   # the whole 96 x 120 image, not the run's 80 px crop of it
        assert png.size == (120 * zoom, 96 * zoom + caption_height(120 * zoom))
