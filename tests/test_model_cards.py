"""The LPE's shipped model card is what its benchmark's figures (metrics.json) and its mounting
envelope (envelope.yaml) render: no figure or envelope edited by hand, none out of date."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.lpe import write_model_card
from tests.conftest import REPO

LPE_MODELS = sorted(p for p in (REPO / "ir_models" / "lpe").iterdir() if (p / "metrics.json").is_file())


def test_each_lpe_card_is_its_metrics_and_envelope_rendered(tmp_path: Path) -> None:
    assert LPE_MODELS
    for shipped in LPE_MODELS:
        copy = tmp_path / shipped.name
        copy.mkdir()
        for name in ("metrics.json", "envelope.yaml"):
            if (shipped / name).is_file():
                shutil.copy(shipped / name, copy / name)
        write_model_card(copy, None, None, None)
        assert (copy / "MODEL_CARD.md").read_text() == (shipped / "MODEL_CARD.md").read_text(), shipped
