"""The stages of the GPU check, one module a job; ``benchmarks/gpu/bench_gpu.py`` runs them (see its docstring).

``results`` (results.json and stage budgets), ``environment`` (device, versions, timing on the device),
``models`` (ResNet18, classifier, synthetic data, trainer), ``labelling`` (stages ``ccl`` and ``sizes``),
``evaluation`` (stage ``eval``), ``fit`` (stage ``fit``), ``summary`` (CUDA test counts, goals, the table).
"""
