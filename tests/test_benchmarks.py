"""The benchmarks' own machinery (benchmarks/ holds scripts, never tests): the step clock's bookkeeping, with a
fake clock, and the pythae wrappers, which must hand pythae our networks so that benchmarks/vs_pythae.py compares
two training loops on one architecture, and how the benchmarks read their runs (seeds, the time to a target).
No timing is asserted anywhere."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import step_clock  # noqa: E402
from step_clock import StepClock, batch_sizes  # noqa: E402

from stage1_autoencoders import VAE, VQVAE  # noqa: E402


def test_step_clock_leaves_out_warmup_and_the_first_step_after_each_restart(monkeypatch):
    ticks = iter([0.0, 1.0, 3.0, 6.0, 10.0])
    monkeypatch.setattr(step_clock.time, "perf_counter", lambda: next(ticks))
    clock = StepClock(warmup_steps=1)
    clock.restart()
    clock.step_done(2)  # t=0: warm-up, and the first step after a restart
    clock.step_done(2)  # t=1: 1 s
    clock.step_done(2)  # t=3: 2 s
    clock.restart()
    clock.step_done(5)  # t=6: first after a restart (a pause, or the previous epoch's evaluation)
    clock.step_done(5)  # t=10: 4 s
    assert (clock.steps, clock.items, clock.seconds) == (5, 9, 7.0)
    assert clock.per_second == pytest.approx(9 / 7)


def test_step_clock_with_nothing_timed_says_how_to_fix_it():
    clock = StepClock(warmup_steps=5)
    clock.restart()
    clock.step_done(8)
    with pytest.raises(RuntimeError, match="Train for more steps"):
        clock.per_second


def test_batch_sizes_keep_the_last_partial_batch():
    assert batch_sizes(10, 4) == [4, 4, 2]
    assert batch_sizes(8, 4) == [4, 4]


def test_pythae_trains_our_networks_from_our_weights():
    pytest.importorskip("pythae", reason="pythae is the optional bench extra: pip install -e '.[bench]'")
    from pythae_models import make_ema_codebook_samplable, pythae_vae, pythae_vqvae

    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8)
    ours = VAE(image_size=8, hidden_channels=(8, 16), latent_dim=4).eval()
    theirs = pythae_vae(ours).eval()
    assert {id(p) for p in theirs.parameters()} == {id(p) for p in ours.parameters()}
    mean, logvar = ours.encode(x)
    encoded = theirs.encoder(x)
    torch.testing.assert_close(encoded.embedding, mean)
    torch.testing.assert_close(encoded.log_covariance, logvar)
    torch.testing.assert_close(theirs.decoder(mean).reconstruction, ours.decode(mean))
    assert torch.isfinite(theirs({"data": x}).loss)

    ours_vq = VQVAE(image_size=8, hidden_channels=(8, 16), num_embeddings=8, embedding_dim=4, ema_decay=0.0).eval()
    theirs_vq = pythae_vqvae(ours_vq).eval()
    ours_networks = {id(p) for name, p in ours_vq.named_parameters() if not name.startswith("quantizer.")}
    assert ours_networks <= {id(p) for p in theirs_vq.parameters()}
    torch.testing.assert_close(theirs_vq.encoder(x).embedding, ours_vq.encode_continuous(x))
    assert theirs_vq.model_config.num_embeddings == 8 and theirs_vq.model_config.embedding_dim == 4

    # pythae's PixelCNNSampler looks codes up as quantizer.embeddings(indices): its EMA codebook, unchanged.
    theirs_ema = pythae_vqvae(ours_vq, use_ema=True).eval()
    codebook = theirs_ema.quantizer.embeddings.clone()
    make_ema_codebook_samplable(theirs_ema)
    indices = torch.tensor([[0, 3], [7, 3]])
    torch.testing.assert_close(theirs_ema.quantizer.embeddings(indices), codebook[indices])


def test_compare_priors_averages_seeds_scored_under_one_protocol(tmp_path, capsys):
    """Two evaluation reports of one model at seeds 0 and 1: each row's mean ± std over them, and a report scored
    at another N refused."""
    import statistics

    import compare_priors

    from evaluation.evaluate import main as evaluate
    from stage2_prior import MixturePrior

    torch.manual_seed(0)
    VAE(image_size=8, latent_dim=4, hidden_channels=(8, 16)).save_pretrained(tmp_path / "vae")
    MixturePrior(latent_dim=4, n_components=2, autoencoder_id=str(tmp_path / "vae")).save_pretrained(tmp_path / "vae-gmm")
    folders = []
    for seed, num_samples in ((0, 200), (1, 200), (2, 300)):
        folders.append(str(tmp_path / f"report-{seed}"))
        evaluate([str(tmp_path / "vae"), str(tmp_path / "vae-gmm"), "--dataset_name", "digits", "--seed", str(seed),
                  "--num_samples", str(num_samples), "--num_importance_samples", "2", "--tsne_points", "50",
                  "--output_dir", folders[-1]])
    reports = compare_priors.load_reports(folders[:2])
    summary = compare_priors.summarise(reports)
    scores = [report["rows"][1]["is"] for report in reports]
    assert summary["unconditional", "vae", "Gaussian mixture"]["is"] == (statistics.fmean(scores), statistics.stdev(scores), 2)
    compare_priors.main(["--from_reports", *folders[:2]])
    printed = capsys.readouterr().out
    assert "N = 200 samples per row, IS over 2 splits of 100; mean ± std over 2 training seeds (0, 1)" in printed
    assert f"| vae | Gaussian mixture | {statistics.fmean(scores):.2f} ± {statistics.stdev(scores):.2f} |" in printed
    with pytest.raises(SystemExit, match="num_samples, is_splits differ"):
        compare_priors.load_reports(folders[::2])


def test_vs_pythae_averages_each_figure_over_the_seeds_figures_json(tmp_path):
    """Two seeds' figures.json as vs_pythae's main writes them: every cell is the mean ± std of that library's
    figure over the seeds, a library without a sample set has no cell (twostage has no IAF), a figure withheld
    at one seed is withheld, and seeds run with different flags are refused."""
    import json
    import statistics

    import vs_pythae

    settings = vs_pythae.settings_of(vs_pythae.parse_args(["--quick"]))
    per_seed = []
    for seed in (0, 1):
        generator = torch.Generator().manual_seed(seed)
        result_keys = ("train_per_second", "sample_seconds", "reconstruction_error", "codes_used", "peak_memory_mib",
                       "load_average")
        results = {(library, run): {key: torch.rand((), generator=generator).item() for key in result_keys}
                   for step in vs_pythae.STEPS for library, run in step}
        scores = {(library, name): {"is": torch.rand((), generator=generator).item(), "fid": None if seed else 1.0,
                                    "precision": 0.5, "recall": 0.5}
                  for library in vs_pythae.LIBRARIES for name in vs_pythae.SAMPLE_SETS if (library, name) != ("twostage", "vae_iaf")}
        scores["real"] = {"is": 9.0}
        path = tmp_path / f"seed-{seed}.json"
        path.write_text(json.dumps(vs_pythae.seed_figures(settings | {"seed": seed}, results, scores, 60.0)))
        per_seed.append(json.loads(path.read_text()))

    table = {figure: cells for figure, cells, _, _ in vs_pythae.aggregate(per_seed)}
    throughput = [figures["rows"][0][1]["pythae"] for figures in per_seed]
    assert table["stage-1 training, VAE (images/s)"]["pythae"] == (statistics.fmean(throughput), statistics.stdev(throughput))
    iaf = table["IS, VAE + IAF"]
    assert "twostage" not in iaf and set(iaf) == {"pythae", "pythae_own"}
    assert table["FID, VAE + MAF"]["twostage"] == (None, None)
    assert vs_pythae._cell(table["FID, VAE + MAF"]["twostage"], ".2f", "-") == "withheld"
    per_seed[1]["settings"]["epochs"] = 2
    with pytest.raises(SystemExit, match="differ in epochs"):
        vs_pythae.aggregate(per_seed)


def test_time_to_quality_interpolates_the_first_crossing_of_the_worse_final_value():
    import time_to_quality

    ours = [{"seconds": 10.0, "nll": 3.0}, {"seconds": 20.0, "nll": 2.0}, {"seconds": 30.0, "nll": 1.5}]
    theirs = [{"seconds": 10.0, "nll": 4.0}, {"seconds": 40.0, "nll": 2.4}, {"seconds": 60.0, "nll": 2.5}]
    assert time_to_quality.time_to(ours, "nll", 2.5) == (pytest.approx(15.0), False)  # halfway from 3.0 to 2.0
    assert time_to_quality.time_to(ours, "nll", 3.5) == (10.0, True)  # by the first evaluation: an upper bound
    assert time_to_quality.time_to(theirs, "nll", 2.0) is None  # never reached
    # The target is the worse final value (2.5, theirs), which their curve first reaches at 2.4 after 40 s.
    curves = {"pixelcnn": {"twostage": [point | {"fid": 5.0} for point in ours],
                           "pythae": [point | {"fid": 6.0} for point in theirs]},
              "vae_mixture": {"twostage": [{"seconds": 1.0, "fid": None}], "pythae": [{"seconds": 1.0, "fid": 9.0}]}}
    nll, fid, withheld = time_to_quality.contest_rows(curves)
    assert nll["target"] == 2.5
    assert nll["times"]["twostage"] == (pytest.approx(15.0), False)
    assert nll["times"]["pythae"] == (pytest.approx(10.0 + 30.0 * (4.0 - 2.5) / (4.0 - 2.4)), False)
    assert fid["target"] == 6.0 and fid["times"]["twostage"] == (10.0, True)
    assert withheld["target"] is None and withheld["times"] is None  # a withheld final value gives no target
