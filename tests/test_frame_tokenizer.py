import pytest
import torch

from cosmos3_robot.model import FrameAutoencoder, WorldModel, get_config, psnr
from cosmos3_robot.train.world_model import train_frame_autoencoder
from cosmos3_robot.model.frame_tokenizer import foreground

CFG = get_config("tiny")


def synthetic_frames(n=256, size=32, seed=0):
    """Coloured squares on a grey floor: a scene with structure an autoencoder can learn."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.full((n, 3, size, size), 120, dtype=torch.uint8)
    for i in range(n):
        x, y = torch.randint(0, size - 8, (2,), generator=g).tolist()
        colour = torch.randint(0, 256, (3, 1, 1), generator=g, dtype=torch.int64).to(torch.uint8)
        frames[i, :, y : y + 8, x : x + 8] = colour
    return frames


def test_shapes():
    ae = FrameAutoencoder(CFG)
    z = ae.encode(torch.zeros(2, 3, 3, 32, 32, dtype=torch.uint8))
    assert z.shape == (2, 3, CFG.latent_channels, CFG.latent_size, CFG.latent_size)
    assert ae.decode(z).shape == (2, 3, 3, 32, 32)


def test_training_improves_psnr_and_calibrates_latents():
    torch.manual_seed(0)
    ae = FrameAutoencoder(CFG)
    train, held_out = synthetic_frames(256), synthetic_frames(64, seed=1)
    with torch.no_grad():
        before = psnr(ae.reconstruct(held_out), held_out).mean().item()
    losses = train_frame_autoencoder(ae, train, steps=120, batch_size=16, lr=5e-3, progress=False)
    with torch.no_grad():
        after = psnr(ae.reconstruct(held_out), held_out).mean().item()
        z = ae.encode(train)
    assert losses[-1] < losses[0] / 2
    assert after > before + 4, (before, after)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 1e-3  # standardized latents
    assert (z.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


def test_psnr_values():
    a = torch.zeros(1, 3, 4, 4)
    assert psnr(a, a + 0.1).item() == pytest.approx(20.0, abs=1e-4)


def test_multi_camera_tokens_carry_a_camera_index():
    torch.manual_seed(0)
    model = WorldModel(CFG).eval()
    torch.nn.init.normal_(model.frame_out.weight, std=0.1)
    n, c = CFG.latent_size, CFG.latent_channels
    ctx = torch.randn(1, 1, 2, c, n, n)
    fut = torch.randn(1, 1, 2, c, n, n)
    args = lambda ctx, fut: (model.tokenize_text(["t"]), ctx, torch.zeros(1, 1, 64), fut,  # noqa: E731
                             torch.zeros(1, 1, 64), torch.zeros(1, 1, 64), torch.zeros(1, dtype=torch.long),
                             torch.full((1,), 0.5), torch.zeros(1))
    out = model(*args(ctx, fut))["frames"]
    assert out.shape == (1, 1, 2, c, n, n)
    swapped = model(*args(ctx.flip(2), fut.flip(2)))["frames"]
    # swapping the two cameras is not a symmetry: camera embeddings and column positions differ
    assert (swapped.flip(2) - out).abs().max() > 1e-4
    with pytest.raises(ValueError, match="exceed max_cameras"):
        model(*args(torch.randn(1, 1, 5, c, n, n), torch.randn(1, 1, 5, c, n, n)))


def test_foreground_mask_finds_objects_off_the_background():
    x = torch.ones(2, 3, 16, 16)  # white table
    x[0, :, 3:5, 6:9] = torch.tensor([0.25, 0.4, 1.0])[:, None, None]  # a small blue object
    x[1, 1, 10:12, 1:3] = 0.95  # within tolerance of white: background
    m = foreground(x)
    assert m.shape == (2, 1, 16, 16)
    assert m[0, 0, 3:5, 6:9].all() and m[0].sum() == 6
    assert m[1].sum() == 0


def test_detail_weight_sharpens_small_objects():
    """Same data, seed and steps: weighting the non-background pixels lowers the error on the small
    objects (PushT's pusher is ~5% of the pixels)."""
    g = torch.Generator().manual_seed(0)
    frames = torch.full((128, 3, 32, 32), 255, dtype=torch.uint8)
    for f in frames:
        r, c = torch.randint(0, 29, (2,), generator=g).tolist()
        f[:, r : r + 3, c : c + 3] = torch.tensor([60, 100, 250], dtype=torch.uint8)[:, None, None]
    err = {}
    for w in (0.0, 20.0):
        torch.manual_seed(0)
        ae = FrameAutoencoder(CFG)
        train_frame_autoencoder(ae, frames, steps=150, batch_size=16, lr=5e-3, progress=False, detail_weight=w)
        with torch.no_grad():
            rec = ae.reconstruct(frames[:32])
        x = frames[:32].float() / 255
        mask = foreground(x).expand_as(x).bool()
        err[w] = (rec - x).abs()[mask].mean().item()
    assert err[20.0] < 0.8 * err[0.0], err
