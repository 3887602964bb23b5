"""CNN patches — the thesis' E7: every cell of a global network's last feature map as a local feature, and the
patch similarity that re-ranks with them. With a transformer backbone the cells are its patch tokens
(:mod:`retrieval.descriptor.backbones`): DINOv2 patch tokens as local features.

A patch's descriptor is its cell's activation vector, L2-normalised; its keypoint sits at the cell centre in
pixels of the image the network saw. Patches are kept strongest first, so that a smaller budget is a prefix, as
for OpenCV's keypoints: by activation norm (``selection="norm"``), or, for a vision transformer, by the class
token's attention in its last block (``selection="attention"``, :mod:`retrieval.descriptor.class_attention`:
DINO's attention maps, which dwell on the object rather than the sky).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from PIL import Image

from retrieval.descriptor.class_attention import ClassAttention
from retrieval.descriptor.network import GlobalDescriptorNet
from retrieval.images import BoundingBox, crop, load_rgb, resize_max_side
from retrieval.local.features import NO_ANGLE, LocalFeatures
from retrieval.local.hamming import CompactSettings

CNN_PATCH_METHOD = "cnn_patch"
PatchSelection = Literal["norm", "attention"]
PATCH_SELECTIONS: tuple[str, ...] = get_args(PatchSelection)


def cnn_patch_features(
    feature_map: torch.Tensor,
    image_size: tuple[int, int],
    cell_size: tuple[float, float] | None = None,
    strength: torch.Tensor | None = None,
) -> LocalFeatures:
    """Every cell of a CNN feature map (or every patch token of a transformer) as a local descriptor.

    Args:
        feature_map: (C, h, w) activations of one image.
        image_size: (width, height) of the image the network saw, in pixels.
        cell_size: (width, height) in pixels of one cell; None: the image divided evenly by the map (a CNN). A
            transformer's patches are its patch size, the last row and column padded past the image.
        strength: (h·w,) how strong each cell is, row by row (e.g. the class token's attention); None: the
            activation L2 norm.

    Returns:
        h·w features, strongest first: descriptors (h·w, C) are the L2-normalised cell activations; keypoints
        sit at the cell centres in image pixels, with scale = the cell's larger side and no angle.
    """
    if feature_map.ndim != 3:
        raise ValueError(f"feature_map must be (C, h, w), got shape {tuple(feature_map.shape)}")
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be a positive (width, height), got {image_size}")
    channels, map_height, map_width = feature_map.shape
    cells = feature_map.detach().to(device="cpu", dtype=torch.float32).reshape(channels, -1).T
    norms = cells.norm(dim=1)
    if strength is not None and strength.shape != norms.shape:
        raise ValueError(f"strength must be ({len(norms)},), one value per cell, got {tuple(strength.shape)}")
    ranked = norms if strength is None else strength.detach().to(device="cpu", dtype=torch.float32)
    order = torch.argsort(ranked, descending=True, stable=True)
    descriptors = (cells / norms.clamp_min(1e-12)[:, None])[order]

    cell_width, cell_height = cell_size if cell_size is not None else (width / map_width, height / map_height)
    rows, columns = torch.meshgrid(torch.arange(map_height), torch.arange(map_width), indexing="ij")
    keypoints = torch.stack(
        (
            (columns.reshape(-1) + 0.5) * cell_width - 0.5,
            (rows.reshape(-1) + 0.5) * cell_height - 0.5,
            torch.full((map_height * map_width,), max(cell_width, cell_height)),
            torch.full((map_height * map_width,), NO_ANGLE),
        ),
        dim=1,
    )[order]
    return LocalFeatures(
        keypoints.numpy().astype(np.float32), descriptors.numpy().astype(np.float32), (width, height)
    )


class CnnPatchExtractor:
    """Local features from the cells of a global network's last feature map (a
    :class:`~retrieval.local.features.LocalExtractor`).

    Images larger than ``max_side`` are downscaled to it (never upscaled), every cell of the feature map
    becomes a patch (:func:`cnn_patch_features`, keypoints in pixels of the image the network saw) and the
    ``max_keypoints`` strongest are kept: by activation norm, or by the class token's attention.

    Args:
        net: the global network whose feature map is cut into patches.
        descriptor_id: names the network's weights (e.g. :func:`retrieval.descriptor.network.descriptor_id`); stores
            built by different networks never mix.
        max_side: longest image side given to the network, in pixels.
        max_keypoints: patches kept per image, strongest first.
        device: torch device of the forward pass (None: the network's).
        selection: ``"norm"`` (activation norm, any backbone) or ``"attention"`` (the class token's attention
            in the last block, averaged over heads; a vision transformer with a class token).
        compact: store database patches as Hamming-embedding codes (:mod:`retrieval.local.hamming`, trained on
            a sample of the patches; matched by ``matching=hamming``), the ``stored_keypoints`` strongest kept;
            None stores the float16 patches as extracted (the E7 patch similarity needs them).

    Raises:
        ValueError: a selection the network cannot give.
    """

    method = CNN_PATCH_METHOD
    binary = False
    runs_in_workers = False  # the network stays in this process, on its device

    def __init__(
        self,
        net: GlobalDescriptorNet,
        descriptor_id: str,
        max_side: int = 512,
        max_keypoints: int = 1024,
        device: str | torch.device | None = None,
        selection: PatchSelection = "norm",
        compact: CompactSettings | None = None,
    ):
        if max_side < 32:
            raise ValueError(
                f"max_side must be at least 32 pixels (one cell of the feature map), got {max_side}"
            )
        if max_keypoints <= 0:
            raise ValueError(f"max_keypoints must be positive, got {max_keypoints}")
        if selection not in PATCH_SELECTIONS:
            raise ValueError(f"selection must be one of {PATCH_SELECTIONS}, got {selection!r}")
        self.attention = ClassAttention(net.backbone, net.layout) if selection == "attention" else None
        self.selection = selection
        self.compact = compact
        self.net = net
        self.descriptor_id = descriptor_id
        self.max_side = max_side
        self.max_keypoints = max_keypoints
        self.device = torch.device(device) if device is not None else next(net.parameters()).device

    def __repr__(self) -> str:
        return (
            f"CnnPatchExtractor(descriptor_id={self.descriptor_id!r}, max_side={self.max_side}, "
            f"max_keypoints={self.max_keypoints}, selection={self.selection!r}"
            + ("" if self.compact is None else f", compact={self.compact}")
            + ")"
        )

    @property
    def descriptor_dim(self) -> int:
        """Channels of the feature map."""
        return int(self.net.backbone.num_features)

    def __call__(self, image: Image.Image) -> LocalFeatures:
        """Patches of one image (any PIL mode)."""
        rgb = image.convert("RGB")
        if max(rgb.size) > self.max_side:
            rgb = resize_max_side(rgb, self.max_side)
        pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        was_training = self.net.training
        self.net.eval()
        recording = self.attention.recording() if self.attention is not None else contextlib.nullcontext()
        with torch.inference_mode(), recording:
            feature_map = self.net.feature_map(self.net.normalize(pixels.to(self.device)))[0]
        recorded = self.attention.patches if self.attention is not None else None
        strength = recorded[0] if recorded is not None else None
        self.net.train(was_training)
        patch = self.net.layout.patch_pixels()
        return cnn_patch_features(feature_map, rgb.size, patch, strength).top(self.max_keypoints)

    def from_path(self, path: str | Path, box: BoundingBox | None = None) -> LocalFeatures:
        """Patches of an image file, or of its crop ``box`` (full-resolution pixels).

        Raises:
            retrieval.images.ImageLoadError: the file is missing, corrupt or too large.
        """
        if box is None:
            return self(load_rgb(path, max_side=self.max_side))
        return self(crop(load_rgb(path), box))


def patch_similarity(
    query_descriptors: np.ndarray, candidate_descriptors: Sequence[np.ndarray]
) -> np.ndarray:
    """Mean over query patches of the best cosine similarity to each candidate's patches.

    Args:
        query_descriptors: (Nq, D) float32 L2-normalised patch descriptors.
        candidate_descriptors: C arrays (Nc, D) float32, L2-normalised.

    Returns:
        (C,) float64 similarities; 0 for an empty query or candidate.
    """
    similarities = np.zeros(len(candidate_descriptors))
    if len(query_descriptors) == 0:
        return similarities
    with torch.inference_mode():
        query = torch.from_numpy(query_descriptors)
        for index, descriptors in enumerate(candidate_descriptors):
            if len(descriptors):
                best = (query @ torch.from_numpy(descriptors).T).amax(dim=1)  # (Nq,)
                similarities[index] = float(best.double().mean())
    return similarities
