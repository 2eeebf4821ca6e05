"""Demo on the built-in synthetic fundus images (optic disc): small images, about three minutes
on 2 CPU cores, a falling loss and pictures of the predictions in <workdir>/samples.

python train.py --config configs/demo.py --workdir runs/demo
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    config = task_config(arg, dataset='synthetic_disc', task='disc', best_metric='E',
                         best_mode='min')
    config.data.image_size = (64, 64)
    config.data.synthetic.num_train = 400
    config.data.synthetic.num_val = 8
    config.data.synthetic.num_test = 8
    config.num_train_steps = 150
    config.log_every_steps = 10
    config.eval_every_steps = 50
    config.checkpoint_every_steps = 50
    config.optim.lr = 0.05        # from scratch (no pretrained encoder): a larger poly lr
    config.optim.warmup_steps = 10
    return config
