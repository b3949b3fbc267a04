"""What each mode measures: ``--tiny`` (seconds, for the test), ``--quick`` (make bench), full."""

from __future__ import annotations

import dataclasses

FAMILIES = ("simple_rnn", "lstm", "gru", "conv1d")
# quality also scores configs/ensemble.yaml (lstm, gru and conv1d as shipped, averaged)
QUALITY_MODELS = (*FAMILIES, "ensemble")
BACKENDS = ("tensorflow", "jax")
DATASETS = ("sample", "random_walk", "ar1", "threshold_ar")


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    # speed: the reference recipe vs stockrnn
    speed_families: tuple[str, ...] = FAMILIES
    speed_backends: tuple[str, ...] = BACKENDS
    speed_epochs: int = 12
    speed_repeats: int = 1
    # command line
    help_runs: int = 5
    smoke_runs: int = 1          # 0 = skip `stockrnn run` / `predict` / train RSS
    # prepare: rows -> timing repeats
    prepare_rows: tuple[tuple[int, int], ...] = ((10_000, 5), (100_000, 3), (1_000_000, 2))
    # quality: default configs (epochs/patience from configs/ unless overridden); each seed is
    # the training seed and, on the synthetic data, the seed of the series too
    quality_families: tuple[str, ...] = QUALITY_MODELS
    quality_datasets: tuple[str, ...] = DATASETS
    quality_seeds: tuple[int, ...] = (42, 43, 44)
    quality_overrides: tuple[str, ...] = ()
    quality_jobs: int = 2        # worker processes, each with its share of (data, seed) groups
    synthetic_rows: int = 2000
    # covariates: configs/lstm_covariates.yaml with and without them, quality_seeds
    covariates: bool = True
    # many tickers: configs/multi.yaml serial / --jobs 2 / Ray / global (about a minute)
    multi: bool = True
    # backtest: configs/lstm.yaml, 5 folds, serial and --jobs 2, beside one run
    backtest: bool = True
    # Ray on two nodes of this machine: configs/multi.yaml's batch and a 4-fold backtest of
    # its AR1, serial and on a head + worker node (benchmarks/ray_cluster.py; about 3 minutes)
    ray_cluster: bool = True
    backtest_overrides: tuple[str, ...] = ()
    # many tickers at scale (issue 17): per-ticker batches of configs/lstm.yaml on synthetic
    # series, --jobs 2, one per (backend, tickers); the first is the target (500 tickers) and
    # is compared with that many single runs of its tickers and with the global model
    many: tuple[tuple[str, int], ...] = (("jax", 500), ("tensorflow", 50))
    many_single: int = 3
    many_global: bool = True
    many_overrides: tuple[str, ...] = ()


TINY = Mode("tiny", speed_families=("conv1d",), speed_backends=("tensorflow",), speed_epochs=4,
            help_runs=2, smoke_runs=0, prepare_rows=((10_000, 2),),
            quality_families=("conv1d",), quality_datasets=("random_walk",),
            quality_seeds=(42,), quality_jobs=1,
            quality_overrides=("train.epochs=3", "train.early_stopping.patience=3"),
            synthetic_rows=600, covariates=False, multi=False, backtest=False,
            ray_cluster=False, many=(), many_single=1, many_overrides=("train.epochs=1",))
# the smoke run's start-up is timed 3 times (the median against its target): one run varied by
# 1-3 s on this machine within an hour
QUICK = Mode("quick", speed_repeats=2, smoke_runs=3)
FULL = Mode("full", speed_epochs=30, speed_repeats=3, help_runs=10, smoke_runs=3,
            prepare_rows=((10_000, 10), (100_000, 5), (1_000_000, 3)),
            quality_seeds=(42, 43, 44, 45, 46), many=(("jax", 500), ("tensorflow", 500)))


def pick(quick: bool, tiny: bool) -> Mode:
    return TINY if tiny else QUICK if quick else FULL
