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

The network is ours (``bench.models.ConvNet``) on both sides: it is the reference ConvNet
(``networks.py``: conv3x3-instancenorm-ReLU-avgpool x depth at width 128, then one linear layer),
which ``test_reference_steps.py::test_convnet_is_the_reference_convnet`` checks at the reference's
32x32x3 shape. The references rebuild the network from the time of day
(``torch.random.manual_seed(int(time.time() * 1000) % 100000)`` in ``get_network``); here the
network factory is passed in, so the equal-work checks can hand both sides the same network.
"""
