"""The browsable report of an evaluation: `<out_dir>/index.html`, beside eval.py's PNGs.

One self-contained page (inline CSS and JavaScript; nothing from the network, no CDN) with what
was scored, the paper-style table, the TTA uncertainty, one row per image (sortable by clicking
any column heading, NaN last; a filter on the image id) with a thumbnail of the image's figure
that links to the full PNG, the run's training curves and the config used. Thumbnails
(`figures/thumbs/<id>.jpg`, `THUMB_WIDTH` px wide) load lazily, so a page of a few hundred
images opens at once. Files are linked by relative paths: the folder can be moved or zipped.
"""
from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from cenet_jax.disk import write_atomic
from cenet_jax.evaluation.reports import (METRIC_LABELS, table_cells, uncertainty_line)
from cenet_jax.evaluation.scoring import EvalResult, figure_file_name

THUMB_WIDTH = 360
THUMB_DIR = 'thumbs'
REPORT_FILES = ('metrics.json', 'per_image.csv', 'table.txt')
COLUMN_LABELS = {**METRIC_LABELS, 'uncertainty': 'Uncertainty (mean std)',
                 'uncertainty_auc': 'Uncertainty AUC (std vs error)'}

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th:first-child, td:first-child, #facts td { text-align: left; }
#images thead th { position: sticky; top: 0; background: #eef; cursor: pointer; user-select: none; }
#images th[aria-sort=ascending]::after { content: ' \\25B2'; }
#images th[aria-sort=descending]::after { content: ' \\25BC'; }
#images td.thumb { padding: 2px; }
#images img { display: block; }
.paper td, .paper th { background: #fafafa; }
.note { color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow: auto; max-height: 40em; }
"""

_SCRIPT = """
(function () {
  var table = document.getElementById('images');
  if (!table) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function value(row, column, numeric) {
    var text = row.cells[column].getAttribute('data-value');
    return numeric ? (text === '' ? NaN : parseFloat(text)) : text;
  }
  function sortBy(head) {
    var column = head.cellIndex, numeric = head.getAttribute('data-type') === 'number';
    var ascending = head.getAttribute('aria-sort') !== 'ascending';
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute('aria-sort'); }
    head.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, column, numeric), y = value(b, column, numeric);
      if (numeric) {
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
        return ascending ? x - y : y - x;
      }
      var c = x.localeCompare(y, undefined, {numeric: true});
      return ascending ? c : -c;
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);
  }
  Array.prototype.forEach.call(heads, function (head) {
    if (!head.getAttribute('data-type')) { return; }
    head.tabIndex = 0;
    head.addEventListener('click', function () { sortBy(head); });
    head.addEventListener('keydown', function (e) { if (e.key === 'Enter') { sortBy(head); } });
  });
  var filter = document.getElementById('filter');
  filter.addEventListener('input', function () {
    var text = filter.value.toLowerCase(), shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var match = row.cells[0].getAttribute('data-value').toLowerCase().indexOf(text) >= 0;
      row.hidden = !match; shown += match ? 1 : 0;
    });
    document.getElementById('shown').textContent = shown;
  });
})();
"""


def write_thumbnail(figure: str | Path, thumb: str | Path, width: int = THUMB_WIDTH
                    ) -> tuple[int, int]:
    """A JPEG `width` px wide of a figure PNG (written whole); returns its (width, height)."""
    with Image.open(figure) as image:
        rgb = image.convert('RGB')
    height = max(1, round(rgb.height * width / rgb.width))
    buffer = io.BytesIO()
    rgb.resize((width, height), Image.Resampling.LANCZOS).save(buffer, format='JPEG', quality=85)
    write_atomic(thumb, buffer.getvalue())
    return width, height


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> tuple[str, str]:
    """(data-value, shown text) of a score: '' and 'n/a' for NaN or a missing score."""
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return repr(float(value)), f'{float(value):.4f}'
    return '', 'n/a'


def _paper_table(result: EvalResult) -> str:
    header, rows = table_cells(result)
    head = ''.join(f'<th>{_esc(h)}</th>' for h in header)
    body = ''.join(
        f'<tr{" class=paper" if row[0].endswith("(paper)") else ""}>'
        + ''.join(f'<td>{_esc(c)}</td>' for c in row) + '</tr>' for row in rows)
    return f'<table id="paper"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _image_rows(result: EvalResult, out_dir: Path, figures_dir: str | None) -> tuple[str, str]:
    """(thead, tbody) of the per-image table; thumbnails made from the figure PNGs present."""
    metrics = result.metric_names
    heads = ['<th data-type="text" data-key="id">image</th>']
    if figures_dir:
        heads.append('<th>figure</th>')
    heads += [f'<th data-type="number" data-key="{_esc(m)}">{_esc(COLUMN_LABELS.get(m, m))}</th>'
              for m in metrics]
    rows = []
    for row in result.rows:
        cells = [f'<td data-value="{_esc(row["id"])}">{_esc(row["id"])}</td>']
        if figures_dir:
            name = figure_file_name(str(row['id']))
            figure = out_dir / figures_dir / name
            if figure.is_file():
                thumb = Path(figures_dir) / THUMB_DIR / (name[:-4] + '.jpg')
                width, height = write_thumbnail(figure, out_dir / thumb)
                cells.append(f'<td class="thumb"><a href="{_esc(Path(figures_dir) / name)}">'
                             f'<img src="{_esc(thumb)}" width="{width}" height="{height}" '
                             f'loading="lazy" alt="figure of {_esc(row["id"])}"></a></td>')
            else:
                cells.append('<td>-</td>')
        for metric in metrics:
            data, shown = _number(row.get(metric))
            cells.append(f'<td data-value="{data}">{shown}</td>')
        rows.append('<tr>' + ''.join(cells) + '</tr>')
    return '<tr>' + ''.join(heads) + '</tr>', '\n'.join(rows)


def _file_links(out_dir: Path) -> str:
    """Links to the report files eval.py writes beside the page (those present)."""
    present = [name for name in REPORT_FILES if (out_dir / name).is_file()]
    return ('<p class="note">Files: ' + ', '.join(f'<a href="{n}">{n}</a>' for n in present)
            + '</p>') if present else ''


def write_html_report(out_dir: str | Path, result: EvalResult, *, title: str,
                      config: Mapping[str, Any] | None = None, curves: str | None = None,
                      figures_dir: str | None = 'figures', source: str = '') -> Path:
    """Write `<out_dir>/index.html` (and the figures' thumbnails) for `result`; `curves` and
    `figures_dir` are paths relative to `out_dir` (None: left out), `config` the config used,
    `source` where the weights came from. Returns the page's path."""
    out_dir = Path(out_dir)
    settings = dict(result.settings)
    facts = [('model', source or settings.get('source', '')), ('split', settings.get('split', '')),
             ('TTA', f'{settings.get("tta", "")} (run as {settings.get("tta_run", "")})'),
             ('TTA views dropped', '; '.join(f'{view}: {why}' for view, why in
                                             settings.get('tta_dropped', {}).items())),
             ('threshold', settings.get('threshold', '')), ('images', len(result.rows))]
    thead, tbody = _image_rows(result, out_dir, figures_dir)
    uncertainty = uncertainty_line(result)
    parts = [
        '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>',
        f'<h1>{_esc(title)}</h1>',
        '<p>' + '<br>'.join(_esc(line) for line in settings.get('provenance', ())) + '</p>',
        '<table id="facts">' + ''.join(f'<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>'
                                       for k, v in facts if v != '') + '</table>',
        '<h2>Scores beside the paper</h2>', _paper_table(result),
        f'<p class="note">{_esc(uncertainty)}</p>' if uncertainty else '',
        _file_links(out_dir),
        f'<h2>Images (<span id="shown">{len(result.rows)}</span> of {len(result.rows)})</h2>',
        '<p><label>filter by id <input id="filter" type="search"></label> '
        '<span class="note">click a column heading to sort (again: reverse)</span></p>',
        f'<table id="images"><thead>{thead}</thead><tbody>\n{tbody}\n</tbody></table>',
    ]
    if curves:
        parts += ['<h2>Training curves</h2>', f'<img src="{_esc(curves)}" alt="training curves">']
    if config is not None:
        parts += ['<h2>Config</h2>', '<details><summary>the configuration used (JSON)</summary>'
                  f'<pre>{_esc(json.dumps(config, indent=2, default=str))}</pre></details>']
    parts += [f'<script>{_SCRIPT}</script>', '</body></html>']
    return write_atomic(out_dir / 'index.html', '\n'.join(parts) + '\n')
