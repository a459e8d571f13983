"""Efficiency scale-factor nuisances of the pseudo-analysis (per reco bin, no event loop)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from wmass_archive.producers.pseudo.efficiency import (
    N_ETA,
    N_PT,
    STEPS,
    EfficiencyUncertainties,
    efficiency_variations,
    legendre_shapes,
)


def test_counts_and_groups_follow_cms():
    v = efficiency_variations()
    c = Counter(x.group for x in v)
    assert c["muon_eff_stat"] == len(STEPS) * N_ETA * 2 * 6
    assert c["muon_eff_syst"] == len(STEPS) * N_ETA
    names = [x.name for x in v]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names)


def test_each_stat_variation_touches_one_eta_charge_row():
    for x in efficiency_variations()[:50]:
        q_eta = np.unique(x.bins // N_PT)
        if x.group == "muon_eff_stat":
            assert q_eta.size == 1 and x.bins.size == N_PT
        assert np.all((x.bins >= 0) & (x.bins < 2 * N_ETA * N_PT))
        np.testing.assert_allclose(x.up - 1.0, 1.0 - x.down)


def test_leading_stat_variation_size_by_hand():
    cfg = EfficiencyUncertainties()
    v = {x.name: x for x in efficiency_variations(cfg)}
    # central eta bin (no endcap widening): P_0 = 1 everywhere, size = leading value
    x = v["effStat_trigger_eta24_plus_p0"]
    np.testing.assert_allclose(x.up, 1.0 + cfg.stat_leading["trigger"])
    # first-order term: linear in pT from -1 to +1 across the range, scaled by the falloff
    x1 = v["effStat_trigger_eta24_plus_p1"]
    d = x1.up - 1.0
    assert d[0] < 0 < d[-1]
    np.testing.assert_allclose(d, cfg.stat_leading["trigger"] * 0.6 * legendre_shapes(2)[1])
    # endcap bins are wider
    assert v["effStat_trigger_eta00_plus_p0"].up[0] > x.up[0]
