"""One process of the two-process (multi-host) training test; run by test_multihost.py.

usage: python -m tests.training.multihost_worker PORT PROCESS_ID WORKDIR OUT.npz [LATE_S]
(LATE_S: this process's train step takes that many seconds longer to compile, once.)
"""
import sys
import time


def main(port: str, process_id: str, workdir: str, out: str, late_s: str = '0') -> None:
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
    # step compiles in a fraction of CE-Net's on CI's 2 cores.
    config = tiny_config(num_train_steps=3, checkpoint_every_steps=3)
    config.model.architecture, config.model.unet_width = 'unet', 4
    if float(late_s):
        slow_to_compile(loop, float(late_s))
    state = loop.train_and_evaluate(config, workdir)
    leaves = jax.tree.leaves(state.params)
    host = [np.asarray(x.addressable_data(0)) for x in leaves]  # replicated: any shard is all
    np.savez(out, step=int(state.step), **{f'p{i}': v for i, v in enumerate(host)})


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
