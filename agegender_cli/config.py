"""Every default of the tool, in one place (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from agegender_cli.faces.detectors import NAMES as DETECTOR_NAMES

DEFAULT_DATA_DIR = Path("data/utkface")
DEFAULT_MANIFEST = DEFAULT_DATA_DIR / "manifest.csv"
DEFAULT_RUNS_DIR = Path("runs")
ASSETS_DIR = Path(__file__).resolve().parent / "assets"  # the bundled trained models
# an ONNX export (or its int8 model) unused this long is deleted when another of its kind is made: each model version
# leaves 40-95 MB in the cache otherwise
ONNX_STALE_DAYS = 30
SHARED_DATA = Path("../shared/data")  # UTKFace crop_part1 + more, beside the checkout (never copied into it)

# The values a user may choose, checked once at the command line (torch-free).
SPLITS = ("train", "val", "test")
EVAL_SPLITS = (*SPLITS, "all")  # evaluate/compare: one split, or every image the manifest lists
GAPS = ("drop", "nearest", "keep")  # keep: gap ages stay, without an age class (scored in years only)
DUPLICATE_POLICIES = ("group", "drop", "ignore")
DETECTORS = DETECTOR_NAMES  # faces/detectors.py: auto, mtcnn, haar, none
ENGINES = ("auto", "onnx", "torch", "opencv")  # auto: onnx on a CPU in fp32, else torch (runtime.pick_engine)
# auto: bf16 where the hardware runs it natively; on ONNX Runtime, int8 where a model ships ranges whose val check
# passed (onnx_int8.AUTO_SAME_CLASS); int8 (running models only): wherever a model ships ranges
PRECISIONS = ("auto", "bf16", "fp32", "int8")
TRAIN_PRECISIONS = ("auto", "bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
LABEL_FORMATS = ("auto", "csv", "fairface", "adience")
MAX_SEED = 2**32 - 1  # numpy and torch both take it; larger seeds fail inside them
AUGMENTATIONS = ("geometric", "wild")  # training views: data/augment.py
EVAL_DETECTORS = DETECTOR_NAMES  # evaluate, compare and train: the same detectors (their default: none)
PICK_RULES = ("largest", "centre")  # which found face of a labelled photo without a box is the labelled one
PLOT_FORMATS = ("png", "svg", "pdf")  # figures of evaluate, compare, train and predict --summary-plot
PLOT_DPI = 200  # raster resolution of PNG figures
# figures are drawn at the size they print in a two-column paper (a full-width figure 7.0 in, one column 3.4 in),
# with text of PAPER_FONT_PT (cell numbers and tick labels one point less): readable at print size
PAPER_WIDTH_IN, COLUMN_WIDTH_IN, PAPER_FONT_PT = 7.0, 3.4, 8
HTML_SUFFIXES = (".html", ".htm")  # --report with one of these writes HTML, anything else Markdown
CALIBRATION_BINS = 15  # equal-width confidence bins of the expected calibration error
MIN_GROUP_N = 20  # a group gap whose smaller group has fewer faces is marked uncertain
SHARD_FORMATS = ("jsonl", "parquet")  # predict --ray --format


@dataclass(frozen=True)
class Limits:
    """What one input may cost at most; each can be raised with the environment variable in LIMIT_ENV."""

    max_image_pixels: int = 50_000_000  # checked from the header, before decoding (50 MP: 150 MB as BGR)
    max_image_bytes: int = 200 * 2**20  # a still image file's size
    detect_max_side: int = 2000  # photos are downscaled to this long side for face detection
    archive_max_bytes: int = 16 * 2**30  # total uncompressed size of a dataset archive
    archive_max_members: int = 1_000_000
    archive_max_ratio: float = 100.0  # uncompressed / compressed size, whole archive and each large member
    download_deadline_s: float = 900.0  # a whole download, however slowly the server trickles
    ray_join_s: float = 60.0  # joining a Ray cluster (ray.init retries an address that is not Ray's without end)
    ray_stall_s: float = 1800.0  # a `predict --ray` job in which no model actor answers anything


LIMIT_ENV = {
    "max_image_pixels": "AGEGENDER_MAX_IMAGE_PIXELS",
    "max_image_bytes": "AGEGENDER_MAX_IMAGE_BYTES",
    "detect_max_side": "AGEGENDER_DETECT_MAX_SIDE",
    "archive_max_bytes": "AGEGENDER_ARCHIVE_MAX_BYTES",
    "archive_max_members": "AGEGENDER_ARCHIVE_MAX_MEMBERS",
    "archive_max_ratio": "AGEGENDER_ARCHIVE_MAX_RATIO",
    "download_deadline_s": "AGEGENDER_DOWNLOAD_DEADLINE_S",
    "ray_join_s": "AGEGENDER_RAY_JOIN_S",
    "ray_stall_s": "AGEGENDER_RAY_STALL_S",
}


@dataclass(frozen=True)
class DatasetConfig:
    """How `agegender dataset` reads a UTKFace source and splits it."""

    sources: tuple[Path, ...] = (SHARED_DATA,)
    out: Path = DEFAULT_DATA_DIR
    gaps: str = "drop"  # one of GAPS: "drop" (the report's protocol), "nearest" or "keep" (years only)
    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    check_images: bool = True  # decode every file to catch unreadable ones
    duplicates: str = "group"  # one of DUPLICATE_POLICIES: copies of one photo share a split, or one is kept
    duplicate_threshold: float = 0.95  # thumbnail correlation from which two images are copies (data/duplicates)
    keep_splits_from: Path | None = None  # an earlier manifest whose images keep their split (a fixed test set)
    labels: tuple[Path, ...] = ()  # label files (CSV/TSV, FairFace, Adience) instead of UTKFace names
    label_format: str = "auto"  # one of LABEL_FORMATS
    columns: tuple[tuple[str, str], ...] = ()  # (field, header) overrides for a CSV/TSV: path, age, gender, race
    split_from_source: bool = False  # keep the dataset's own folds (FairFace train/val, Adience folds)


@dataclass(frozen=True)
class PreprocessConfig:
    """The report's pipeline: grayscale, Gaussian blur, CLAHE, Gabor filter."""

    grayscale: bool = True
    blur: bool = True
    blur_kernel: int = 5
    blur_sigma: float = 0.0  # 0: OpenCV derives it from the kernel size
    clahe: bool = True
    clahe_clip: float = 2.0
    clahe_tile: int = 8
    gabor: bool = True
    gabor_kernel: int = 21
    gabor_sigma: float = 4.0
    gabor_theta: float = 0.0
    gabor_lambda: float = 10.0
    gabor_gamma: float = 0.5
    gabor_psi: float = 0.0

    @classmethod
    def none(cls) -> PreprocessConfig:
        """Every step off: the image passes through unchanged."""
        return cls(grayscale=False, blur=False, clahe=False, gabor=False)

    @property
    def is_identity(self) -> bool:
        return not (self.grayscale or self.blur or self.clahe or self.gabor)


PREPROCESS_PRESETS = {"paper": PreprocessConfig(), "none": PreprocessConfig.none()}


@dataclass(frozen=True)
class YearsTrainConfig:
    """`agegender train --years`: a years head added to a trained model, its class heads untouched."""

    arch: str = "facenet"
    manifest: Path = DEFAULT_MANIFEST
    init: Path | None = None  # the trained model to extend; None: the bundled one
    out: Path | None = None  # None: runs/ARCH-years
    batch_size: int = 64
    workers: int = 2
    seed: int = 0
    detector: str = "none"  # how faces are framed, as the class heads were trained
    pick: str = "largest"  # which found face of a photo is its labelled one (PICK_RULES; LFW: centre)


@dataclass(frozen=True)
class ModelOptions:
    """Which trained models run, and how: shared by predict, evaluate and compare."""

    models: tuple[tuple[str, Path], ...] = ()  # (architecture, model file or folder); default: bundled
    # (name, file or folder): the weights architectures were given by the options they declare (archs/entry.py's
    # WeightOption: --backbone-weights, --caffe-weights)
    weights: tuple[tuple[str, Path], ...] = ()
    # onnx (ONNX Runtime, CPU, fp32: both architectures exported once into the cache; no torch import after that),
    # torch (PyTorch; caffenet by its twin: cv2.dnn's probabilities within 2e-5 in fp32), opencv (caffenet by cv2.dnn,
    # the reference; facenet then in PyTorch) or auto (on a CPU the engine measured fastest here for the work,
    # engine_choice; torch on a GPU)
    engine: str = "auto"
    precision: str = "auto"
    device: str = "auto"
    batch_size: int = 64
    # the faces this run expects (None: one, a first answer): auto weighs PyTorch's import against its per-face gain
    workload: int | None = None

    def model_for(self, arch: str) -> Path | None:
        """The model file or folder given for `arch`, or None for the bundled one."""
        return dict(self.models).get(arch)

    def weight(self, name: str) -> Path | None:
        """The weights given by the option `name`, or None."""
        return dict(self.weights).get(name)

    def with_weight(self, name: str, path: Path | None) -> ModelOptions:
        """These options with the weights `name` given (None: not given)."""
        weights = {**dict(self.weights), name: path}
        return replace(self, weights=tuple((k, v) for k, v in weights.items() if v is not None))


@dataclass(frozen=True)
class PredictConfig:
    """`agegender predict`: inputs, detector, architectures and outputs."""

    inputs: tuple[str, ...] = ()
    archs: tuple[str, ...] = ()  # empty: every registered architecture
    # one of DETECTORS; auto is right on face crops and on photos (benchmarks/detector_choice.py)
    detector: str = "auto"
    min_face: int = 20
    min_score: float = 0.9
    every: int = 30  # video: every Nth frame
    workers: int = 2
    options: ModelOptions = ModelOptions()
    annotate: Path | None = None
    csv: Path | None = None
    summary: bool = False
    summary_plot: Path | None = None
    overwrite: bool = False  # --csv / --summary-plot may replace a file agegender did not write
    plot_format: str | None = None  # None: the --summary-plot name's suffix, else png


@dataclass(frozen=True)
class RayConfig:
    """`agegender predict --ray`: where the cluster is, how many model actors, where the shards go."""

    address: str = "local"  # "local": a Ray started for the run; "auto", "host:port" or "ray://host:port": a cluster
    actors: int = 0  # model actors; 0: one per CPU of each node (one thread each), or one per GPU
    out: Path | None = None  # shards + _SUCCESS; on several machines a folder every node sees at the same path
    format: str = "jsonl"  # one of SHARD_FORMATS
    resume: bool = False  # continue the job stopped in `out`: its finished shards are kept, the rest is done
    local_cpus: int | None = None  # CPUs of the local Ray (None: all of this machine's)
    images_per_task: int = 16  # inputs handed to a model actor at once; video frames per unit of work
    shard_inputs: int = 1_000  # photos (or runs of video frames) per shard: what a stop loses at most per writer


@dataclass(frozen=True)
class EvaluateConfig:
    """`agegender evaluate` / `compare`: which images, which models, which extras."""

    archs: tuple[str, ...] = ()
    manifest: Path = DEFAULT_MANIFEST
    split: str = "test"
    images: Path | None = None
    labels: Path | None = None  # a labels file: every image it labels (instead of a split)
    options: ModelOptions = ModelOptions()
    detector: str = "none"  # one of EVAL_DETECTORS: none for face crops; mtcnn/haar/auto find the face in photos
    pick: str = "largest"  # one of PICK_RULES: LFW's labelled person is the centre face, not always the largest
    min_face: int = 20
    min_score: float = 0.9
    plots: Path | None = None
    report: Path | None = None  # .html/.htm: one self-contained HTML file; otherwise Markdown
    overwrite: bool = False  # --report may replace a file agegender did not write
    bootstrap: int = 1000
    seed: int = 0
    plot_format: str = "svg"  # one of PLOT_FORMATS; vector by default: the figures go into papers
    normalize: bool = False  # confusion figures and tables: shares of each true class instead of counts
    calibration_bins: int = CALIBRATION_BINS
    min_group_n: int = MIN_GROUP_N
    command_line: str = ""  # how the run was asked for, recorded in the report's provenance
