"""The result record: every field a job's record may hold, with its type, defined once.

A record is one JSON object per job (``records/<job_id>.json``). This table is its schema: the
store validates every record against it when it writes one (a misfit is a bug) and when it reads one
(a misfit is a damaged file: named, set aside in ``quarantine/``, its job redone), and the
consolidated table, ``show``, the report and ``check`` take their columns from it. The metric fields
come from the metric table (``metrics.py``), so a new metric is a new record field with no second
entry here.

Kinds: ``str``, ``int``, ``number`` (int or float, finite), ``bool``, ``dict``, ``list``. Every field
but the identity ones may be null. A field the schema does not know is left out of every table (the
file keeps it): records of a newer version read, their extra fields unused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from benchmarks.store.metric_table import METRICS

SCHEMA_VERSION = 2
MAX_BYTES = 4 * 2**20  # a record holds numbers, settings and per-epoch history: a few hundred KB at most
STATUSES = ("ok", "failed")


class RecordError(ValueError):
    """A record does not fit the schema (on write: a bug)."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # str | int | number | bool | dict | list
    part: str  # identity | outcome | metric | latency | training | provenance
    required: bool = False  # in every record
    required_ok: bool = False  # in every ok record

    def fits(self, value) -> bool:
        if value is None:
            return not self.required
        if self.kind == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, {"str": str, "bool": bool, "dict": dict, "list": list}[self.kind])

    @property
    def json(self) -> bool:
        """Nested values are stored in the tables as JSON text."""
        return self.kind in ("dict", "list")


def _fields(part: str, spec: str) -> list[Field]:
    """``"name:kind name:kind! ..."``: ``!`` marks a field every record has."""
    out = []
    for item in spec.split():
        name, kind = item.split(":")
        out.append(Field(name, kind.rstrip("!"), part, required=kind.endswith("!")))
    return out


IDENTITY = _fields(
    "identity",
    "schema_version:int suite:str job_id:str! dataset:str! model:str! method:str label:str! method_options:dict "
    "target_kind:str target_value:number seed:int config_hash:str group_hash:str train_hash:str suite_variant:str "
    "overrides:dict "
    "plugins:dict",
)
OUTCOME = _fields("outcome", "status:str! error:str traceback:str superseded:bool")
_REQUIRED_OK = ("top1", "params", "macs")
METRIC_FIELDS = [Field(m.name, "number", "metric", required_ok=m.name in _REQUIRED_OK) for m in METRICS]
LATENCY = _fields(
    "latency",
    "latency_iqr_ms:number latency_samples:int latency_batch:int latency_reliable:bool speedup_iqr:number "
    "speedup_distinguishable:bool speedup_reliable:bool speedup_by_definition:bool base_latency_ms:number "
    "throughput_latency_ms:number throughput_batch:int latency_graph_ms:number latency_eager_ms:number "
    "latency_dtype:str latency_device:str latency_mode:str latency_threads:int latency_allocator:str "
    "latency_kernels:dict runtimes:dict speedup_eager:number speedup_suspect:bool throughput_speedup:number",
)
TRAINING = _fields(
    "training",
    "base_params:number base_macs:number base_epochs:int base_img_per_s:number sparsity:number best_epoch:int "
    "phase:str epochs:int dense_epochs:int reference_epochs:int reference_job:str train_images:int "
    "train_wall_s:number img_per_s:number peak_mem_mb:number peak_mem_kind:str train_phases:list history:list "
    "dense_checkpoint:str dense_weights_sha256:str model_file:str model_sha256:str data_source:dict "
    "tissue_options:dict method_info:dict checkpoint_bn:dict world_size:int dist_backend:str per_worker_batch:int",
)
PROVENANCE = _fields(
    "provenance",
    "executor:str git_sha:str git_dirty:bool versions:dict device:str device_name:str cuda:str driver:str "
    "threads:int cpu_isa:str host:str run_started_utc:str started_utc:str finished_utc:str command:str",
)
FIELDS: dict[str, Field] = {f.name: f for f in IDENTITY + OUTCOME + METRIC_FIELDS + LATENCY + TRAINING + PROVENANCE}
if len(FIELDS) != len(IDENTITY + OUTCOME + METRIC_FIELDS + LATENCY + TRAINING + PROVENANCE):
    raise RuntimeError("a record field is defined twice")

# the consolidated table: one column per field, in schema order (the per-epoch history has its own table)
COLUMNS = [name for name in FIELDS if name not in ("history", "traceback")]
JSON_COLUMNS = tuple(f.name for f in FIELDS.values() if f.json)


def misfit(obj: dict) -> str | None:
    """What does not fit the schema in ``obj`` (None: it fits)."""
    for f in FIELDS.values():
        if f.required and obj.get(f.name) is None:
            return f"not a result record ('{f.name}' missing)"
    for name, value in obj.items():
        f = FIELDS.get(name)
        if f is not None and not f.fits(value):
            return f"field '{name}' is {_shown(value)}, not {'a finite number' if f.kind == 'number' else f.kind}"
    if obj["status"] not in STATUSES:
        return f"status {obj['status']!r} is not one of {STATUSES}"
    if obj["status"] == "ok":
        missing = [f.name for f in METRIC_FIELDS if f.required_ok and obj.get(f.name) is None]
        if missing:
            return f"an ok record without '{missing[0]}'"
    return None


def check(obj: dict, path: Path | None = None) -> dict:
    """``obj`` if it fits (fields the schema does not know are dropped from what is returned), else
    :class:`RecordError`; with ``path``, the job id must be the file's name."""
    if not isinstance(obj, dict):
        raise RecordError(f"not a result record (JSON {type(obj).__name__})")
    why = misfit(obj)
    if why is None and path is not None and obj["job_id"] != Path(path).stem:
        why = f"holds job {obj['job_id']!r}: a copy under another name"
    if why is not None:
        raise RecordError(why)
    return {k: v for k, v in obj.items() if k in FIELDS}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
