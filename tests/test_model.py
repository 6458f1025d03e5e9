import json

import pytest
import torch

from cosmos3_robot.model import CheckpointError, WorldModel, attention_mask, get_config
from cosmos3_robot.model.flow import add_noise, euler_schedule, sample_time
from cosmos3_robot.model.mot import MoTBlock
from cosmos3_robot.model.mrope import rope_angles, text_positions
from cosmos3_robot.model.tokens import ByteTokenizer, DomainAwareLinear

CFG = get_config("tiny")


def make_batch(b=2, C=2, F=2, v=1, seed=0, domain=0, a_dims=2):
    g = torch.Generator().manual_seed(seed)
    n, c = CFG.latent_size, CFG.latent_channels
    mask = torch.arange(64)[None].repeat(b, 1) < a_dims
    return dict(
        text_ids=ByteTokenizer(CFG.max_text_len).encode(["push the T"] * b),
        ctx_latents=torch.randn(b, C, v, c, n, n, generator=g),
        ctx_state=torch.randn(b, C, 64, generator=g) * mask[:, None],
        fut_latents=torch.randn(b, F, v, c, n, n, generator=g),
        fut_state=torch.randn(b, F, 64, generator=g) * mask[:, None],
        actions=torch.randn(b, F, 64, generator=g) * mask[:, None],
        action_mask=mask, state_mask=mask, domain=torch.full((b,), domain),
    )


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = WorldModel(CFG).eval()
    for head in (m.frame_out, m.judge_head):  # heads start at zero; give them weights to test outputs
        torch.nn.init.normal_(head.weight, std=0.1)
    torch.nn.init.normal_(m.action_out.weight, std=0.1)
    torch.nn.init.normal_(m.state_out.weight, std=0.1)
    return m


def test_attention_mask_rules():
    n_text, C, F, step = 3, 2, 1, 2
    m = attention_mask(n_text, C, F, step)
    text = slice(0, 3)
    ctx0, ctx1 = slice(3, 5), slice(5, 7)
    noisy = slice(7, 10)
    assert torch.equal(m[text, text], torch.ones(3, 3, dtype=torch.bool).tril())
    assert not m[text, 3:].any()  # reasoner never sees generator tokens
    assert m[ctx0, text].all() and m[ctx0, ctx0].all() and not m[ctx0, ctx1].any() and not m[ctx0, noisy].any()
    assert m[ctx1, ctx0].all() and not m[ctx1, noisy].any()
    assert m[noisy].all()


def test_generator_tokens_never_change_reasoner_outputs():
    torch.manual_seed(0)
    block = MoTBlock(CFG)
    n_r, L = 5, 12
    x = torch.randn(2, L, CFG.dim)
    cos, sin = rope_angles(text_positions(L), CFG.head_dim)
    mask = attention_mask(n_r, 0, 1, L - n_r - 1)  # text + one noisy step + one action token
    out, _ = block(x, n_r, cos, sin, mask)
    x2 = x.clone()
    x2[:, n_r:] += torch.randn(2, L - n_r, CFG.dim)
    out2, _ = block(x2, n_r, cos, sin, mask)
    torch.testing.assert_close(out[:, :n_r], out2[:, :n_r])
    assert (out[:, n_r:] - out2[:, n_r:]).abs().max() > 1e-3
    x3 = x.clone()
    x3[:, 3] += 1.0  # a later text token
    out3, _ = block(x3, n_r, cos, sin, mask)
    torch.testing.assert_close(out[:, :3], out3[:, :3])
    assert (out[:, 3:] - out3[:, 3:]).abs().max() > 1e-3  # later text and generator tokens see it


def test_towers_have_separate_weights():
    block = MoTBlock(CFG)
    r, g = block.towers
    assert r.wqkv.weight.data_ptr() != g.wqkv.weight.data_ptr()
    assert {n.split(".")[0] for n, _ in r.named_parameters()} >= {"attn_norm", "wqkv", "q_norm", "k_norm", "wo",
                                                                  "mlp_norm", "w_gate_up", "w_down"}


def test_full_model_causality(model):
    """End to end: future frames/actions never change text-conditioned context outputs; the
    prediction depends on the actions (forward dynamics) and on the text."""
    batch = make_batch()
    t = torch.full((2,), 0.5)
    args = lambda b: (b["text_ids"], b["ctx_latents"], b["ctx_state"], b["fut_latents"], b["fut_state"],  # noqa
                      b["actions"], b["domain"], t, t)
    out = model(*args(batch))
    b2 = dict(batch, actions=batch["actions"] + 1.0 * batch["action_mask"][:, None])
    out2 = model(*args(b2))
    assert (out["frames"] - out2["frames"]).abs().max() > 1e-4
    b3 = dict(batch, text_ids=ByteTokenizer(CFG.max_text_len).encode(["other task"] * 2))
    assert (model(*args(b3))["frames"] - out["frames"]).abs().max() > 1e-4


def test_cached_and_uncached_agree(model):
    batch = make_batch(C=3)
    t_f, t_a = torch.tensor([0.3, 0.9]), torch.tensor([0.0, 0.5])
    full = model(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"],
                 batch["fut_state"], batch["actions"], batch["domain"], t_f, t_a)
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
    cached = model.velocity(cache, batch["fut_latents"], batch["fut_state"], batch["actions"], t_f, t_a)
    for key in full:
        torch.testing.assert_close(cached[key], full[key], atol=1e-5, rtol=1e-4)
    # extending a cache step by step equals encoding the whole context at once (across env steps)
    step_cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"][:, :1], batch["ctx_state"][:, :1],
                                     batch["domain"])
    step_cache = model.extend_prefix(step_cache, batch["ctx_latents"][:, 1:], batch["ctx_state"][:, 1:])
    assert step_cache.n_context == 3
    for (k1, v1), (k2, v2) in zip(step_cache.kv, cache.kv):
        torch.testing.assert_close(k1, k2, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(v1, v2, atol=1e-5, rtol=1e-4)


def test_sampling_is_seeded_and_modes_keep_given_groups(model):
    batch = make_batch()
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
    kw = dict(n_future=2, n_views=1, action_mask=batch["action_mask"], state_mask=batch["state_mask"])
    a = model.sample(cache, **kw, generator=torch.Generator().manual_seed(1))
    b = model.sample(cache, **kw, generator=torch.Generator().manual_seed(1))
    c = model.sample(cache, **kw, generator=torch.Generator().manual_seed(2))
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert (a["frames"] - c["frames"]).abs().max() > 1e-4
    assert torch.all(a["actions"][:, :, 2:] == 0)  # padded action dims stay zero
    fd = model.sample(cache, **kw, actions=batch["actions"], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fd["actions"], batch["actions"])  # forward dynamics: actions given
    inv = model.sample(cache, **kw, fut_latents=batch["fut_latents"], fut_state=batch["fut_state"],
                       generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(inv["frames"], batch["fut_latents"])  # inverse dynamics: frames given
    assert inv["actions"].shape == (2, 2, 64)
    with pytest.raises(ValueError, match="sampling steps = 0"):
        model.sample(cache, **kw, steps=0)


def test_domain_aware_linear_uses_per_domain_weights():
    torch.manual_seed(0)
    layer = DomainAwareLinear(4, 6, 5)
    x = torch.randn(2, 3, 6)
    same = layer(x, torch.tensor([1, 1]))
    diff = layer(x, torch.tensor([1, 2]))
    torch.testing.assert_close(same[0], diff[0])
    assert (same[1] - diff[1]).abs().max() > 1e-3
    torch.testing.assert_close(same[0], x[0] @ layer.weight[1] + layer.bias[1])
    with pytest.raises(ValueError, match="domain id"):
        layer(x, torch.tensor([0, 4]))


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer(12)
    ids = tok.encode(["push T", "é"])
    assert ids.shape == (2, 12) and ids[0, 0] == 257
    assert tok.decode(ids) == ["push T", "é"]
    assert tok.decode(tok.encode(["a" * 50])) == ["a" * 11]  # BOS + 11 bytes


def test_flow_time_sampling_and_noise():
    g = torch.Generator().manual_seed(0)
    t = sample_time(10000, generator=g)
    assert 0 < t.min() and t.max() < 1 and abs(t.mean().item() - 0.5) < 0.02
    t_shift = sample_time(10000, shift=3.0, generator=torch.Generator().manual_seed(0))
    assert t_shift.mean() > t.mean() + 0.1  # shift > 1 moves time toward noise
    x, n = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(add_noise(x, n, torch.zeros(3)), x)
    torch.testing.assert_close(add_noise(x, n, torch.ones(3)), n)
    s = euler_schedule(4)
    assert s[0] == 1 and s[-1] == 0 and len(s) == 5


def overfit(model, batch, probs, steps=300, context_noise=0.0, motion_weight=0.0) -> list[float]:
    """Adam on one fixed batch (the same seed every step: one set of noise and times to memorize)
    until the loss falls 10x or `steps` run out."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        out = model.flow_loss(batch, torch.Generator().manual_seed(0), mode_probs=probs, context_noise=context_noise,
                              motion_weight=motion_weight)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
        if losses[-1] < losses[0] / 10:
            break
    return losses


@pytest.mark.parametrize("mode", ["forward_dynamics", "policy", "inverse_dynamics", "video_prediction"])
def test_tiny_model_overfits_one_batch_in_each_mode(mode):
    torch.manual_seed(0)
    model = WorldModel(CFG)
    batch = make_batch(b=4)
    probs = {"forward_dynamics": (1, 0, 0, 0), "policy": (0, 1, 0, 0), "inverse_dynamics": (0, 0, 1, 0),
             "video_prediction": (0, 0, 0, 1)}[mode]
    losses = overfit(model, batch, probs)
    assert losses[-1] < losses[0] / 10, f"{mode}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses)} steps"


def test_judge_learns_to_separate_frames():
    torch.manual_seed(0)
    model = WorldModel(CFG)
    batch = make_batch(b=8)
    frames = batch["ctx_latents"][:, 0]
    success = torch.tensor([1, 0] * 4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.judge_loss(batch["text_ids"], frames, success).item()
    for _ in range(100):
        loss = model.judge_loss(batch["text_ids"], frames, success)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10
    probs = torch.sigmoid(model.judge_logits(batch["text_ids"], frames))
    assert torch.all((probs > 0.5) == success.bool())


def test_save_load_round_trip_bit_identical(tmp_path, model):
    model.metadata = {"embodiments": {"pusht": 0}, "normalizers": {"action": {"center": [1.0, 2.0]}}}
    model.save_pretrained(tmp_path / "ckpt")
    loaded = WorldModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.metadata == model.metadata and loaded.cfg == model.cfg
    batch = make_batch()
    t = torch.full((2,), 0.4)
    args = (batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"], batch["fut_state"],
            batch["actions"], batch["domain"], t, t)
    with torch.no_grad():
        a, b = model(*args), loaded(*args)
    for k in a:
        assert torch.equal(a[k], b[k])


def test_sharded_checkpoint(tmp_path, model):
    model.save_pretrained(tmp_path, max_shard_bytes=200_000)
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "model.safetensors.index.json").is_file()
    loaded = WorldModel.from_pretrained(tmp_path)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_checkpoint_errors_name_file_and_key(tmp_path, model):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupt"):
        WorldModel.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors' is missing"):
        WorldModel.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model"]["ffn_dim"] = 96
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"key '.*w_gate_up.weight' has shape"):
        WorldModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json' is missing"):
        WorldModel.from_pretrained(tmp_path)


def test_nano_parameter_count_on_meta():
    with torch.device("meta"):
        nano = WorldModel(get_config("nano"))
    n = sum(p.numel() for p in nano.parameters())
    # two Qwen3-8B-shaped towers (36 x 4096, GQA 32/8, SwiGLU 12288) + embeddings: ~15B
    assert 14.5e9 < n < 17e9, n
    tower = sum(p.numel() for p in nano.blocks[0].towers[0].parameters())
    assert tower == 4096 * (32 + 16) * 128 + 32 * 128 * 4096 + 3 * 4096 * 12288 + 2 * 4096 + 2 * 128


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        get_config("huge")


def test_residual_frames_mode():
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny", residual_frames=True))
    batch = make_batch(b=4)
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
    torch.testing.assert_close(cache.last_latents, batch["ctx_latents"][:, -1:])
    inv = model.sample(cache, 2, 1, batch["action_mask"], batch["state_mask"], fut_latents=batch["fut_latents"],
                       fut_state=batch["fut_state"], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(inv["frames"], batch["fut_latents"])  # given frames come back unchanged
    # an untrained model (zero frame head) keeps its noise around the last context frame, not around 0
    fd = model.sample(cache, 1, 1, batch["action_mask"], batch["state_mask"], actions=batch["actions"][:, :1],
                      generator=torch.Generator().manual_seed(0))
    plain = WorldModel(get_config("tiny"))
    plain.load_state_dict(model.state_dict())
    fd_plain = plain.sample(plain.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"],
                                                batch["domain"]), 1, 1, batch["action_mask"], batch["state_mask"],
                            actions=batch["actions"][:, :1], generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fd["frames"] - fd_plain["frames"], batch["ctx_latents"][:, -1:].expand_as(fd["frames"]))
    losses = overfit(model, batch, (1, 0, 0, 0))
    assert losses[-1] < losses[0] / 10


def test_context_noise_corrupts_only_the_context(monkeypatch):
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny", residual_frames=True))
    batch = make_batch(b=4)
    original = {k: v.clone() for k, v in batch.items() if torch.is_tensor(v)}
    plain = model.flow_loss(batch, torch.Generator().manual_seed(1))
    zero = model.flow_loss(batch, torch.Generator().manual_seed(1), context_noise=0.0)
    torch.testing.assert_close(plain["loss"], zero["loss"])
    seen = {}
    forward = model.forward

    def spy(text_ids, ctx_latents, ctx_state, *args):
        seen["ctx"], seen["state"] = ctx_latents, ctx_state
        return forward(text_ids, ctx_latents, ctx_state, *args)

    monkeypatch.setattr(model, "forward", spy)
    noisy = model.flow_loss(batch, torch.Generator().manual_seed(1), context_noise=0.5)
    assert noisy["loss"].item() != plain["loss"].item()
    for k, v in original.items():  # the batch is not modified in place
        torch.testing.assert_close(batch[k], v)
    diff = (seen["ctx"] - batch["ctx_latents"]).flatten(1)
    assert (diff.abs().max(1).values > 0).any() and diff.std(1).max() < 0.5 * 1.3
    # padded state dims stay exactly zero
    pad = ~batch["state_mask"][:, None].expand_as(seen["state"])
    assert (seen["state"][pad] == 0).all() and not torch.equal(seen["state"], batch["ctx_state"])
    monkeypatch.undo()
    losses = overfit(model, batch, (1, 0, 0, 0), context_noise=0.3)  # still trainable
    assert losses[-1] < losses[0] / 10


def test_noise_scale_zero_samples_the_mean_flow(model):
    batch = make_batch(b=2)
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])

    def fd(seed, scale):
        return model.sample(cache, 1, 1, batch["action_mask"], batch["state_mask"], actions=batch["actions"][:, :1],
                            generator=torch.Generator().manual_seed(seed), noise_scale=scale)["frames"]

    torch.testing.assert_close(fd(0, 0.0), fd(1, 0.0))  # no noise: the seed no longer matters
    assert not torch.allclose(fd(0, 1.0), fd(1, 1.0))
    # shrinking the starting noise shrinks the spread between seeds
    assert (fd(0, 0.5) - fd(1, 0.5)).abs().mean() < (fd(0, 1.0) - fd(1, 1.0)).abs().mean()


def test_action_to_frames_path_starts_as_a_no_op_and_makes_frames_depend_on_actions():
    torch.manual_seed(0)
    base = WorldModel(get_config("tiny", residual_frames=True))
    torch.nn.init.normal_(base.frame_out.weight, std=0.1)
    grown = WorldModel(get_config("tiny", residual_frames=True, action_to_frames=True))
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert missing == ["action_cond.weight", "action_cond.bias"] and not unexpected
    batch = make_batch(b=2)
    args = (batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"], batch["fut_state"],
            batch["actions"], batch["domain"], torch.full((2,), 0.5), torch.zeros(2))
    torch.testing.assert_close(grown(*args)["frames"], base(*args)["frames"])  # zero-initialized: same model
    torch.nn.init.normal_(grown.action_cond.weight, std=0.1)
    other = list(args)
    other[5] = -batch["actions"]
    # frame tokens now see their own action directly, not only through attention
    assert not torch.allclose(grown(*args)["frames"], grown(*other)["frames"])


def test_x0_frame_prediction_velocity_cache_and_sampler():
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny", residual_frames=True, frame_prediction="x0")).eval()
    torch.nn.init.normal_(model.frame_out.weight, std=0.1)
    batch = make_batch(C=2)
    t_f, t_a = torch.tensor([0.3, 1.0]), torch.zeros(2)
    full = model(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"],
                 batch["fut_state"], batch["actions"], batch["domain"], t_f, t_a)
    # the head predicts clean latents; the velocity that moves x_t there in the remaining time t
    torch.testing.assert_close(full["frames"], (batch["fut_latents"] - full["frames_x0"]) / t_f.view(-1, 1, 1, 1, 1, 1))
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
    cached = model.velocity(cache, batch["fut_latents"], batch["fut_state"], batch["actions"], t_f, t_a)
    for key in full:
        torch.testing.assert_close(cached[key], full[key], atol=1e-5, rtol=1e-4)
    # one Euler step from t=1 with no starting noise lands exactly on the predicted change
    kw = dict(action_mask=batch["action_mask"], state_mask=batch["state_mask"], actions=batch["actions"][:, :1])
    one = model.sample(cache, 1, 1, **kw, steps=1, noise_scale=0.0)
    x0 = model.velocity(cache, torch.zeros_like(batch["fut_latents"][:, :1]), torch.zeros_like(batch["fut_state"][:, :1]),
                        batch["actions"][:, :1] * batch["action_mask"][:, None], torch.ones(2), torch.zeros(2))["frames_x0"]
    torch.testing.assert_close(one["frames"], x0 + batch["ctx_latents"][:, -1:])
    losses = overfit(WorldModel(get_config("tiny", residual_frames=True, frame_prediction="x0")), batch, (1, 0, 0, 0))
    assert losses[-1] < losses[0] / 10
    with pytest.raises(ValueError, match="frame_prediction='eps'"):
        get_config("tiny", frame_prediction="eps")


def test_motion_weight_scales_the_frame_loss_on_changing_latents():
    """Hand-computed: an untrained x0 model predicts zero change, so its frame loss is the mean of
    change**2 * (1 + w * [|change| > MOTION_THRESHOLD])."""
    from cosmos3_robot.model.world_model import MOTION_THRESHOLD

    torch.manual_seed(0)
    model = WorldModel(get_config("tiny", residual_frames=True, frame_prediction="x0"))  # zero frame head
    batch = make_batch(b=2, F=1)
    change = torch.zeros_like(batch["fut_latents"])
    change[:, :, :, :2, :3, :3] = 1.0  # a moving patch
    change[:, :, :, 2:4, 5:7, 5:7] = 0.1  # below the motion threshold
    batch["fut_latents"] = batch["ctx_latents"][:, -1:] + change
    for w in (0.0, 4.0):
        loss = model.flow_loss(batch, torch.Generator().manual_seed(0), (1, 0, 0, 0), motion_weight=w)["frames"]
        moving = (change.abs() > MOTION_THRESHOLD).float()
        torch.testing.assert_close(loss, (change**2 * (1 + w * moving)).mean())


def test_mode_probs_forward_share():
    from cosmos3_robot.train.world_model import mode_probs
    from cosmos3_robot.model.world_model import MODE_PROBS

    assert mode_probs(None) == MODE_PROBS
    p = mode_probs(0.6)
    assert p[0] == 0.6 and sum(p) == pytest.approx(1.0)
    assert p[1] / p[2] == pytest.approx(MODE_PROBS[1] / MODE_PROBS[2])  # the other modes keep their ratios
    with pytest.raises(ValueError, match="forward_share=1.5"):
        mode_probs(1.5)


def test_frame_pos_embed_lets_identical_patches_differ_by_place():
    torch.manual_seed(0)
    batch = make_batch(b=1)
    for key in ("ctx_latents", "fut_latents"):
        batch[key] = torch.zeros_like(batch[key])  # a blank table: every patch identical
    args = (batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"], batch["fut_state"],
            batch["actions"], batch["domain"], torch.full((1,), 1.0), torch.zeros(1))
    spread = {}
    for pe in (False, True):
        torch.manual_seed(0)
        m = WorldModel(get_config("tiny", latent_patch=2, frame_pos_embed=pe)).eval()
        torch.nn.init.normal_(m.frame_out.weight, std=0.1)
        tokens = m.patchify(m(*args)["frames"])[0, 0]  # (tokens, patch values) of the predicted frame
        spread[pe] = (tokens - tokens[:1]).abs().max().item()
    # without it, places differ only through rotary offsets to the few non-frame tokens: weakly
    assert spread[True] > 10 * spread[False], spread


def test_frame_t1_share_puts_frames_at_pure_noise(monkeypatch):
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny", residual_frames=True, frame_prediction="x0"))
    batch = make_batch(b=64, F=1)
    seen = {}
    forward = model.forward

    def spy(*args):
        seen["t_f"] = args[7]
        return forward(*args)

    monkeypatch.setattr(model, "forward", spy)
    model.flow_loss(batch, torch.Generator().manual_seed(0), (0.5, 0.3, 0.2, 0.0))
    assert (seen["t_f"] < 1).float().mean() > 0.7  # logit-normal times (and 0 for inverse dynamics)
    model.flow_loss(batch, torch.Generator().manual_seed(0), (0.5, 0.3, 0.2, 0.0), frame_t1_share=1.0)
    t_f = seen["t_f"]
    assert set(t_f.unique().tolist()) == {0.0, 1.0}  # pure noise, except inverse dynamics' clean frames
    assert 0.05 < (t_f == 0).float().mean() < 0.4


def test_conv_frame_head_cache_sampler_and_context():
    torch.manual_seed(0)
    cfg = get_config("tiny", residual_frames=True, frame_prediction="x0", frame_head="conv")
    model = WorldModel(cfg).eval()
    batch = make_batch(C=3)
    kw = dict(action_mask=batch["action_mask"], state_mask=batch["state_mask"], actions=batch["actions"][:, :1])
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
    # zero-initialized last conv: an untrained model predicts no change from the last context frame
    torch.testing.assert_close(model.sample(cache, 1, 1, **kw, steps=1)["frames"], batch["ctx_latents"][:, -1:])
    torch.nn.init.normal_(model.frame_conv[-1].weight, std=0.1)
    t_f, t_a = torch.tensor([0.3, 1.0]), torch.zeros(2)
    full = model(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"],
                 batch["fut_state"], batch["actions"], batch["domain"], t_f, t_a)
    assert full["frames_x0"].shape == batch["fut_latents"].shape
    for cached_from in (cache, model.extend_prefix(model.encode_prefix(
            batch["text_ids"], batch["ctx_latents"][:, :1], batch["ctx_state"][:, :1], batch["domain"]),
            batch["ctx_latents"][:, 1:], batch["ctx_state"][:, 1:])):
        torch.testing.assert_close(cached_from.recent_latents, batch["ctx_latents"][:, -2:])
        out = model.velocity(cached_from, batch["fut_latents"], batch["fut_state"], batch["actions"], t_f, t_a)
        for key in full:
            torch.testing.assert_close(out[key], full[key], atol=1e-5, rtol=1e-4)
    # the head reads the second-to-last context frame directly (motion), not only through attention
    other = batch["ctx_latents"].clone()
    other[:, -2] += 1.0
    moved = model(batch["text_ids"], other, batch["ctx_state"], batch["fut_latents"], batch["fut_state"],
                  batch["actions"], batch["domain"], t_f, t_a)
    assert not torch.allclose(moved["frames_x0"], full["frames_x0"])
    # one context frame: it stands in for both
    single = model.encode_prefix(batch["text_ids"], batch["ctx_latents"][:, :1], batch["ctx_state"][:, :1],
                                 batch["domain"])
    torch.testing.assert_close(single.recent_latents, batch["ctx_latents"][:, :1].repeat(1, 2, 1, 1, 1, 1))
    losses = overfit(WorldModel(cfg), make_batch(b=4), (1, 0, 0, 0))
    assert losses[-1] < losses[0] / 10
    with pytest.raises(ValueError, match="frame_head='mlp'"):
        get_config("tiny", frame_head="mlp")


def test_conv_head_draws_from_the_future_state():
    torch.manual_seed(0)
    cfg = get_config("tiny", frame_prediction="x0", frame_head="conv", conv_head_state=2)
    model = WorldModel(cfg).eval()
    torch.nn.init.normal_(model.frame_conv[-1].weight, std=0.1)
    torch.nn.init.normal_(model.state_out.weight, std=0.1)
    batch = make_batch(C=2, F=1)
    t_f, t_a = torch.tensor([0.5, 1.0]), torch.zeros(2)
    args = (batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"], batch["fut_state"],
            batch["actions"], batch["domain"], t_f, t_a)
    own = model(*args)
    # cached and uncached agree with the state planes too
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
    cached = model.velocity(cache, batch["fut_latents"], batch["fut_state"], batch["actions"], t_f, t_a)
    torch.testing.assert_close(cached["frames_x0"], own["frames_x0"], atol=1e-5, rtol=1e-4)
    # the head reads the model's own state estimate x_s - t v_s: handing it that estimate as a teacher hint
    # changes nothing; another hint changes the frame of exactly the examples that take it
    estimate = batch["fut_state"] - t_f.view(-1, 1, 1) * own["state"]
    same = model(*args, state_hint=estimate, hint_teacher=torch.tensor([True, True]))
    torch.testing.assert_close(same["frames_x0"], own["frames_x0"], atol=1e-5, rtol=1e-4)
    other = estimate.clone()
    other[..., :2] += 0.5
    moved = model(*args, state_hint=other, hint_teacher=torch.tensor([True, False]))
    assert not torch.allclose(moved["frames_x0"][0], own["frames_x0"][0])
    torch.testing.assert_close(moved["frames_x0"][1], own["frames_x0"][1])
    # dims past conv_head_state are not drawn from
    beyond = estimate.clone()
    beyond[..., 2:] += 0.5
    torch.testing.assert_close(model(*args, state_hint=beyond, hint_teacher=torch.tensor([True, True]))["frames_x0"],
                               own["frames_x0"], atol=1e-5, rtol=1e-4)
    losses = overfit(WorldModel(cfg), make_batch(b=4), (1, 0, 0, 0))
    assert losses[-1] < losses[0] / 10
    with pytest.raises(ValueError, match="needs frame_head='conv'"):
        get_config("tiny", conv_head_state=2)


def test_state_geometry_planes_residual_state_and_render_loss():
    torch.manual_seed(0)
    cfg = get_config("tiny", frame_prediction="x0", frame_head="conv", conv_head_state=6,
                     state_geometry="point:0,pose:2", residual_state=True)
    assert cfg.geometry_planes() == 6
    model = WorldModel(cfg).eval()
    torch.nn.init.normal_(model.frame_conv[-1].weight, std=0.1)
    torch.nn.init.normal_(model.state_out.weight, std=0.1)
    batch = make_batch(C=2, F=1, a_dims=6)
    t_f, t_a = torch.ones(2), torch.zeros(2)
    args = (batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["fut_latents"], batch["fut_state"],
            batch["actions"], batch["domain"], t_f, t_a)
    own = model(*args)
    cache = model.encode_prefix(batch["text_ids"], batch["ctx_latents"], batch["ctx_state"], batch["domain"])
    torch.testing.assert_close(cache.last_state, batch["ctx_state"][:, -1])
    cached = model.velocity(cache, batch["fut_latents"], batch["fut_state"], batch["actions"], t_f, t_a)
    torch.testing.assert_close(cached["frames_x0"], own["frames_x0"], atol=1e-5, rtol=1e-4)
    # residual state: the head's estimate is last context state + (x_s - t v_s); the sampler adds it back
    estimate = batch["ctx_state"][:, -1:] + batch["fut_state"] - own["state"]
    same = model(*args, state_hint=estimate, hint_teacher=torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(same["frames_x0"], own["frames_x0"], atol=1e-5, rtol=1e-4)
    kw = dict(action_mask=batch["action_mask"], state_mask=batch["state_mask"], actions=batch["actions"])
    zero = model.sample(cache, 1, 1, **kw, steps=1, noise_scale=0.0)
    torch.nn.init.zeros_(model.state_out.weight)
    torch.nn.init.zeros_(model.state_out.bias)
    still = model.sample(cache, 1, 1, **kw, steps=1, noise_scale=0.0)["state"]
    torch.testing.assert_close(still[:, 0], batch["ctx_state"][:, -1] * batch["state_mask"])  # no change predicted
    assert not torch.allclose(zero["state"], still)
    # a pose is drawn in its own frame: turning the pose (cos, sin) changes the frame, moving only dims past
    # the geometry does not
    turned = estimate.clone()
    turned[..., 4:6] = torch.tensor([0.0, 1.0])
    assert not torch.allclose(model(*args, state_hint=turned, hint_teacher=torch.ones(2, dtype=torch.bool))["frames_x0"],
                              same["frames_x0"])
    # renderer pretraining: the head alone learns to draw a fixed batch
    fresh = WorldModel(cfg)
    opt = torch.optim.Adam(fresh.frame_conv.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = fresh.render_loss(make_batch(b=4, F=1, a_dims=6), torch.Generator().manual_seed(0))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3
    with pytest.raises(ValueError, match="render_loss needs"):
        WorldModel(get_config("tiny")).render_loss(make_batch())
    with pytest.raises(ValueError, match="'circle:0' must be"):
        get_config("tiny", frame_head="conv", conv_head_state=6, state_geometry="circle:0")
    with pytest.raises(ValueError, match="past conv_head_state=4"):
        get_config("tiny", frame_head="conv", conv_head_state=4, state_geometry="point:0,pose:2")


def test_state_weight_scales_only_the_state_loss():
    model = WorldModel(CFG)
    torch.nn.init.normal_(model.state_out.weight, std=0.1)
    batch = make_batch(b=4)
    one = model.flow_loss(batch, torch.Generator().manual_seed(3))
    heavy = model.flow_loss(batch, torch.Generator().manual_seed(3), state_weight=20.0)
    assert one["state"] > 0
    torch.testing.assert_close(heavy["loss"] - one["loss"], 19.0 * one["state"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(heavy["frames"], one["frames"])
