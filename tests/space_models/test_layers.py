from __future__ import annotations

import torch

from space_models.layers import MLP, AudioEncoder, AudioEncoderConfig, FiLM


def test_audio_encoder_lookahead_is_four_frames_and_exact():
    torch.manual_seed(0)
    enc = AudioEncoder(AudioEncoderConfig(channels=8))
    # calibrate batch norm as training would (untrained running stats shrink the signal to
    # ~1e-5 over 12 layers), then eval: batch norm becomes a fixed per-frame map
    for norm in enc.norms:
        norm.momentum = None  # cumulative average: one pass gives the exact statistics
    with torch.no_grad():
        enc(torch.randn(16, 64, 40))
    enc.eval()
    # 4 symmetric kernel-3 layers see 1 future frame each; the 8 causal kernel-5 layers none
    assert enc.lookahead == 4
    x = torch.randn(2, 40, 40)
    y = enc(x)
    for t in (0, 10, 30):
        changed = x.clone()
        changed[:, t + enc.lookahead + 1 :] = torch.randn_like(changed[:, t + enc.lookahead + 1 :])
        torch.testing.assert_close(enc(changed)[:, : t + 1], y[:, : t + 1], rtol=0, atol=0)
        # the frame right at the look-ahead does reach t: the bound is tight
        edge = x.clone()
        edge[:, t + enc.lookahead] += 1.0
        assert not torch.equal(enc(edge)[:, t], y[:, t])


def test_audio_encoder_keeps_the_timeline():
    enc = AudioEncoder(AudioEncoderConfig(channels=8, symmetric_layers=4, causal_layers=8))
    assert enc(torch.randn(3, 17, 40)).shape == (3, 17, 8)
    assert len(enc.convs) == 12


def test_film_zero_emotion_is_identity():
    torch.manual_seed(0)
    film = FiLM(9, 16)
    torch.nn.init.normal_(film.gamma.weight)  # trained-looking weights, not the zero init
    torch.nn.init.normal_(film.beta.weight)
    x = torch.randn(4, 7, 16)
    torch.testing.assert_close(film(x, torch.zeros(4, 9)), x, rtol=0, atol=0)
    torch.testing.assert_close(film(x, torch.zeros(4, 7, 9)), x, rtol=0, atol=0)
    happy = torch.zeros(4, 9)
    happy[:, 2] = 1.0
    assert not torch.allclose(film(x, happy), x)


def test_mlp_accepts_time_series():
    assert MLP(12, 5, 3)(torch.randn(2, 4, 12)).shape == (2, 4, 5)
