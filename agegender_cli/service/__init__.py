"""The operations behind every command and the Python API, one module per job: build a config, call one of
these, render the result."""

from agegender_cli.service.evaluate import compare, evaluate, evaluate_models, run_provenance, save_evaluation_plots
from agegender_cli.service.guards import refuse_overwriting_inputs
from agegender_cli.service.loading import FaceModels, info
from agegender_cli.service.predict import model_title, predict, predict_on_ray, predict_summary
from agegender_cli.service.prepare import make_dataset, run_preprocess
from agegender_cli.service.scoring import run_on_records
from agegender_cli.service.train import RUN_MARK, train, train_years

__all__ = ["FaceModels", "RUN_MARK", "compare", "evaluate", "evaluate_models", "info", "make_dataset", "model_title",
           "predict", "predict_on_ray", "predict_summary", "refuse_overwriting_inputs", "run_on_records",
           "run_preprocess", "run_provenance", "save_evaluation_plots", "train", "train_years"]
