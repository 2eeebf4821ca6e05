"""The segmentation tasks: what each measures and the numbers the paper reported for it, in
one table (`TASKS`) that scoring and reports read.

Tasks: 'vessel' (DRIVE: Sen, Acc, AUC), 'disc' (ORIGA / Messidor / RIM-ONE-R1:
E), 'disc_cup' (Drishti-GS1: background / rim / cup; E and Dice of disc and cup, the vertical
cup-to-disc ratio and its error against the experts, see `cenet_jax.metrics.cdr`), 'lung' (E, Acc, Sen), 'cell' (ISBI 2012: V_Rand, V_Info, membrane = label
``membrane_class``), 'oct' (MAE of 10 boundaries and overall, see
`cenet_jax.metrics.oct_layers`). Paper numbers are transcribed from Gu et al., IEEE TMI
2019 (Tables I-VI); a value is a mean or a (mean, std) pair.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence, Union

PaperValue = Union[float, tuple[float, float]]
PaperTable = Mapping[str, Mapping[str, PaperValue]]

OCT_BOUNDARY_NAMES = ('ILM', 'NFL/GCL', 'IPL/INL', 'INL/OPL', 'OPL/ONL', 'ELM', 'Up IS/OS',
                      'Low IS/OS', 'OS/RPE', 'BM/Choroid')
OCT_MAE_KEYS = tuple(f'mae_{k}' for k in range(1, 11)) + ('mae_overall',)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a task measures, how, and what the paper reported."""

    name: str
    kind: str  # 'binary', 'disc_cup', 'cell' or 'oct'
    table_metrics: tuple[str, ...]
    paper: Mapping[str, PaperTable]
    default_paper_key: str
    source: str  # where in the paper the numbers are


def _oct_paper_row(values: Sequence[float | None]) -> dict[str, float]:
    return {key: v for key, v in zip(OCT_MAE_KEYS, values) if v is not None}


TASKS: dict[str, TaskSpec] = {
    'vessel': TaskSpec(
        name='vessel', kind='binary', table_metrics=('sen', 'acc', 'auc'),
        default_paper_key='DRIVE', source='Table II (DRIVE-ablation: Table VI, mean±std)',
        paper={
            'DRIVE': {
                'U-Net': {'sen': 0.7537, 'acc': 0.9531, 'auc': 0.9601},
                'DeepVessel': {'sen': 0.7603, 'acc': 0.9523, 'auc': 0.9752},
                'Backbone': {'sen': 0.7781, 'acc': 0.9477, 'auc': 0.9705},
                'CE-Net': {'sen': 0.8309, 'acc': 0.9545, 'auc': 0.9779},
            },
            'DRIVE-ablation': {
                'U-Net': {'acc': (0.939, 0.006), 'auc': (0.960, 0.006)},
                'Backbone': {'acc': (0.943, 0.004), 'auc': (0.971, 0.005)},
                'Backbone + Inception-block': {'acc': (0.950, 0.004), 'auc': (0.972, 0.005)},
                'Backbone + DAC w/o atrous': {'acc': (0.952, 0.004), 'auc': (0.970, 0.005)},
                'Backbone + DAC with atrous': {'acc': (0.953, 0.004), 'auc': (0.977, 0.006)},
                'Backbone + RMP': {'acc': (0.952, 0.004), 'auc': (0.974, 0.005)},
                'Backbone + Inception-ResNet-block': {'acc': (0.951, 0.004), 'auc': (0.974, 0.005)},
                'CE-Net': {'acc': (0.955, 0.003), 'auc': (0.978, 0.006)},
            },
        }),
    'disc': TaskSpec(
        name='disc', kind='binary', table_metrics=('E',), default_paper_key='ORIGA',
        source='Table I (ORIGA-ablation: Table VI)',
        paper={
            'ORIGA': {
                'Superpixel': {'E': (0.102, 0.104)}, 'U-Net': {'E': (0.115, 0.068)},
                'M-Net': {'E': (0.071, 0.047)}, 'Faster RCNN': {'E': (0.069, 0.056)},
                'DeepDisc': {'E': (0.069, 0.040)}, 'CE-Net': {'E': (0.058, 0.032)},
            },
            'ORIGA-ablation': {
                'U-Net': {'E': (0.115, 0.068)}, 'Backbone': {'E': (0.075, 0.068)},
                'Backbone + Inception-block': {'E': (0.068, 0.059)},
                'Backbone + DAC w/o atrous': {'E': (0.073, 0.050)},
                'Backbone + DAC with atrous': {'E': (0.061, 0.043)},
                'Backbone + RMP': {'E': (0.061, 0.044)},
                'Backbone + Inception-ResNet-block': {'E': (0.065, 0.042)},
                'CE-Net': {'E': (0.058, 0.032)},
            },
            'Messidor': {
                'Superpixel': {'E': (0.125, 0.113)}, 'U-Net': {'E': (0.069, 0.121)},
                'M-Net': {'E': (0.113, 0.089)}, 'Faster RCNN': {'E': (0.079, 0.058)},
                'DeepDisc': {'E': (0.064, 0.039)}, 'CE-Net': {'E': (0.051, 0.033)},
            },
            'RIM-ONE-R1': {
                'Superpixel': {'E': (0.203, 0.104)}, 'U-Net': {'E': (0.152, 0.107)},
                'M-Net': {'E': (0.135, 0.098)}, 'Faster RCNN': {'E': (0.133, 0.107)},
                'DeepDisc': {'E': (0.097, 0.045)}, 'CE-Net': {'E': (0.087, 0.039)},
            },
            **{f'RIM-ONE-R1-expert{expert + 1}': {
                method: {'E': values[expert]} for method, values in {
                    'Superpixel': (0.178, 0.229, 0.243, 0.183, 0.181),
                    'U-Net': (0.137, 0.149, 0.156, 0.171, 0.149),
                    'M-Net': (0.128, 0.135, 0.153, 0.142, 0.117),
                    'Faster RCNN': (0.101, 0.152, 0.161, 0.149, 0.104),
                    'DeepDisc': (0.077, 0.107, 0.119, 0.101, 0.079),
                    'CE-Net': (0.058, 0.112, 0.125, 0.080, 0.059),
                }.items()} for expert in range(5)},
        }),
    'disc_cup': TaskSpec(
        name='disc_cup', kind='disc_cup',
        table_metrics=('E_disc', 'dice_disc', 'E_cup', 'dice_cup', 'cdr_error', 'cdr_expert_spread'),
        default_paper_key='ORIGA', source='Table I (disc E on ORIGA; ORIGA-ablation: Table VI; the paper has no cup or Drishti-GS1 numbers)',
        paper={
            'ORIGA': {method: {'E_disc': row['E']} for method, row in (
                ('U-Net', {'E': (0.115, 0.068)}), ('M-Net', {'E': (0.071, 0.047)}),
                ('DeepDisc', {'E': (0.069, 0.040)}), ('CE-Net', {'E': (0.058, 0.032)}))},
            'ORIGA-ablation': {
                'U-Net': {'E_disc': (0.115, 0.068)}, 'Backbone': {'E_disc': (0.075, 0.068)},
                'Backbone + DAC with atrous': {'E_disc': (0.061, 0.043)},
                'Backbone + RMP': {'E_disc': (0.061, 0.044)}, 'CE-Net': {'E_disc': (0.058, 0.032)},
            },
        }),
    'lung': TaskSpec(
        name='lung', kind='binary', table_metrics=('E', 'acc', 'sen'), default_paper_key='LUNA',
        source='Table III',
        paper={'LUNA': {
            'U-Net': {'E': (0.087, 0.090), 'acc': (0.975, 0.032), 'sen': 0.938},
            'Backbone': {'E': (0.044, 0.063), 'acc': (0.988, 0.024), 'sen': 0.967},
            'CE-Net': {'E': (0.038, 0.061), 'acc': (0.990, 0.023), 'sen': 0.980},
        }}),
    'cell': TaskSpec(
        name='cell', kind='cell', table_metrics=('v_rand', 'v_info'), default_paper_key='ISBI2012',
        source='Table IV (challenge test set, scored by the organisers)',
        paper={'ISBI2012': {
            'U-Net': {'v_rand': 0.9432, 'v_info': 0.9562},
            'Backbone': {'v_rand': 0.9569, 'v_info': 0.9716},
            'CE-Net': {'v_rand': 0.9743, 'v_info': 0.9878},
        }}),
    'oct': TaskSpec(
        name='oct', kind='oct', table_metrics=OCT_MAE_KEYS, default_paper_key='Topcon',
        source='Table V (Topcon set, MAE in pixels)',
        paper={'Topcon': {
            'Topcon': _oct_paper_row((1.61, 2.09, 2.10, 2.27, None, 2.17, 1.82, None, 1.65, 1.80, None)),
            'SRR': _oct_paper_row((1.61, 2.02, 2.02, 1.91, None, 1.86, 1.63, None, 1.62, 1.80, None)),
            'FCN': _oct_paper_row((2.10, 4.41, 3.77, 4.54, 4.78, 4.52, 3.84, 4.36, 5.06, 7.88, 4.53)),
            'U-Net': _oct_paper_row((1.38, 3.05, 2.70, 2.77, 3.30, 2.34, 1.86, 2.00, 2.42, 2.65, 2.45)),
            'Backbone': _oct_paper_row((2.13, 2.70, 2.52, 2.20, 2.79, 1.91, 1.26, 1.60, 2.02, 2.70, 2.18)),
            'CE-Net w/ CE': _oct_paper_row((1.45, 2.48, 2.20, 2.08, 2.55, 1.66, 1.19, 1.04, 1.52, 1.82, 1.80)),
            'CE-Net w/ Dice': _oct_paper_row((1.37, 2.02, 2.08, 1.80, 2.47, 1.48, 1.10, 1.26, 1.48, 1.74, 1.68)),
        }}),
}
