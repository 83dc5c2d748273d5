"""Validation of plscope against an independent forward model (issue 11).

``validation.forward`` renders run folders from first principles and imports
nothing from plscope; ``validation.scenarios`` (and ``scenarios_*`` modules of
other topics) register scenarios; ``python -m validation`` runs them through
``plscope run`` and writes ``docs/validation.md``.
"""
