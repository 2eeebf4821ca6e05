"""The evaluation report page (evaluation/html_report.py): self-contained, one sortable row per
image for a few hundred images, thumbnails linking to the figures; and in a real headless
browser (Debian chromium + chromium-driver; skipped with the reason where absent): load, sort a
column both ways, filter, screenshot."""
import math
import re
import time

import numpy as np
import pytest
from PIL import Image

from cenet_jax import evaluation
from cenet_jax.evaluation.html_report import THUMB_WIDTH, write_html_report
from tests.browser import Browser, find_browser

NUM_IMAGES = 300


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    """A report of 300 binary images (24 x 32) with TTA uncertainty, figures and curves."""
    out = tmp_path_factory.mktemp('report')
    rng = np.random.default_rng(0)
    records = []
    for index in range(NUM_IMAGES):
        label = (rng.random((24, 32)) < 0.3).astype(np.int32)
        noise = (rng.random((24, 32)) - 0.5) * rng.uniform(0.2, 0.9)   # scores vary per image
        probs = np.clip(label * 0.6 + 0.2 + noise, 0, 1).astype(np.float32)[..., None]
        records.append({'image': rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), 'label': label,
                        'fov': np.ones((24, 32), bool), 'id': f'case/{index:03d}',
                        'uncertainty': np.abs(noise).astype(np.float32), 'probs': probs})
    records[7]['label'][:] = 0   # no vessel: Sen is undefined (NaN) for this image
    result = evaluation.evaluate_records(
        records, lambda r: r['probs'], task='vessel', figure_dir=out / 'figures',
        extra_settings={'split': 'test', 'tta': 'd8', 'tta_run': 'd8', 'tta_views': 8,
                        'provenance': ['dataset: synthetic <check & escape>']})
    evaluation.write_metrics_json(result, out / 'metrics.json')
    evaluation.write_per_image_csv(result, out / 'per_image.csv')
    Image.new('RGB', (64, 40), (200, 220, 255)).save(out / 'curves.png')
    start = time.perf_counter()
    page = write_html_report(out, result, title='vessel test <report>', config={'seed': 0},
                             curves='curves.png', source='runs/x step 5')
    return page, result, time.perf_counter() - start


def test_page_is_self_contained_and_lists_every_image(report):
    page, result, seconds = report
    text = page.read_text()
    assert seconds < 60, seconds
    assert text.count('<tr><td data-value="case/') == NUM_IMAGES
    assert '&lt;check &amp; escape&gt;' in text and '<check' not in text
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert links and not [u for u in links if re.match(r'^[a-z]+:', u) or u.startswith('//')]
    assert '<link' not in text and '<script src' not in text
    for link in links:   # every file the page names is there, next to it
        assert (page.parent / link).is_file(), link
    assert 'per_image.csv' in links and 'table.txt' not in links   # only the files present
    with Image.open(page.parent / 'figures' / 'thumbs' / 'case_000.jpg') as thumb:
        assert thumb.size[0] == THUMB_WIDTH
    assert 'CE-Net (paper)' in text and 'Uncertainty AUC' in text and '&quot;seed&quot;: 0' in text


def test_nan_scores_show_as_na_and_sort_last(report):
    page, result, _ = report
    row = next(r for r in result.rows if r['id'] == 'case/007')
    assert math.isnan(row['sen'])
    line = next(l for l in page.read_text().splitlines() if 'data-value="case/007"' in l)
    assert '<td data-value="">n/a</td>' in line


@pytest.fixture(scope='module')
def browser():
    path, driver, reason = find_browser()
    if reason:
        pytest.skip(reason)
    with Browser(path, driver, width=1280, height=900) as session:
        yield session


def _column(session, key):
    """The data-values of column `key` of the visible rows, in the order shown."""
    return session.run(
        'var key = arguments[0];'
        'var heads = Array.from(document.querySelectorAll("#images thead th"));'
        'var index = heads.findIndex(function (h) { return h.dataset.key === key; });'
        'return Array.from(document.querySelectorAll("#images tbody tr"))'
        '.filter(function (r) { return !r.hidden; })'
        '.map(function (r) { return r.cells[index].getAttribute("data-value"); });', key)


def test_sorting_filtering_and_a_screenshot_in_a_real_browser(report, browser, tmp_path):
    page, result, _ = report
    browser.open(page)
    assert browser.run('return document.title') == 'vessel test <report>'
    assert _column(browser, 'id') == [r['id'] for r in result.rows]      # record order first
    browser.click('#images th[data-key="sen"]')
    values = _column(browser, 'sen')
    numbers = [float(v) for v in values if v != '']
    assert len(values) == NUM_IMAGES and values[-1] == ''               # NaN last
    assert numbers == sorted(numbers) and numbers[0] < numbers[-1]
    assert browser.run('return document.querySelector("#images th[data-key=sen]")'
                       '.getAttribute("aria-sort")') == 'ascending'
    browser.click('#images th[data-key="uncertainty_auc"]')
    browser.click('#images th[data-key="uncertainty_auc"]')               # again: descending
    numbers = [float(v) for v in _column(browser, 'uncertainty_auc') if v != '']
    assert numbers == sorted(numbers, reverse=True)
    browser.run('var f = document.getElementById("filter"); f.value = "case/01";'
                'f.dispatchEvent(new Event("input")); return 0;')
    assert sorted(_column(browser, 'id')) == [f'case/{i:03d}' for i in range(10, 20)]
    assert browser.run('return document.getElementById("shown").textContent') == '10'
    resources = browser.run('return performance.getEntriesByType("resource").map('
                            'function (e) { return e.name; });')
    assert all(name.startswith('file://') for name in resources), resources
    shot = browser.screenshot(tmp_path / 'report.png')
    with Image.open(shot) as png:
        pixels = np.asarray(png.convert('L'))
    assert pixels.shape[1] >= 1000
    assert pixels.std() > 10   # text, tables and thumbnails, not a blank page
