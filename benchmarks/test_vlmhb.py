"""The VLMHyperBench suite: one item per sample and one per case threshold.

Run it with ``pytest benchmarks/ --vlmhb-config=benchmarks/user_config.csv``;
the plugin (pytest_vlmhb) parametrizes these tests from the CSV.
"""


def test_sample(vlmhb_sample):
    vlmhb_sample.check()


def test_gate(vlmhb_gate):
    vlmhb_gate.check()
