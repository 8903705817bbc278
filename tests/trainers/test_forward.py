"""The scoring pass on a real tiny model: ResRL weights from whole groups, independent of the
micro-batch size and of the order of groups; hidden states from the hook match HF's."""

from __future__ import annotations

import torch

from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.forward import ResRLSettings, capture_hidden, causal_logits, score_batch

SETTINGS = ResRLSettings(rank=8, max_pos_tokens=40, min_pos_tokens=4, w_min=0.1, lam=0.1, q_lo=0.2, q_hi=0.8,
                         niter=4, residual_norm="normalized", hidden_layer=-2, sign_from="advantage")


def _batch(tok, n_groups=3, G=4, T=24, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    B = n_groups * G
    ids = torch.randint(10, tok.vocab_size - 10, (B, T), generator=g)
    lens = torch.randint(T // 2, T + 1, (B,), generator=g)
    attn = (torch.arange(T)[None] < lens[:, None]).long()
    loss_mask = ((torch.arange(T)[None] >= 6) & attn.bool()).float()  # prompt of 6 tokens
    seq_adv = torch.tensor([1.0, -1.0, -0.5, 0.5] * n_groups)
    return Batch(input_ids=ids * attn, attention_mask=attn, loss_mask=loss_mask, logp_sample=torch.zeros(B, T),
                 reward=(seq_adv > 0).float(), seq_adv=seq_adv, group_id=torch.arange(n_groups).repeat_interleave(G),
                 response_len=loss_mask.sum(1).long())


def _score(model, batch, mb, seeds):
    return score_batch(model, batch, micro_batch_size=mb, temperature=1.0, device=torch.device("cpu"),
                       resrl=SETTINGS, group_seed=seeds)


def test_weights_do_not_depend_on_micro_batch_size_or_group_order(tiny):
    model, tok = tiny
    batch = _batch(tok)
    seeds = {0: 11, 1: 12, 2: 13}
    _, _, w1, s1 = _score(model, batch, 1, seeds)
    _, _, w5, _ = _score(model, batch, 5, seeds)
    _, _, w12, _ = _score(model, batch, 12, seeds)
    torch.testing.assert_close(w1, w5, rtol=0, atol=1e-4)  # float32 noise of different padded shapes
    torch.testing.assert_close(w1, w12, rtol=0, atol=1e-4)  # float32 noise of different padded shapes
    assert all(s.weighted for s in s1)
    neg = (batch.seq_adv[:, None] < 0) & batch.loss_mask.bool()
    pos = (batch.seq_adv[:, None] > 0) & batch.loss_mask.bool()
    assert torch.allclose(w1[pos], torch.tensor(0.1)) and w1[neg].min() >= 0.1 - 1e-6 and w1[neg].max() <= 1 + 1e-6
    assert torch.all(w1[~batch.loss_mask.bool()] == 1.0)
    # reverse the order of the groups: rows move, each row's weights do not
    perm = torch.cat([torch.arange(8, 12), torch.arange(4, 8), torch.arange(0, 4)])
    _, _, wp, _ = _score(model, batch.rows(perm), 3, seeds)
    torch.testing.assert_close(wp, w1[perm], rtol=0, atol=1e-4)  # float32 noise of different padded shapes


def test_hook_captures_penultimate_hidden_states(tiny):
    model, tok = tiny
    ids = torch.randint(10, 200, (2, 9))
    with torch.no_grad(), capture_hidden(model, -2) as got:
        out = model(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(got[0], out.hidden_states[-2])


def test_logp_old_is_independent_of_micro_batching(tiny):
    model, tok = tiny
    batch = _batch(tok, seed=1)
    a = score_batch(model, batch, micro_batch_size=2, temperature=1.0, device=torch.device("cpu"), resrl=None, group_seed={})[0]
    b = score_batch(model, batch, micro_batch_size=12, temperature=1.0, device=torch.device("cpu"), resrl=None, group_seed={})[0]
    real = batch.attention_mask.bool()  # positions past a row's end are padding in either case
    torch.testing.assert_close(a[real], b[real], rtol=0, atol=1e-4)


def test_causal_logits_equal_padding_masked_logits_at_real_tokens(tiny):
    """Right-padded rows need no padding mask: real tokens get the same logits either way."""
    model, tok = tiny
    batch = _batch(tok)
    with torch.no_grad():
        masked = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
        causal = causal_logits(model, batch.input_ids)
    real = batch.attention_mask.bool()
    assert not real.all()  # some rows are padded
    torch.testing.assert_close(causal[real], masked[real], atol=1e-5, rtol=1e-5)
