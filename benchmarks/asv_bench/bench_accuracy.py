"""The accuracy metrics of the metric table that asv tracks (top-1 error: lower is better), from a fixed,
seeded, tiny training run: dense vs TissueNet."""

from benchmarks.asv_bench.common import TRAIN, add_metric_tracks
from benchmarks.store.metric_table import derive


class Accuracy:
    params = [["dense", "tissuenet"]]
    param_names = ["method"]
    timeout = 1800

    def setup_cache(self):
        import torch

        from benchmarks.data.datasets import make_loaders
        from benchmarks.run.train import evaluate, train
        from benchmarks.suites.settings import TrainConfig
        from tissuenet.registry import create_model_for_input, tissue_name

        torch.set_num_threads(2)
        errors = {}
        for method, name in (("dense", TRAIN["model"]), ("tissuenet", tissue_name(TRAIN["model"]))):
            torch.manual_seed(TRAIN["seed"])
            model = create_model_for_input(name, 10, 1, 28)
            _, tr, te = make_loaders(
                "fashion-mnist", batch_size=128, seed=TRAIN["seed"], train_limit=TRAIN["train_limit"]
            )
            train(model, tr, te, TrainConfig(epochs=TRAIN["epochs"], lr=0.05, warmup_epochs=0))
            top1 = evaluate(model, te)["top1"]
            errors[method] = {"top1": top1} | derive({"top1": top1})
        return errors


add_metric_tracks(Accuracy, "accuracy")
