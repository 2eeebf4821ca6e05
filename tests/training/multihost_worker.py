"""One process of the two-process (multi-host) training test; run by test_multihost.py.

usage: python -m tests.training.multihost_worker PORT PROCESS_ID WORKDIR OUT.npz [LATE]
LATE: comma-separated WHERE=SECONDS, how much later than its peer this process gets there:
  start    starts training (after connecting), as a host reading its data slowly does;
  compile  compiles the train step (once), as a slow host or a cold cache does.
"""
import sys
import time

LATE_PLACES = ('start', 'compile')


def main(port: str, process_id: str, workdir: str, out: str, late: str = '') -> None:
    import jax
    jax.config.update('jax_platforms', 'cpu')
    jax.config.update('jax_num_cpu_devices', 2)
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    from cenet_jax.parallel import maybe_initialize_distributed
    maybe_initialize_distributed('auto', f'localhost:{port}', 2, int(process_id))
    assert jax.process_count() == 2 and jax.device_count() == 4

    import numpy as np
    from cenet_jax.training import loop
    from tests.training.conftest import tiny_config

    # A width-4 U-Net (BatchNorm included): what is checked is the loop across processes, and its
    # step compiles in a fraction of CE-Net's on CI's 2 cores. Validation (predictions gathered
    # across the processes) at the last step.
    config = tiny_config(num_train_steps=3, checkpoint_every_steps=3, eval_every_steps=3)
    config.model.architecture, config.model.unet_width = 'unet', 4
    lateness = parse_late(late)
    if lateness.get('compile'):
        slow_to_compile(loop, lateness['compile'])
    time.sleep(lateness.get('start', 0.0))
    state = loop.train_and_evaluate(config, workdir)
    leaves = jax.tree.leaves(state.params)
    host = [np.asarray(x.addressable_data(0)) for x in leaves]  # replicated: any shard is all
    np.savez(out, step=int(state.step), **{f'p{i}': v for i, v in enumerate(host)})


def parse_late(spec: str) -> dict[str, float]:
    """'start=35,compile=35' -> {'start': 35.0, 'compile': 35.0}."""
    lateness = {}
    for item in filter(None, spec.split(',')):
        where, seconds = item.split('=')
        assert where in LATE_PLACES, f'{where!r} is not one of {LATE_PLACES}'
        lateness[where] = float(seconds)
    return lateness


def slow_to_compile(loop, seconds: float) -> None:
    """The loop's train step sleeps while JAX first traces it: a host that compiles late."""
    make_step, slept = loop.make_step, []

    def slow_make_step(*args, **kwargs):
        step = make_step(*args, **kwargs)

        def traced(*step_args):
            if not slept:
                slept.append(time.sleep(seconds))
            return step(*step_args)
        return traced
    loop.make_step = slow_make_step


if __name__ == '__main__':
    main(*sys.argv[1:])
