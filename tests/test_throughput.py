"""lpcnet.bench.report: summaries written by the trainer's writer -> table and plots."""

import json

import pytest

from lpcnet.bench import report as T
from lpcnet.errors import FormatError


@pytest.fixture
def runs(tmp_path):
    from lpcnet.callbacks import write_performance_summary

    out = []
    # (world size, precision, per-step seconds): 2 ranks slower per step, AMP faster.
    for world, prec, step in ((1, "fp32", 2.0), (2, "fp32", 2.2), (1, "amp_bfloat16", 1.6),
                              (2, "amp_bfloat16", 1.8)):
        path = tmp_path / f"{prec}_{world}" / "summary.json"
        write_performance_summary([step] * 50, 8 * world, {"precision": prec, "world_size": world,
                                                          "replicas": 1}, [path])
        out.append(T.load_run(path))
    return out


def test_load_run_reads_the_seed_keys(runs):
    r = {(x["devices"], x["precision"]): x for x in runs}
    assert r[(1, "fp32")]["seq_s"] == pytest.approx(8 / 2.0)
    assert r[(2, "fp32")]["batch_size"] == 16 and r[(2, "fp32")]["seq_s"] == pytest.approx(16 / 2.2)
    assert r[(1, "amp")]["precision_detail"] == "amp_bfloat16"
    assert r[(1, "fp32")]["audio_s_per_s"] == pytest.approx(4.0 * 0.15)


def test_table_reports_speedup_over_one_process(runs):
    table = T.runs_table(runs)
    assert "| 2 | 16 | fp32 | 7.27 | 1.09 | 1.82x |" in table
    assert table.count("\n") == 5


def test_plots_have_ours_and_the_seed(runs):
    fig = T.plot_scaling(runs)
    labels = [l.get_label() for ax in fig.axes for l in ax.get_lines()]
    assert "ours, fp32" in labels and "ideal (linear)" in labels
    assert any("MLU370" in l for l in labels)
    fig = T.plot_amp_speedup(runs)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[0] == pytest.approx(2.0 / 1.6) and heights[-1] == pytest.approx(17.03 / 19.06)
    assert T.plot_synth_rtf({"native int8": 0.035, "keras": 3.9}).axes


def test_amp_bars_sit_at_their_process_count(runs):
    """np=2 (ours only) gets its own slot between the seed's 1 and 4, never under "4"."""
    fig = T.plot_amp_speedup(runs)
    ax = fig.axes[0]
    ticks = {t.get_text(): x for t, x in zip(ax.get_xticklabels(), ax.get_xticks())}
    assert list(ticks) == ["1", "2", "4", "8"]
    ours, seed = ax.containers
    centre = lambda p: p.get_x() + p.get_width() / 2
    assert [round(centre(p) + 0.175) for p in ours] == [ticks["1"], ticks["2"]]
    assert [round(centre(p) - 0.175) for p in seed] == [ticks["1"], ticks["4"], ticks["8"]]
    assert ours.patches[1].get_height() == pytest.approx(2.2 / 1.8)


def test_bad_summaries_are_one_line_errors(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        T.load_run(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"overall": {}}))
    with pytest.raises(FormatError, match="overall_stats.throughput_mean"):
        T.load_run(tmp_path / "bad.json")
