"""The application layer: the ``snn-singlestep`` command line and what only it needs.

``cli`` (argument parsing, the entry point), ``train`` (training and evaluation runs), ``data``
(datasets), ``checkpoint`` (checkpoint files), ``distributed`` (``torchrun``), ``models`` (the
command line's model builders) and ``exporting`` (a checkpoint to NIR / ONNX).

These modules need the ``app`` extra (``pip install "snn_singlestep[app]"``: scikit-learn,
torchvision, tqdm, matplotlib). Imports run one way: this layer may import every other part of
the package, and nothing outside it (but ``snn_singlestep/__main__.py``) imports it, so
``import snn_singlestep`` never loads it. This file imports nothing.
"""
