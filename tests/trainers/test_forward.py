"""The scoring pass and the update on a real tiny model: ResRL weights from whole groups,
independent of the micro-batch size and of the order of groups; hidden states from the hook match
HF's; padding-free causal logits; micro-batches (length-sorted) accumulate the exact update."""

from __future__ import annotations

import copy

import torch

from resrl_agents.config.schema import AlgoConfig
from resrl_agents.rollout.types import Batch
from resrl_agents.trainers.forward import ResRLSettings, capture_hidden, causal_logits, micro_batches, score_batch
from resrl_agents.trainers.distributed import LocalEngine
from resrl_agents.trainers.update import ppo_update

SETTINGS = ResRLSettings.from_algo(AlgoConfig(resrl=True, rank=8, max_pos_tokens=40, hidden_position="predicting"))


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
                 response_len=loss_mask.sum(1).long(), success=seq_adv > 0)


def _score(model, batch, mb, seeds):
    return score_batch(model, batch, micro_batch_size=mb, temperature=1.0, device=torch.device("cpu"),
                       resrl=SETTINGS, group_seed=seeds)


def test_weights_do_not_depend_on_micro_batch_size_or_group_order(tiny):
    model, tok = tiny
    batch = _batch(tok)
    seeds = {0: 11, 1: 12, 2: 13}
    sc = _score(model, batch, 1, seeds)
    w1, s1 = sc.weight, sc.stats.values()
    w5 = _score(model, batch, 5, seeds).weight
    w12 = _score(model, batch, 12, seeds).weight
    torch.testing.assert_close(w1, w5, rtol=0, atol=1e-4)  # float32 noise of different padded shapes
    torch.testing.assert_close(w1, w12, rtol=0, atol=1e-4)  # float32 noise of different padded shapes
    assert all(s.weighted for s in s1)
    neg = (batch.seq_adv[:, None] < 0) & batch.loss_mask.bool()
    pos = (batch.seq_adv[:, None] > 0) & batch.loss_mask.bool()
    assert torch.allclose(w1[pos], torch.tensor(0.1)) and w1[neg].min() >= 0.1 - 1e-6 and w1[neg].max() <= 1 + 1e-6
    assert torch.all(w1[~batch.loss_mask.bool()] == 1.0)
    # reverse the order of the groups: rows move, each row's weights do not
    perm = torch.cat([torch.arange(8, 12), torch.arange(4, 8), torch.arange(0, 4)])
    wp = _score(model, batch.rows(perm), 3, seeds).weight
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


def _update(model, batch, micro: int, tokens: int | None = None) -> dict[str, float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)  # linear in the gradient: differences show as is
    return ppo_update(LocalEngine(model, opt, grad_clip=1e9), batch, None, algo=AlgoConfig(), ppo_epochs=1, mini_batch_groups=None,
                      micro_batch_size=micro, temperature=1.0, max_len=24,
                      device=torch.device("cpu"), generator=torch.Generator().manual_seed(0), micro_batch_tokens=tokens)


def test_micro_batch_size_does_not_change_the_update(tiny):
    model, tok = tiny
    batch = _batch(tok)  # 12 rows of 12..24 tokens, right-padded
    batch.logp_old, _, batch.weight, *_ = score_batch(model, batch, micro_batch_size=12, temperature=1.0,
                                                     device=torch.device("cpu"), resrl=None, group_seed={})
    batch.adv = batch.seq_adv[:, None] * batch.loss_mask
    whole = copy.deepcopy(model)
    m_whole = _update(whole, batch, micro=12)
    with torch.no_grad():
        moved = sum(float((a - b).abs().sum()) for a, b in zip(whole.parameters(), model.parameters()))
    assert moved > 0
    for micro, tokens in ((5, None), (12, 60)):  # by rows; by a budget of padded tokens
        split = copy.deepcopy(model)
        m_split = _update(split, batch, micro=micro, tokens=tokens)
        for a, b in zip(whole.parameters(), split.parameters()):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        assert abs(m_whole["loss/policy"] - m_split["loss/policy"]) < 1e-5


def test_micro_batches_by_rows_and_padded_tokens():
    lengths = torch.tensor([10, 9, 30, 5, 5, 5, 5])
    runs = lambda size, tokens=None: [r.tolist() for r in micro_batches(lengths, size, tokens)]  # noqa: E731
    assert runs(3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert runs(8, 30) == [[0, 1], [2], [3, 4, 5, 6]]  # 3 x 30 > 30; a 30-token row alone; 4 x 5 <= 30
    assert runs(8, 8) == [[0], [1], [2], [3], [4], [5], [6]]  # rows over the budget go alone
    assert micro_batches(torch.tensor([], dtype=torch.long), 4) == []
