"""Re-statements of the reference implementations' inner steps, for the speed comparison.

Each module re-states one reference step in our own code (their algorithm, tensor shapes and
op order, with the repository, file and lines cited where each piece comes from), so that
``tests/benchmarks/compare_references.py`` can time it against our implementation on the same
work, in one process. They are NOT copies of the reference files and are not used by the
package: they exist only to be timed and to show equal work (tests/benchmarks/test_reference_steps.py).

- :mod:`.diffaugment`: VICO-UoE/DatasetCondensation ``utils.py`` DiffAugment (DC/DSA/DM matching);
- :mod:`.dc_dm`: VICO-UoE/DatasetCondensation ``main.py`` (DC/DSA outer iteration) and ``main_DM.py``
  (DM iteration), with ``utils.py``'s ``match_loss`` and ``epoch``;
- :mod:`.idc`: snu-mllab/Efficient-Dataset-Condensation ``condense.py`` (one outer iteration),
  ``misc/augment.py`` (DiffAug), ``train.py`` (``train_epoch``), ``data.py`` (``ClassMemDataLoader``);
- :mod:`.mtt`: GeorgeCazenavette/mtt-distillation ``distill.py`` (student unroll + meta-gradient)
  and ``reparam_module.py``.

The reference side builds the reference ConvNet (``networks.py``: conv3x3-instancenorm-ReLU-avgpool
x depth at width 128, then one linear layer, re-stated in :mod:`.networks` with its ``nn.AvgPool2d``
layers) at our depth and first-layer padding for the data (``cases.reference_factory``); ours builds
``bench.train.models.ConvNet``. For one seed both have the same parameters and compute the same outputs bit
for bit (``test_reference_steps.py::test_convnet_is_the_reference_convnet``); ours pools faster
(``bench.train.models.AvgPool2x2``), which is our speed-up and is timed as such.
The references rebuild the network from the time of day
(``torch.random.manual_seed(int(time.time() * 1000) % 100000)`` in ``get_network``); here the
network factory is passed in, so the equal-work checks can hand both sides the same network.
"""
