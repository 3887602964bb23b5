"""The eight architectural styles, one façade builder per module: ``build_<style>(canvas, rng, kit)`` draws a
landmark of that style on ``canvas`` with the materials of ``kit``."""
