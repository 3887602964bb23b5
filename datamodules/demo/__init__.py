"""Deterministic mini Google-Landmarks-v2 (GLDv2) with a Revisited-Oxford-style benchmark, for the demo.

``python -m datamodules.demo --root data/demo`` writes, in about 15 CPU seconds and 11 MB, a dataset in the exact
file formats of the real GLDv2 release, so that the real loaders read it unchanged::

    <root>/train.csv                        id,url,landmark_id
    <root>/train_clean.csv                  landmark_id,images        (images: space-separated ids)
    <root>/train/<a>/<b>/<c>/<id>.jpg       a, b, c: the first three characters of the 16-hex-digit id
    <root>/index.csv, <root>/test.csv       id                        (images under index/ and test/)
    <root>/retrieval_solution_v2.1.csv      id,images,Usage           (Public, Private, or None/Ignored)
    <root>/revisited/rdemo/jpg/<name>.jpg   database and query images
    <root>/revisited/rdemo/gnd_rdemo.pkl    {'imlist', 'qimlist', 'gnd': [{'easy', 'hard', 'junk', 'bbx'}]}
    <root>/noise_manifest.json              every defect injected into train, the oracle for the dataset analysis
    <root>/README.md
    <root>/.complete                        written last

Every landmark is a procedural façade in one of eight architectural styles (random proportions, colours and
materials, with unique window contents, glyph signs and ornaments). Every photo is a perspective warp of its
landmark's canonical scene over a random background, with occluders, lighting changes, blur, noise and JPEG
compression: views of one landmark share many geometrically consistent SIFT matches, views of two do not.

Randomness comes only from ``numpy.random.Generator`` objects seeded from ``(seed, stream, index)``, so the same
seed gives byte-identical files.

The package follows the generator's stages: ``config`` (settings, scales, manifest), ``rng`` (seeded streams),
``canvas``, ``ornaments`` and ``parts`` (drawing), ``styles/`` (one façade builder per style), ``scene`` (a
landmark's canonical picture), ``camera`` (photos of it), ``files`` and ``writer`` (the dataset on disk),
``cli`` (the command line).
"""

from datamodules.demo.config import DEMO_SCALES, DemoConfig, DemoManifest
from datamodules.demo.writer import generate_demo

__all__ = ["DEMO_SCALES", "DemoConfig", "DemoManifest", "generate_demo"]
