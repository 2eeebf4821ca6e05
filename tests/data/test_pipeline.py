"""Training iterator (shapes, epochs, host sharding, workers, checkpoint/restore) and eval records."""
import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cenet_jax.data import (build_eval_records, build_train_iterator, data_config_for, model_input,
                            num_train_examples)


@pytest.fixture
def cfg():
    config = data_config_for('synthetic_vessels', image_size=(32, 32))
    config.synthetic.num_train, config.synthetic.num_val, config.synthetic.num_test = 8, 3, 5
    return config


def take(iterator, count):
    batches = [next(iterator) for _ in range(count)]
    return batches


def equal_batches(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_batch_contract(cfg):
    iterator = build_train_iterator(cfg, global_batch_size=6, seed=0)
    batch = next(iterator)
    iterator.close()
    assert set(batch) == {'image', 'label', 'fov'}
    assert batch['image'].dtype == np.float32 and batch['image'].shape == (6, 32, 32, 3)
    assert batch['label'].dtype == np.int32 and batch['label'].shape == (6, 32, 32)
    assert batch['fov'].dtype == np.float32 and batch['fov'].shape == (6, 32, 32)
    assert -1.6 <= batch['image'].min() and batch['image'].max() <= 1.6
    assert set(np.unique(batch['label'])) <= {0, 1}


def test_epochs_visit_every_record_once_and_reshuffle(cfg):
    cfg.augment.enabled = False
    iterator = build_train_iterator(cfg, global_batch_size=4, seed=0)
    images = np.concatenate([b['image'] for b in take(iterator, 4)])  # two epochs of 8
    iterator.close()
    keys = [image.tobytes() for image in images]
    assert len(set(keys[:8])) == 8 and set(keys[:8]) == set(keys[8:])
    assert keys[:8] != keys[8:]


def test_same_seed_same_batches_other_seed_other_batches(cfg):
    runs = []
    for seed in (5, 5, 6):
        iterator = build_train_iterator(cfg, global_batch_size=2, seed=seed)
        runs.append(take(iterator, 3))
        iterator.close()
    assert all(equal_batches(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not equal_batches(runs[0][0], runs[2][0])


def test_hosts_together_see_the_single_host_global_batch(cfg):
    single = build_train_iterator(cfg, global_batch_size=4, seed=1)
    hosts = [build_train_iterator(cfg, global_batch_size=4, seed=1, process_index=p, process_count=2)
             for p in range(2)]
    for _ in range(3):  # crosses an epoch boundary
        whole, parts = next(single), [next(h) for h in hosts]
        assert parts[0]['image'].shape[0] == 2
        for key in whole:
            np.testing.assert_array_equal(whole[key][0::2], parts[0][key])
            np.testing.assert_array_equal(whole[key][1::2], parts[1][key])
    for iterator in [single] + hosts:
        iterator.close()
    with pytest.raises(ValueError, match='multiple of the process count'):
        build_train_iterator(cfg, global_batch_size=3, seed=0, process_count=2)


def test_get_state_set_state_resumes_exactly(cfg):
    iterator = build_train_iterator(cfg, global_batch_size=3, seed=2)
    take(iterator, 5)
    state = iterator.get_state()
    expected = take(iterator, 2)
    iterator.close()
    resumed = build_train_iterator(cfg, global_batch_size=3, seed=2)
    resumed.set_state(state)
    assert all(equal_batches(a, b) for a, b in zip(expected, take(resumed, 2), strict=True))
    resumed.close()


def test_orbax_checkpoint_manager_restores_the_iterator(cfg, tmp_path):
    iterator = build_train_iterator(cfg, global_batch_size=2, seed=3)
    take(iterator, 3)
    with ocp.CheckpointManager(tmp_path / 'checkpoints') as manager:
        manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
        manager.wait_until_finished()
        expected = take(iterator, 2)
        iterator.close()
        resumed = build_train_iterator(cfg, global_batch_size=2, seed=3)
        manager.restore(manager.latest_step(),
                        args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed)))
    assert all(equal_batches(a, b) for a, b in zip(expected, take(resumed, 2), strict=True))
    resumed.close()


def test_worker_processes_give_the_same_batches_and_state(cfg):
    in_process = build_train_iterator(cfg, global_batch_size=2, seed=4)
    expected = take(in_process, 4)
    in_process.close()
    cfg.num_workers = 1
    workers = build_train_iterator(cfg, global_batch_size=2, seed=4)
    got = take(workers, 2)
    state = workers.get_state()
    got += take(workers, 2)
    workers.close()
    assert all(equal_batches(a, b) for a, b in zip(expected, got, strict=True))
    resumed = build_train_iterator(cfg, global_batch_size=2, seed=4)
    resumed.set_state(state)
    assert equal_batches(next(resumed), expected[2])
    resumed.close()


def test_eval_records_every_record_once_in_order(cfg):
    records = build_eval_records(cfg, 'test')
    assert len(records) == 5
    listed = list(records)
    assert [r['id'] for r in listed] == [f'synthetic_vessels/test/{i:05d}' for i in range(5)]
    assert listed[0]['image'].shape == (32, 32, 3) and listed[0]['model_image'].dtype == np.float32
    np.testing.assert_array_equal(listed[2]['model_image'], model_input(listed[2], cfg))
    halves = [build_eval_records(cfg, 'test', process_index=p, process_count=2) for p in range(2)]
    assert sorted(r['id'] for h in halves for r in h) == [r['id'] for r in listed]
    assert num_train_examples(cfg) == 8


def test_model_input_resizes_and_normalises(cfg):
    cfg.image_size = (64, 48)
    record = next(iter(build_eval_records(cfg, 'val')))
    x = model_input(record, cfg)
    assert x.shape == (64, 48, 3) and x.dtype == np.float32
    cfg.normalization = 'imagenet'
    assert not np.allclose(model_input(record, cfg), x)
