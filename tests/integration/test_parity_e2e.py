"""Deployment parity through a whole run, against two scripted stubs: the
controller computes ``agreement`` after both cases finished (wherever xdist ran
them) and checks ``min_agreement``; ``cost_per_1k_samples`` from
``gpu_hour_cost``."""

from __future__ import annotations

import pytest

from tests.helpers import page_manifest, read_csv, run, setup_suite
from tests.stub_openai import StubScript, running_stub

SUFFIX = "\nAnswer the question using a single word or phrase."


@pytest.mark.parametrize("xdist", [(), ("-n", "2")])
def test_agreement_gate_is_checked_by_the_controller(
    pytester: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    page_manifest(pytester, 10)
    reference = StubScript(default_answer="a")
    # the "production" server answers 3 of 10 differently
    production = StubScript(default_answer="a", answers={f"Q{i}?{SUFFIX}": "b" for i in range(3)})
    with running_stub(reference) as ref_url, running_stub(production) as prod_url:
        setup_suite(
            pytester,
            "id,model,task,backend,parity_with,min_agreement\n"
            "ref,ref,vqa,openai,,\n"
            "prod,prod,vqa,openai,ref,0.9\n",
            models="name,source,endpoint,gpus,gpu_hour_cost\n"
            f"ref,x,{ref_url},,\nprod,x,{prod_url},2,3.6\n",
            tasks="name,type,data\nvqa,docvqa,data/m.jsonl\n",
        )
        result = run(pytester, *xdist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=20)  # every sample item passed: the gate is the controller's
    result.stdout.fnmatch_lines(
        ["*gate failed: prod min_agreement: agreement 0.7 < min_agreement 0.9*"]
    )
    out = pytester.path / "vlmhb-results"
    metrics = {m["case_id"]: m for m in read_csv(out / "metrics.csv")}
    assert metrics["prod"]["agreement"] == "0.7"
    assert metrics["ref"]["agreement"] == ""
    assert float(metrics["prod"]["cost_per_1k_samples"]) > 0
    assert metrics["ref"]["cost_per_1k_samples"] == ""  # no GPU held
    gates = read_csv(out / "gates.csv")
    (row,) = [g for g in gates if g["gate"] == "min_agreement"]
    assert (row["case_id"], row["result"]) == ("prod", "fail")
