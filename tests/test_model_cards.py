"""Each LPE version's model card is what its card text (MODEL_CARD.md.in), its benchmark's figures
(metrics.json) and its mounting envelope (envelope.yaml) render: no figure or envelope edited by
hand, none out of date."""

from __future__ import annotations

import json
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
        for name in ("metrics.json", "envelope.yaml", "MODEL_CARD.md.in"):
            if (shipped / name).is_file():
                shutil.copy(shipped / name, copy / name)
        write_model_card(copy, None, None, None)
        assert (copy / "MODEL_CARD.md").read_text() == (shipped / "MODEL_CARD.md").read_text(), shipped


def test_a_figure_with_nothing_to_measure_is_null_in_the_json_and_misses_its_target(tmp_path: Path) -> None:
    shipped = REPO / "ir_models" / "lpe" / "1.0.0"
    copy = tmp_path / shipped.name
    copy.mkdir()
    for name in ("metrics.json", "envelope.yaml", "MODEL_CARD.md.in"):
        shutil.copy(shipped / name, copy / name)
    placements = json.loads((shipped / "metrics.json").read_text())["placements"]
    row = placements["table"]["fp32"]["P19001-1"]
    row["end_error_median_m"] = row["end_error_p95_m"] = float("nan")  # as Tally gives with no visible end
    write_model_card(copy, None, None, None, placements)
    text = (copy / "metrics.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["placements"]["table"]["fp32"]["P19001-1"]["end_error_median_m"] is None
    line = next(
        x
        for x in (copy / "MODEL_CARD.md").read_text().splitlines()
        if x.startswith("| P19001-1 |") and "fp32" in x
    )
    assert line.split(" | ")[8:10] == ["– ✗", "– ✗"] and line.endswith("| missed |")
