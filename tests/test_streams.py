"""Per-session noise streams: the batched seeding draws what numpy's own `default_rng([seed, step])` draws."""

import numpy as np

from cosmos3_robot.backends.streams import session_normals


def reference(seeds, steps, shape):
    return np.stack([np.random.default_rng([int(s), int(k)]).standard_normal(shape) for s, k in zip(seeds, steps)])


def test_session_normals_equal_default_rng_bit_for_bit():
    rng = np.random.default_rng(0)
    seeds = np.concatenate([rng.integers(0, 2**32, 300), [0, 1, 2**32 - 1, 2**32, 2**40 + 5, 950000]])
    steps = np.concatenate([rng.integers(0, 10_000, 300), [0, 2**32 - 1, 3, 0, 7, 2**33]])
    for shape in [(4, 2, 3), (1,), (2, 5)]:
        np.testing.assert_array_equal(session_normals(seeds, steps, shape), reference(seeds, steps, shape))


def test_a_session_draws_the_same_alone_or_in_a_batch_and_differs_by_step():
    seeds, steps = np.array([5, 6, 7]), np.array([0, 0, 1])
    batch = session_normals(seeds, steps, (3,))
    for i in range(3):
        np.testing.assert_array_equal(session_normals(seeds[i : i + 1], steps[i : i + 1], (3,))[0], batch[i])
    assert not np.array_equal(session_normals([5], [1], (3,)), batch[:1])
