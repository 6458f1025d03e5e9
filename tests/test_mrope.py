import torch

from cosmos3_robot.model.mrope import apply_rope, axis_of_slot, grid_positions, mrope_sections, rope_angles, text_positions


def standard_rope(x, positions, theta=10000.0):
    """Reference 1-D RoPE (rotate-half layout, as in Llama/Qwen) written independently."""
    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = positions.double()[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1).float(), torch.cat([ang.sin()] * 2, -1).float()
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def test_sections_match_cosmos_split():
    assert mrope_sections(64) == (24, 20, 20)
    axis = axis_of_slot(64)
    assert [(axis == a).sum().item() for a in range(3)] == [24, 20, 20]
    assert axis[:6].tolist() == [0, 1, 2, 0, 1, 2]  # interleaved
    assert axis[60:].tolist() == [0, 0, 0, 0]
    assert sum(mrope_sections(8)) == 8


def test_pure_text_sequence_equals_standard_rope():
    torch.manual_seed(0)
    for head_dim in (16, 32, 128):
        x = torch.randn(2, 3, 11, head_dim)
        pos = text_positions(11, start=5)
        cos, sin = rope_angles(pos, head_dim)
        torch.testing.assert_close(apply_rope(x, cos, sin), standard_rope(x, pos[0]), atol=1e-5, rtol=1e-5)


def test_relative_position_invariance():
    torch.manual_seed(0)
    hd = 32
    q, k = torch.randn(1, 1, 20, hd), torch.randn(1, 1, 20, hd)
    pos = torch.cat([text_positions(4), grid_positions(7, 2, 4), grid_positions(8, 2, 4)], dim=1)
    cos, sin = rope_angles(pos, hd)
    scores = apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-1, -2)
    shifted = pos + torch.tensor([[13], [5], [-3]])  # shift every axis by a constant
    cos2, sin2 = rope_angles(shifted, hd)
    scores2 = apply_rope(q, cos2, sin2) @ apply_rope(k, cos2, sin2).transpose(-1, -2)
    torch.testing.assert_close(scores, scores2, atol=1e-4, rtol=1e-4)
    # and the positions matter: a relative change alters the scores
    moved = pos.clone()
    moved[1, 4:] += 1
    cos3, sin3 = rope_angles(moved, hd)
    scores3 = apply_rope(q, cos3, sin3) @ apply_rope(k, cos3, sin3).transpose(-1, -2)
    assert (scores3 - scores).abs().max() > 1e-3


def test_grid_positions_layout():
    p = grid_positions(3, 2, 3, col_offset=3)
    assert p[0].tolist() == [3] * 6
    assert p[1].tolist() == [0, 0, 0, 1, 1, 1]
    assert p[2].tolist() == [3, 4, 5, 3, 4, 5]
