"""Image encoders behind the text encoders' small interface: ``encode_images(images) -> L2-normalised
float32 [n, dim]``, a ``spec`` string that rebuilds the encoder, its ``dim`` and a ``fingerprint`` of the
weights, so a vector table knows which model wrote it (``recommender.encoders.save_encoder_manifest``).

Specs:

- ``image_tower:PATH`` — the small convolutional tower that ``training.image_tower`` trains here,
  contrastively against the catalog titles (the embedded default: no image weights can be downloaded)
- ``open_clip:ARCH`` / ``open_clip:ARCH@TAG`` / ``open_clip:ARCH@/path/to/checkpoint.pt`` — the image
  tower of any open_clip architecture, with its own preprocessing; without ``@`` randomly initialised
  (tests), with a local checkpoint for real CLIP or SigLIP weights

torch and open_clip are imported when an encoder is built, not with this module.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from fashionrec.layout import IMAGE_TOWER_CONFIG_FILE, WEIGHTS_FILE
from recommender.encoders import default_device, l2_normalize, state_dict_fingerprint

if TYPE_CHECKING:
    import torch
    from PIL import Image

IMAGE_TOWER_SPEC = "image_tower"


@runtime_checkable
class ImageEncoder(Protocol):
    """Anything that turns RGB images into unit-length float32 vectors."""

    spec: str
    dim: int
    image_size: int  # side in pixels the images it reads should have (its own preprocessing may resize)

    @property
    def fingerprint(self) -> str: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@dataclass(frozen=True)
class ImageTowerShape:
    """The tower's architecture: input side in pixels, channels of its strided convolutions, output dim."""

    image_size: int = 64
    channels: tuple[int, ...] = (32, 64, 96, 128)
    hidden: int = 512
    dim: int = 384

    def __post_init__(self) -> None:
        cells = self.image_size >> len(self.channels)
        if cells < 1 or cells << len(self.channels) != self.image_size:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of 2**{len(self.channels)} (one halving "
                "per convolution)"
            )

    @property
    def grid(self) -> int:
        """Side of the last feature map: the flattened map keeps where on the image a shape is."""
        return self.image_size >> len(self.channels)


def build_image_tower(shape: ImageTowerShape) -> torch.nn.Module:
    """Strided 3x3 convolutions (GroupNorm, GELU), the last map flattened, then a two-layer head.

    Written here because no maintained library ships a small image tower to train from scratch on CPU
    (open_clip's smallest towers have ~20M parameters and expect 224-pixel inputs); the flattened map
    keeps the silhouette's layout, and the mean colour is fed to the head beside it.
    """
    import torch
    from torch import nn

    class ImageTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = 3
            for channels in shape.channels:
                layers += [
                    nn.Conv2d(width, channels, 3, stride=2, padding=1),
                    nn.GroupNorm(8, channels),
                    nn.GELU(),
                ]
                width = channels
            self.convolutions = nn.Sequential(*layers)
            self.head = nn.Sequential(
                nn.Linear(width * shape.grid**2 + 3, shape.hidden),
                nn.GELU(),
                nn.Linear(shape.hidden, shape.dim),
            )

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            maps = self.convolutions(pixels).flatten(1)
            return self.head(torch.cat([maps, pixels.mean(dim=(2, 3))], dim=1))

    return ImageTower()


def pixels(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """RGB images as a float tensor [n, 3, size, size] centred on 0 (values in [-1, 1])."""
    import torch

    arrays = [np.asarray(image.convert("RGB").resize((size, size)), dtype=np.uint8) for image in images]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return batch / 127.5 - 1.0


class _BatchedImages(ABC):
    """Batching and progress shared by the image encoders (as ``recommender.encoders.BatchedEncoder`` is
    for the text ones); subclasses encode one batch."""

    spec: str
    dim: int
    batch_size: int
    show_progress: bool
    _fingerprint: str | None = None

    @abstractmethod
    def _encode_batch(self, images: list[Image.Image]) -> torch.Tensor:
        """Each encoder's own forward pass over one batch."""

    @abstractmethod
    def _weights_module(self) -> torch.nn.Module:
        """The module whose weights make the vectors (its fingerprint names them)."""

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = state_dict_fingerprint(self._weights_module(), type(self).__name__)
        return self._fingerprint

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        images = list(images)
        out = np.empty((len(images), self.dim), dtype=np.float32)
        starts = range(0, len(images), self.batch_size)
        bar = tqdm(starts, desc=f"encode {len(images)} images", unit="batch", disable=not self.show_progress)
        with torch.inference_mode():
            for start in bar:
                batch = images[start : start + self.batch_size]
                out[start : start + len(batch)] = self._encode_batch(batch).float().cpu().numpy()
        return l2_normalize(out)


class ImageTowerEncoder(_BatchedImages):
    """The image tower saved by ``training.image_tower`` (its folder: shape + safetensors weights)."""

    def __init__(
        self, tower: torch.nn.Module, shape: ImageTowerShape, spec: str, *, batch_size: int = 256, device=None
    ) -> None:
        self.device = device or default_device()
        self.tower = tower.to(self.device).eval()
        self.shape = shape
        self.spec = spec
        self.dim = shape.dim
        self.image_size = shape.image_size
        self.batch_size = batch_size
        self.show_progress = True

    @classmethod
    def load(cls, directory: Path, *, batch_size: int = 256, device: str | None = None) -> ImageTowerEncoder:
        from safetensors.torch import load_file

        config = Path(directory) / IMAGE_TOWER_CONFIG_FILE
        if not config.is_file():
            raise FileNotFoundError(
                f"no image tower in {directory} ({IMAGE_TOWER_CONFIG_FILE} missing): materialize the "
                "image_encoder asset first"
            )
        record = json.loads(config.read_text())
        shape = ImageTowerShape(**{**record["shape"], "channels": tuple(record["shape"]["channels"])})
        tower = build_image_tower(shape)
        tower.load_state_dict(load_file(str(Path(directory) / WEIGHTS_FILE)))
        return cls(tower, shape, f"{IMAGE_TOWER_SPEC}:{directory}", batch_size=batch_size, device=device)

    def _weights_module(self) -> torch.nn.Module:
        return self.tower

    def _encode_batch(self, images: list[Image.Image]) -> torch.Tensor:
        return self.tower(pixels(images, self.shape.image_size).to(self.device))


def save_image_tower(directory: Path, tower: torch.nn.Module, shape: ImageTowerShape, **record) -> str:
    """The tower's weights and shape (plus ``record``) in ``directory``; returns its encoder spec."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tower.state_dict().items()},
        str(directory / WEIGHTS_FILE),
    )
    (directory / IMAGE_TOWER_CONFIG_FILE).write_text(json.dumps({"shape": asdict(shape), **record}, indent=2))
    return f"{IMAGE_TOWER_SPEC}:{directory}"


class OpenClipImageEncoder(_BatchedImages):
    """The image tower of an open_clip model, with the model's own evaluation preprocessing."""

    def __init__(
        self, architecture: str, pretrained: str | None = None, *, batch_size: int = 64, device=None
    ) -> None:
        import open_clip
        import torch

        if architecture not in open_clip.list_models():
            raise ValueError(
                f"unknown open_clip architecture {architecture!r}; choose one of open_clip.list_models()"
            )
        self.device = device or default_device()
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=pretrained, device=self.device
        )
        self.model.eval()
        side = getattr(self.model.visual, "image_size", 224)
        self.image_size = int(side[0] if isinstance(side, tuple | list) else side)
        self.spec = f"open_clip:{architecture}" + (f"@{pretrained}" if pretrained else "")
        self.batch_size = batch_size
        self.show_progress = True
        from PIL import Image

        with torch.inference_mode():
            probe = self._encode_batch([Image.new("RGB", (8, 8))])
        self.dim = int(probe.shape[-1])

    def _weights_module(self) -> torch.nn.Module:
        return self.model.visual

    def _encode_batch(self, images: list[Image.Image]) -> torch.Tensor:
        import torch

        batch = torch.stack([self.preprocess(image.convert("RGB")) for image in images]).to(self.device)
        return self.model.encode_image(batch)


def build_image_encoder(spec: str, *, batch_size: int = 256, device: str | None = None) -> ImageEncoder:
    """The image encoder named by ``spec`` (syntax in the module docstring)."""
    kind, _, argument = spec.partition(":")
    if kind == IMAGE_TOWER_SPEC and argument:
        return ImageTowerEncoder.load(Path(argument), batch_size=batch_size, device=device)
    if kind == "open_clip" and argument:
        architecture, _, pretrained = argument.partition("@")
        return OpenClipImageEncoder(architecture, pretrained or None, batch_size=batch_size, device=device)
    raise ValueError(
        f"unknown image encoder spec {spec!r}; expected 'image_tower:PATH' or 'open_clip:ARCH[@PRETRAINED]'"
    )
