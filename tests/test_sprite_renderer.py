"""The sprite renderer: learned background and per-entity sprites composited by the state."""

import numpy as np
import pytest
import torch

from cosmos3_robot.model import SpriteRenderer, SpriteRendererConfig, StateRenderer, make_renderer
from cosmos3_robot.model.state_renderer import to_uint8
from cosmos3_robot.train.renderers import fit_sprites

SIZE = 48


def scene(states: np.ndarray) -> np.ndarray:
    """Frames drawn by hand (not by a SpriteRenderer): a grey floor with a dark corner, a blue disc of radius
    0.12 at the point (dims 0-1) and a red 0.5 x 0.16 bar at the pose (dims 2-5), its long side along the
    pose's x axis, drawn over the disc. (n, SIZE, SIZE, 3) uint8."""
    c = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    X, Y = np.meshgrid(c, c, indexing="xy")
    frames = np.empty((len(states), SIZE, SIZE, 3), np.float64)
    for n, s in enumerate(states):
        img = np.full((SIZE, SIZE, 3), 0.8)
        img[(X < -0.6) & (Y < -0.6)] = 0.3
        img[(X - s[0]) ** 2 + (Y - s[1]) ** 2 < 0.12**2] = (0.1, 0.2, 0.9)
        dx, dy = X - s[2], Y - s[3]
        bx, by = s[4] * dx + s[5] * dy, -s[5] * dx + s[4] * dy
        img[(np.abs(bx) < 0.25) & (np.abs(by) < 0.08)] = (0.9, 0.1, 0.1)
        frames[n] = img
    return (frames * 255).round().astype(np.uint8)


def random_states(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-np.pi, np.pi, n)
    return np.column_stack([rng.uniform(-0.7, 0.7, (n, 2)), rng.uniform(-0.6, 0.6, (n, 2)), np.cos(angle),
                            np.sin(angle)]).astype(np.float32)


def config(**kw) -> SpriteRendererConfig:
    return SpriteRendererConfig("point:0,pose:2", boxes=((0.0, 0.0, 0.16), (0.0, 0.0, 0.3)), image_size=SIZE,
                                sprite_size=16, **kw)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean() / 255**2
    return float(10 * np.log10(1 / mse))


@pytest.mark.slow  # an end-to-end training run: kept out of the 10-minute default suite
def test_sprites_fit_a_scene_and_draw_unseen_states():
    train, test = random_states(600, 0), random_states(50, 1)
    frames = torch.from_numpy(scene(train)).permute(0, 3, 1, 2).contiguous()
    torch.manual_seed(0)
    r = SpriteRenderer(config())
    before = psnr(r.draw(torch.from_numpy(test)), scene(test))
    info = fit_sprites(r, torch.from_numpy(train), frames, steps=600, batch=32, lr=3e-2, seed=0)
    drawn = r.draw(torch.from_numpy(test))
    assert drawn.shape == (50, SIZE, SIZE, 3) and drawn.dtype == np.uint8
    after = psnr(drawn, scene(test))
    assert after > 24 and after > before + 8, (before, after, info)
    # the bar turns with the pose: a frame drawn at 90 degrees matches the scene there, not at 0 degrees
    s = np.array([[0.5, 0.5, 0.0, 0.0, 0.0, 1.0]], np.float32)
    turned = r.draw(torch.from_numpy(s))
    assert psnr(turned, scene(s)) > psnr(turned, scene(s * [1, 1, 1, 1, 0, 0] + [0, 0, 0, 0, 1, 0])) + 3


def test_later_entities_are_drawn_on_top_and_rows_match_alone():
    r = SpriteRenderer(config())
    with torch.no_grad():
        r.alpha.fill_(10.0)  # both sprites opaque
        r.colour[0].fill_(-10.0)  # entity 0 black
        r.colour[1].fill_(10.0)  # entity 1 white
    same_place = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]])
    centre = r.draw(same_place)[0, SIZE // 2, SIZE // 2]
    assert (centre == 255).all()
    flipped = SpriteRenderer(config(draw_order=(1, 0)))
    flipped.load_state_dict(r.state_dict())
    assert (flipped.draw(same_place)[0, SIZE // 2, SIZE // 2] == 0).all()
    states = torch.from_numpy(random_states(7, 2))
    batch = r.draw(states)
    np.testing.assert_array_equal(np.concatenate([r.draw(states[i : i + 1]) for i in range(7)]), batch)


@pytest.mark.parametrize("kw, match", [({"boxes": ((0.0, 0.0, 0.1),)}, "boxes has 1 entries for 2"),
                                       ({"boxes": ((0.0, 0.0, 0.1), (0.0, 0.0, -1.0))}, "half_width > 0"),
                                       ({"draw_order": (0, 0)}, "draw_order")])
def test_bad_configs_name_the_field(kw, match):
    base = {"geometry": "point:0,pose:2", "boxes": ((0.0, 0.0, 0.1), (0.0, 0.0, 0.1))}
    with pytest.raises(ValueError, match=match):
        SpriteRenderer(SpriteRendererConfig(**(base | kw)))


def test_make_renderer_reads_the_kind_and_round_trips_through_a_checkpoint(tmp_path):
    from conftest import save_structured
    from cosmos3_robot.backends import load_backend
    from cosmos3_robot.embodiments import Normalizer, load_spec
    from cosmos3_robot.tasks.pusht.structured import PushTWorld, sprite_config, task_config, tower_config

    assert isinstance(make_renderer(config().to_dict()), SpriteRenderer)
    conv = {"geometry": "point:0,pose:2", "width": 8, "layers": 3, "ae_widths": [8, 8, 8]}
    assert isinstance(make_renderer(conv), StateRenderer)  # checkpoints written before sprites had no kind
    with pytest.raises(ValueError, match="kind='nerf'"):
        make_renderer({**conv, "kind": "nerf"})
    spec = load_spec("pusht")
    norm = Normalizer.fit(np.random.default_rng(0).uniform(0, 512, (100, 2)), "min_max", feature="observation.state")
    torch.manual_seed(0)
    world = PushTWorld(task_config(norm.to_dict(), tower_config(spec, dim=16, layers=1, ffn_dim=16, head_width=16),
                                   sprite_config(sprite_size=8)), spec)
    with torch.no_grad():
        world.renderer.colour.normal_()
        world.renderer.alpha.normal_()
    backend = load_backend(str(save_structured(world, spec, tmp_path / "sprites")))
    assert isinstance(backend.task.renderer, SpriteRenderer)
    states = torch.from_numpy(random_states(5, 3))
    np.testing.assert_array_equal(backend.task.renderer.draw(states), world.renderer.draw(states))


def test_sprite_loss_weights_the_foreground_unless_legacy():
    """The corrected loss weighs 5x only pixels that differ from the background's colours; `legacy=True` (the
    shipped renderer's loss) compared frames with the background's logits, so a mid-grey background pixel
    counted as foreground. `fit_sprites` says which loss it ran."""
    from cosmos3_robot.train.renderers import sprite_loss_weight

    background = torch.logit(torch.full((3, 4, 4), 0.5))
    frame = torch.full((1, 3, 4, 4), 0.5)
    frame[0, :, 0, 0] = 1.0  # one foreground pixel
    fixed, legacy = sprite_loss_weight(frame, background, False), sprite_loss_weight(frame, background, True)
    assert fixed.sum() == 16 + 4 and fixed[0, 0, 0, 0] == 5
    assert (legacy == 5).all()
    train = random_states(8, 0)
    frames = torch.from_numpy(scene(train)).permute(0, 3, 1, 2).contiguous()
    info = fit_sprites(SpriteRenderer(config()), torch.from_numpy(train), frames, steps=2, batch=4, legacy=True)
    assert info["legacy_loss"] is True


def test_draw_in_windows_equals_the_full_composite():
    """`draw` samples each sprite only in a window around it; the frames are the full composite's, byte for byte,
    with sprites turned any way, off-centre boxes, entities at and beyond the image's edges, and overlaps."""
    torch.manual_seed(3)
    cfg = SpriteRendererConfig("point:0,pose:2", boxes=((0.0, 0.0, 0.1), (0.05, 0.25, 0.3)), image_size=SIZE,
                               sprite_size=16)
    r = SpriteRenderer(cfg)
    with torch.no_grad():  # sprites with content everywhere, and a non-identity placement
        r.colour.normal_()
        r.alpha.normal_(1.0, 2.0)
        r.place.copy_(torch.tensor([[0.9, 1.1, 0.05, -0.02], [1.0, 0.95, 0.0, 0.03]]))
    states = torch.from_numpy(random_states(200, 7))
    states[:40, :4] *= 1.6  # out to and past the edges
    states[40:60, 2:4] = states[40:60, 0:2]  # on top of each other
    with torch.no_grad():
        full = r(states)
    # the float composite: the same operations, but on some CPUs torch's own kernels round a few values in the last
    # bits differently (2% of them by up to 1.5e-6 on one Intel host); the frames' bytes are exact everywhere
    np.testing.assert_allclose(r.composite_windows(states).numpy(), full.numpy(), rtol=0, atol=4e-6)
    np.testing.assert_array_equal(r.draw(states), to_uint8(full))  # windows converted to bytes, the rest cached
    assert (r.draw(states[:1]) == r.draw(states)[:1]).all()
    with torch.no_grad():  # drawing caches what the weights give; changed weights draw anew
        r.colour.add_(0.5)
        r.background.mul_(0.5)
        full = r(states)
    np.testing.assert_array_equal(r.draw(states), to_uint8(full))
